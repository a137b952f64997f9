"""Issue 2, item 4: pipeline replication.  Over a 256 MiB write with
copies=2 the vendors receive about 1x the data from the client and the
second copy vendor-to-vendor."""

import os

from pstorelib import BIG_MB, MiB, write_random


def test_client_sends_one_copy_vendors_forward_the_rest(make_cluster):
    c = make_cluster(vendors=4, copies=2)
    path = os.path.join(c.mount, "big.bin")
    write_random(path, BIG_MB * MiB)
    c.sync(path)
    stored = sum(ch["stored"] for ch in c.locate(path))
    assert stored >= BIG_MB * MiB * 0.99          # random bytes do not compress

    def settled(vs):
        fc = sum(v["bytes_from_clients"] for v in vs.values())
        fv = sum(v["bytes_from_vendors"] for v in vs.values())
        return (fc, fv) if fc >= stored and fv >= stored * (c.copies - 1) else None

    fc, fv = c.wait_vendor_stats(settled, what="traffic counters to cover the write")
    assert fc <= stored * 1.10, "client sent %.2fx the data" % (fc / stored)
    # Forwarding may repeat a hop that timed out under load; the claim is that
    # the client's uplink carries one copy, so only a loose bound here.
    assert fv <= stored * (c.copies - 1) * 1.25, "vendors forwarded %.2fx" % (fv / stored)
    print("client sent %.3fx, vendors forwarded %.3fx of the stored data"
          % (fc / stored, fv / stored))
