"""Issue 4, item 5: with the cache capped at 64 MiB, writing and reading back
1 GiB works, and the cache directory never holds much more than the cap
(clean chunks are evicted by punching holes; dirty data is bounded below
half the cap).  Also `pstore cache drop` empties the cache of clean data."""

import hashlib
import os
import threading
import time

from pstorelib import MiB, dir_disk_usage, drop_caches, set_client_option

CAP_MB = 64
TOTAL_MB = int(os.environ.get("PSTORE_IT_CACHE_TEST_MB", "1024"))
# eviction runs asynchronously: allow what arrives between two passes
SLACK_MB = 48


class UsageWatcher(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.peak, self.stop = path, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, dir_disk_usage(self.path))
            time.sleep(0.1)


def test_one_gib_through_a_64_mib_cache(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    set_client_option(c, "cache_max", "%dM" % CAP_MB)
    c.stop("pstorefs")
    c.start("pstorefs")
    cache = c.proc("pstorefs")["data"][1]
    path = os.path.join(c.mount, "big.bin")
    w = UsageWatcher(cache)
    w.start()
    h = hashlib.sha256()
    seed = os.urandom(MiB)
    t0 = time.monotonic()
    with open(path, "wb") as f:
        for i in range(TOTAL_MB):
            b = hashlib.sha256(seed + i.to_bytes(4, "little")).digest() * (MiB // 32)
            f.write(b)
            h.update(b)
    written = time.monotonic() - t0
    c.sync()
    drop_caches()
    t0 = time.monotonic()
    r = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            r.update(b)
    read = time.monotonic() - t0
    w.stop = True
    w.join()
    print("wrote %d MiB in %.1f s, read in %.1f s, cache peak %.1f MiB (cap %d MiB)"
          % (TOTAL_MB, written, read, w.peak / MiB, CAP_MB))
    assert r.hexdigest() == h.hexdigest()
    assert w.peak <= (CAP_MB + SLACK_MB) * MiB, "cache grew to %.1f MiB" % (w.peak / MiB)

    # cache drop: every clean chunk goes, the data reads back from the vendors
    c.cli("cache", "drop", c.mount)
    assert dir_disk_usage(cache) < 4 * MiB
    drop_caches()
    with open(path, "rb") as f:
        f.seek(123 * MiB)
        got = f.read(MiB)
    b = hashlib.sha256(seed + (123).to_bytes(4, "little")).digest() * (MiB // 32)
    assert got == b
