"""The replica chain under a frozen vendor: timeouts shrink along the chain
(ChunkPut.deadline_ms), so the head answers its client in time with the
frozen hop marked failed instead of everyone timing out together; and a
vendor's request queue is bounded in bytes (queue_bytes), answering EAGAIN
at once beyond it.  A forwarded reply reports only hops after the vendor.
Real daemons, a SIGSTOPped vendor, hand-made ChunkPut frames."""

import contextlib
import os
import signal
import struct
import time

import pytest

from hardlib import client_peer, put_frame, set_vendor_option
from pstorelib import wait_for
from seclib import MSG_CHUNK_PUT, MSG_PING, Cluster, Peer, alloc, error_of, ok_of, volume_id

EAGAIN = 11


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(vendors=3, copies=1)
    try:
        c.up()
        c.stop("vendor1")
        set_vendor_option(c, 1, "queue_bytes", "1M")
        c.start("vendor1")
        yield c
    finally:
        c.destroy()


@contextlib.contextmanager
def frozen(cluster, vendor):
    """The vendor SIGSTOPped (its TCP port still accepts connections)."""
    pid = cluster.proc("vendor%d" % vendor)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def lease_for_all(cluster):
    fat = Peer(cluster, cluster.fat_addr(), cluster.cert("client"))
    try:
        owner = volume_id(fat)
        for _ in range(40):
            lease, _, cands = alloc(fat, nbytes=16 << 20, copies=3)
            if len(cands) >= 3:
                return owner, lease, {v: c[1] for v, c in cands.items()}
            time.sleep(0.5)
        raise AssertionError("no lease on the 3 vendors")
    finally:
        fat.close()


def test_head_answers_in_time_when_the_tail_is_frozen(cluster):
    # the lease first: a vendor frozen for long is not alive for the FAT
    owner, lease, tokens = lease_for_all(cluster)
    p = client_peer(cluster, 1, timeout=20)
    with frozen(cluster, 3):
        t0 = time.monotonic()
        p.sock.sendall(put_frame(cluster, [1, 2, 3], tokens, owner, lease,
                                 os.urandom(4000), deadline_ms=6000))
        r = _recv(p)
        took = time.monotonic() - t0
    p.close()
    rep = ok_of(r, MSG_CHUNK_PUT)
    stored = _packed(rep.get(1, []))
    failed = _packed(rep.get(2, []))
    assert stored == [1, 2], rep
    assert 3 in failed, rep
    assert took < 6.5, "the head answered after %.1f s (deadline 6 s)" % took


def test_queue_bytes_bound_answers_eagain(cluster):
    owner, lease, tokens = lease_for_all(cluster)
    big = os.urandom(900 * 1024)
    held = client_peer(cluster, 1, timeout=20)
    other = client_peer(cluster, 1, timeout=20)
    with frozen(cluster, 3):
        # held while vendor 1 forwards to the frozen vendor 3
        held.sock.sendall(put_frame(cluster, [1, 3], tokens, owner, lease, big,
                                    deadline_ms=8000))
        wait_for(lambda: load_of(cluster, 1) >= 2, 10, 0.1, "the first put admitted")
        t0 = time.monotonic()
        other.sock.sendall(put_frame(cluster, [1], tokens, owner, lease, big))
        r = _recv(other)
        assert time.monotonic() - t0 < 2.0
        code, msg = error_of(r)
        assert code == EAGAIN, msg
        # the first one completes (vendor 3 marked failed), then room again
        rep = ok_of(_recv(held), MSG_CHUNK_PUT)
        assert _packed(rep.get(1, [])) == [1]
        other.sock.sendall(put_frame(cluster, [1], tokens, owner, lease, big))
        ok_of(_recv(other), MSG_CHUNK_PUT)
    held.close()
    other.close()


def load_of(cluster, vendor):
    """Requests in flight at the vendor, this ping included."""
    p = client_peer(cluster, vendor)
    try:
        return ok_of(p.call(MSG_PING), MSG_PING).get(4, [0])[0]
    finally:
        p.close()


def _recv(peer):
    hdr = peer._recv_exact(24)
    assert hdr is not None, "connection closed"
    _, _, rtype, _, cl, dl = struct.unpack("<IHHQII", hdr)
    c = peer._recv_exact(cl) if cl else b""
    d = peer._recv_exact(dl) if dl else b""
    return rtype, c, d


def _packed(vals):
    """Repeated uint32 fields: packed (bytes of varints) or one int each."""
    out = []
    for v in vals:
        if isinstance(v, int):
            out.append(v)
            continue
        i = 0
        while i < len(v):
            x = shift = 0
            while True:
                b = v[i]
                i += 1
                x |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out.append(x)
    return out
