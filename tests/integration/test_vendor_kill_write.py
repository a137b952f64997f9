"""Issue 2, item 5: kill -9 of one vendor in the middle of a 256 MiB write.
The write (and its fsync) completes, every chunk ends on `copies` live
vendors, the dead vendor holds no reservation, and after the commit
`pstore vendors` shows reserved = 0 everywhere."""

import os
import subprocess
import time

from pstorelib import BIG_MB, MiB, drop_caches, sha256_file, wait_for, write_random


def test_write_completes_when_a_vendor_dies_mid_write(make_cluster, tmp_path):
    c = make_cluster(vendors=4, copies=2, vendor_timeout_ms=3000, heartbeat_ms=500)
    src = str(tmp_path / "big.bin")
    want = write_random(src, BIG_MB * MiB)
    dst = os.path.join(c.mount, "big.bin")
    dd = subprocess.Popen(["dd", "if=" + src, "of=" + dst, "bs=1M", "conv=fsync"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def traffic(v):
        return v["bytes_from_clients"] + v["bytes_from_vendors"]

    # Kill a vendor that is receiving data (or, if uploads start only at the
    # fsync, one while dd is halfway through).
    victim = None
    end = time.monotonic() + 300
    while victim is None and dd.poll() is None and time.monotonic() < end:
        vs = c.vendors()
        busy = [i for i, v in vs.items() if traffic(v) >= 8 * MiB]
        if busy:
            victim = busy[0]
        elif os.path.exists(dst) and os.path.getsize(dst) >= BIG_MB * MiB // 2:
            victim = 2
        else:
            time.sleep(0.2)
    assert victim is not None, "the write ended before a vendor could be killed"
    c.kill("vendor%d" % victim)

    out, err = dd.communicate(timeout=900)
    assert dd.returncode == 0, "dd failed after vendor%d was killed: %s" % (victim, err)
    c.sync(dst)

    chunks = c.locate(dst)
    assert len(chunks) == (BIG_MB * MiB + 4 * MiB - 1) // (4 * MiB)
    for ch in chunks:
        assert len(set(ch["vendors"])) == c.copies, ch
    on_dead = [ch["index"] for ch in chunks if victim in ch["vendors"]]

    vs = c.wait_vendor_stats(lambda vs: vs if all(v["reserved"] == 0 for v in vs.values())
                             else None, timeout=30, what="reserved = 0 on every vendor")
    assert vs[victim]["reserved"] == 0
    wait_for(lambda: not c.vendors()[victim]["alive"], 15,
             what="the dead vendor to be reported not alive")

    drop_caches()
    assert sha256_file(dst) == want
    # Last, as it needs re-replication of chunks the victim stored before it
    # died: every chunk on `copies` live vendors.
    assert not on_dead, "%d of %d chunks still list dead vendor%d: indexes %s" % (
        len(on_dead), len(chunks), victim, on_dead)
