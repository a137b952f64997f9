"""Issue 3 (FAT cluster), item 4: two clients on different volumes allocate
at the same time through different fatd instances of one etcd-backed FAT
cluster, with vendor capacity small enough that they really contend.  No
vendor is ever promised more than it has: per vendor, the bytes granted to
both clients never exceed its capacity, and `pstore vendors` shows
reserved + used <= capacity."""

import os
import shutil
import threading

import pytest

from pstorelib import (DevCluster, MSG_ALLOC, MSG_ERROR, REPLY_BIT, MiB, TlsPeer, pb,
                       pb_decode)

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None,
                                reason="needs etcd (apt-get install etcd-server)")

DEVICE_CAPACITY = 24 * MiB  # per device; two devices per vendor
ASK = 4 * MiB               # per copy, per allocation


def allocate_until_full(cluster, fat_addr, volume, grants, errors):
    """ALLOC through one fatd until it says no three times in a row."""
    peer = TlsPeer(cluster, fat_addr, timeout=30)
    refused = 0
    req_id = 1
    try:
        while refused < 3:
            req_id += 1
            r = peer.call(MSG_ALLOC, pb((1, volume), (2, ASK), (3, 2), (4, 120000)),
                          req_id=req_id)
            if r is None:
                errors.append("%s closed the connection" % fat_addr)
                return
            mtype, ctl, _ = r
            if mtype == MSG_ERROR:
                refused += 1
                continue
            assert mtype == MSG_ALLOC | REPLY_BIT, mtype
            refused = 0
            rep = pb_decode(ctl)
            for cand in rep.get(3, []):
                c = pb_decode(cand)
                grants.append((volume, c[1][0], c.get(3, [0])[0]))
    finally:
        peer.close()


def test_no_overbooking_across_fat_servers(tmp_path):
    c = DevCluster(vendors=3, copies=2, capacity=DEVICE_CAPACITY)
    c.opts += ["--fat", "3", "--no-mount"]
    try:
        c.up()
        c.cli("volume", "create", "va", "--copies", "2")
        c.cli("volume", "create", "vb", "--copies", "2")
        caps = {v: r["capacity"] for v, r in c.vendors().items()}
        assert all(0 < cap <= 2 * DEVICE_CAPACITY for cap in caps.values()), caps
        grants, errors = [], []
        threads = [threading.Thread(target=allocate_until_full,
                                    args=(c, c.proc(f)["address"], vol, grants, errors))
                   for f, vol in (("fatd1", "va"), ("fatd2", "vb"), ("fatd3", "va"),
                                  ("fatd1", "vb"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "an allocating client hangs"
        assert not errors, errors
        granted = {}
        for vol, vid, nbytes in grants:
            granted[vid] = granted.get(vid, 0) + nbytes
        # contention was real: together they asked for more than there is
        assert sum(granted.values()) >= 0.5 * sum(caps.values()), (granted, caps)
        for vid, total in granted.items():
            assert total <= caps[vid], "vendor%d granted %d of %d bytes" % (vid, total,
                                                                           caps[vid])
        for vid, r in c.vendors().items():
            assert r["reserved"] + r["used"] <= r["capacity"], r
            assert r["reserved"] == granted.get(vid, 0), (vid, r["reserved"], granted)
    finally:
        c.destroy()
