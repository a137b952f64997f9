"""Issue 2, item 6: with one vendor killed, every file reads back
bit-identical from a client whose cache was dropped, and validation receipts
are recorded at the vendors that served the reads."""

import os
import time

from pstorelib import MiB, drop_caches, make_small_tree, run, tree_digest, write_random


def test_reads_survive_a_dead_vendor_and_leave_receipts(make_cluster, tmp_path):
    c = make_cluster(vendors=4, copies=2, vendor_timeout_ms=3000, heartbeat_ms=500)
    src = tmp_path / "src"
    src.mkdir()
    write_random(str(src / "big.bin"), 64 * MiB)
    make_small_tree(str(src / "tree"), n=200, dirs=5)
    want = tree_digest(str(src))
    run(["cp", "-a", str(src), os.path.join(c.mount, "data")], timeout=600)
    c.sync()
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(c.mount, "data"))
             for f in fs]
    chunks = [ch for f in files for ch in c.locate(f)]
    assert chunks

    victim = 1
    before = {i: v["receipts"] for i, v in c.vendors().items()}
    c.kill("vendor%d" % victim)
    c.remount_fresh()
    drop_caches()
    assert tree_digest(os.path.join(c.mount, "data")) == want

    # Vendors that were the only live holder of some chunk must have served it.
    sole = {next(v for v in ch["vendors"] if v != victim)
            for ch in chunks if victim in ch["vendors"]}
    served_chunks = len(chunks)

    def receipts_recorded(vs):
        new = {i: vs[i]["receipts"] - before.get(i, 0) for i in vs if i != victim}
        if sum(new.values()) >= served_chunks and all(new[i] > 0 for i in sole):
            return new
        return None

    try:
        c.wait_vendor_stats(receipts_recorded, timeout=20, what="receipts")
    except AssertionError:
        # Receipts go out in batches; unmounting flushes the last batch.
        c.stop("pstorefs")
        time.sleep(1)
        c.wait_vendor_stats(receipts_recorded, timeout=20, what="receipts after unmount")
