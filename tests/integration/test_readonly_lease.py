"""Issue 4: a second mount of the same volume (its own state and cache) may
mount read-only and sees what the writer commits, refreshed within a few
seconds; a second read-write mount is refused with a clear message while the
writer's lease is alive, and allowed once it expired (short lease here)."""

import os
import signal
import time

from pstorelib import (MiB, mount_extra, pstorefs_pids_for, set_client_option, sha256_file,
                       unmount_extra, wait_for, write_random)

LEASE_MS = 3000


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def test_read_only_mount_and_writer_lease(make_cluster, tmp_path):
    c = make_cluster(vendors=3, copies=2)
    set_client_option(c, "writer_lease_ms", str(LEASE_MS))
    c.stop("pstorefs")
    c.start("pstorefs")
    ro = str(tmp_path / "ro")
    rw2 = str(tmp_path / "rw2")
    try:
        # committed data is there at once; later commits show within ~2 s
        with open(os.path.join(c.mount, "a.txt"), "w") as f:
            f.write("first")
        big = write_random(os.path.join(c.mount, "big.bin"), 10 * MiB)
        c.sync()
        mount_extra(c, ro, str(tmp_path / "ro-state"), str(tmp_path / "ro-cache"), "ro")
        assert read(os.path.join(ro, "a.txt")) == b"first"
        assert sha256_file(os.path.join(ro, "big.bin")) == big
        with open(os.path.join(c.mount, "a.txt"), "w") as f:
            f.write("second version")
        os.mkdir(os.path.join(c.mount, "newdir"))
        with open(os.path.join(c.mount, "newdir", "b.txt"), "w") as f:
            f.write("b")
        os.unlink(os.path.join(c.mount, "big.bin"))
        c.sync()
        wait_for(lambda: read(os.path.join(ro, "a.txt")) == b"second version", 10,
                 what="the read-only mount to see the new a.txt (%r; log %s)"
                 % (read(os.path.join(ro, "a.txt")), open(str(tmp_path / "pstorefs.log")).read()[-3000:]))
        wait_for(lambda: read(os.path.join(ro, "newdir", "b.txt")) == b"b", 10,
                 what="the read-only mount to see newdir/b.txt")
        wait_for(lambda: not os.path.exists(os.path.join(ro, "big.bin")), 10,
                 what="big.bin to disappear from the read-only mount")
        # the read-only mount refuses writes
        try:
            open(os.path.join(ro, "x"), "w").close()
            raise AssertionError("a write on the read-only mount succeeded")
        except OSError as e:
            assert e.errno == 30  # EROFS

        # a second read-write mount is refused while the writer lives
        r = mount_extra(c, rw2, str(tmp_path / "rw2-state"), str(tmp_path / "rw2-cache"),
                        check=False)
        assert r.returncode != 0
        log = open(str(tmp_path / "pstorefs.log")).read()
        assert "mounted read-write by" in r.stderr + log, r.stderr + log

        # the writer dies: once its lease expired, the second mount may write
        os.kill(c.proc("pstorefs")["pid"], signal.SIGKILL)
        time.sleep(LEASE_MS / 1000 + 1)
        mount_extra(c, rw2, str(tmp_path / "rw2-state"), str(tmp_path / "rw2-cache"))
        assert read(os.path.join(rw2, "a.txt")) == b"second version"
        with open(os.path.join(rw2, "c.txt"), "w") as f:
            f.write("from the second writer")
        c.cli("sync", rw2)
        wait_for(lambda: read(os.path.join(ro, "c.txt")) == b"from the second writer", 10,
                 what="the read-only mount to follow the new writer")
        r = c.cli("fsck", rw2, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        for m in (ro, rw2):
            unmount_extra(m)
            for pid in pstorefs_pids_for(m):
                os.kill(pid, signal.SIGKILL)
        c.dev("kill", "pstorefs", check=False)
