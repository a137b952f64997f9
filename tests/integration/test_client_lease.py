"""Issue 2, item 7: a client killed (-9) after receiving a provisional
allocation but before committing: its reservations are released when its
lease expires (short lease: 3 s)."""

import os
import signal
import subprocess
import sys
import time

from pstorelib import BIG_MB, MiB, wait_for

LEASE_MS = 3000
HERE = os.path.dirname(os.path.abspath(__file__))


def reserved_total(c):
    return sum(v["reserved"] for v in c.vendors().values())


def test_killed_pstorefs_reservations_expire_with_its_lease(make_cluster):
    c = make_cluster(vendors=4, copies=2, lease_ms=LEASE_MS)
    dst = os.path.join(c.mount, "big.bin")
    dd = subprocess.Popen(["dd", "if=/dev/urandom", "of=" + dst, "bs=1M",
                           "count=%d" % BIG_MB, "conv=fsync"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: reserved_total(c) > 0 or dd.poll() is not None, 300, 0.05,
                 "a provisional allocation")
        assert reserved_total(c) > 0, "the write committed before a reservation was seen"
        c.kill("pstorefs")
    finally:
        dd.kill()
        dd.wait(timeout=60)
    t0 = time.monotonic()
    wait_for(lambda: reserved_total(c) == 0, LEASE_MS / 1000 + 15, 0.2,
             "reservations released after the lease")
    assert time.monotonic() - t0 < LEASE_MS / 1000 + 15


ALLOC_CLIENT = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from pstorelib import DevCluster, TlsPeer, pb, MSG_ALLOC, REPLY_BIT
c = DevCluster.__new__(DevCluster); c.dir = sys.argv[2]
peer = TlsPeer(c, sys.argv[3])
r = peer.call(MSG_ALLOC, pb((1, "default"), (2, 32 << 20), (3, 2), (4, int(sys.argv[4]))))
print("reply", r[0] if r else None, flush=True)
time.sleep(3600)
'''


def test_killed_raw_client_reservations_expire(make_cluster):
    c = make_cluster(vendors=4, copies=2, lease_ms=LEASE_MS)
    fat = c.proc("fatd1")["address"]
    p = subprocess.Popen([sys.executable, "-c", ALLOC_CLIENT, HERE, c.dir, fat, str(LEASE_MS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == "reply %d" % (MSG_ALLOC_REPLY), (line, p.stderr.read()
                                                               if p.poll() is not None else "")
        assert reserved_total(c) > 0
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    wait_for(lambda: reserved_total(c) == 0, LEASE_MS / 1000 + 15, 0.2,
             "reservations released after the lease")


MSG_ALLOC_REPLY = 23 | 0x8000
