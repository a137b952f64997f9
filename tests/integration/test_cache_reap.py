"""The cache data of deleted files leaves the local cache in the background
(evict.c's reaper): after a clean run nothing of them stays, and after a
kill -9 in the middle of a mass delete the next mount reclaims what the
queue lost, while the files that still exist keep their cached data."""

import hashlib
import os
import subprocess
import sys

from pstorelib import wait_for

KEEP, GONE, SIZE = 200, 2000, 4096


def cache_dir(c):
    return os.path.join(c.dir, "client", "cache")


def cache_bytes(c):
    """Bytes the cache directory really holds (holes do not count)."""
    total = 0
    for name in os.listdir(cache_dir(c)):
        try:
            total += os.stat(os.path.join(cache_dir(c), name)).st_blocks * 512
        except FileNotFoundError:
            pass
    return total


def write_files(root, prefix, n):
    digests = {}
    for i in range(n):
        data = os.urandom(SIZE)
        path = os.path.join(root, "%s%05d" % (prefix, i))
        with open(path, "wb") as f:
            f.write(data)
        digests[path] = hashlib.sha256(data).hexdigest()
    return digests


def check_intact(digests):
    for path, digest in digests.items():
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, path


def test_deleted_files_leave_the_cache(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    root = os.path.join(c.mount, "t")
    os.mkdir(root)
    keep = write_files(root, "keep", KEEP)
    base = cache_bytes(c)
    gone = write_files(root, "gone", GONE)
    os.sync()
    assert cache_bytes(c) >= base + GONE * SIZE // 2
    assert os.path.exists(os.path.join(cache_dir(c), "reap.pending"))
    for path in gone:
        os.unlink(path)
    wait_for(lambda: cache_bytes(c) <= base + 64 * 1024, timeout=30,
             what="the reaper to empty the slots of deleted files")
    check_intact(keep)
    c.stop("pstorefs")  # a clean stop drains the queue: nothing to reclaim
    assert not os.path.exists(os.path.join(cache_dir(c), "reap.pending"))
    c.start("pstorefs")
    check_intact(keep)


def test_kill_9_during_a_mass_delete_is_reclaimed_at_the_next_mount(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    root = os.path.join(c.mount, "t")
    os.mkdir(root)
    keep = write_files(root, "keep", KEEP)
    gone = write_files(root, "gone", GONE)
    os.sync()
    base = KEEP * SIZE
    pid = c.proc("pstorefs")["pid"]
    # the deletes and the kill in one process: the queue has no time to drain
    subprocess.run([sys.executable, "-c",
                    "import os, sys\n"
                    "for p in sys.argv[2:]: os.unlink(p)\n"
                    "os.kill(int(sys.argv[1]), 9)\n",
                    str(pid)] + sorted(gone), check=True, timeout=120)
    left = cache_bytes(c)
    print("cache after the kill: %d bytes (%d of live files)" % (left, base))
    c.kill("pstorefs")  # already dead: pstore-dev unmounts the dead mount
    c.start("pstorefs")
    wait_for(lambda: cache_bytes(c) <= base + 64 * 1024, timeout=30,
             what="the next mount to reclaim the slots of deleted files")
    for path in gone:
        assert not os.path.exists(path)
    check_intact(keep)
    assert "reclaimed" in c.log("pstorefs") or left <= base + 64 * 1024
