"""Capability tokens: a vendor stores a chunk only with a valid token the FAT
server signed for that vendor, owner and lease, unexpired and within its
byte limit.  Forged, expired, replayed-to-another-vendor and oversized
tokens are refused (and nothing is stored).  Real vendors, a real FAT
server's tokens, hand-made ChunkPut frames."""

import os
import time

import pytest

from pstorelib import chunk_header, pb, pb_decode
from seclib import MSG_CHUNK_PUT, Cluster, Peer, alloc, error_of, ok_of, volume_id

EACCES, E2BIG = 13, 7


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(vendors=2, copies=1)
    try:
        c.up()
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def fat(cluster):
    p = Peer(cluster, cluster.fat_addr(), cluster.cert("client"))
    yield p
    p.close()


def put(cluster, vendor, token, owner, lease_id, payload=b"x" * 1000, chunk_id=None):
    """Sends one chunk to `vendor` (chain of one) with `token`; the reply."""
    chunk_id = chunk_id or os.urandom(16)
    hdr = chunk_header(chunk_id, owner, lease_id, vendor, [vendor], 1, len(payload), payload)
    ctl = pb((1, pb((1, vendor), (2, cluster.vendor_addr(vendor)), (3, token))))
    p = Peer(cluster, cluster.vendor_addr(vendor), cluster.cert("client"))
    try:
        return p.call(MSG_CHUNK_PUT, ctl, hdr + payload)
    finally:
        p.close()


def stored(cluster, vendor):
    return {c["chunk_id"] for c in cluster.dump_index(vendor).get("chunks", [])}


def test_valid_token_is_accepted(cluster, fat):
    owner = volume_id(fat)
    lease, _, cands = alloc(fat, copies=2)
    for v in (1, 2):
        r = ok_of(put(cluster, v, cands[v][1], owner, lease), MSG_CHUNK_PUT)
        assert r[1] == [bytes([v])]  # packed repeated stored_on


def test_forged_token_is_refused(cluster, fat):
    owner = volume_id(fat)
    lease, _, cands = alloc(fat)
    v = next(iter(cands))
    tok = pb_decode(cands[v][1])
    body, sig = tok[1][0], tok[2][0]
    # 1. a flipped signature bit
    bad_sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
    # 2. a body granting more bytes, with the original signature
    fields = pb_decode(body)
    bigger = pb((1, fields[1][0]), (2, fields[2][0]), (3, fields[3][0]), (4, 1 << 40),
                (5, fields[5][0]))
    # 3. a token for this owner and lease signed by nobody (all-zero signature)
    for forged in (pb((1, body), (2, bad_sig)), pb((1, bigger), (2, sig)),
                   pb((1, body), (2, b"\0" * 64))):
        cid = os.urandom(16)
        code, msg = error_of(put(cluster, v, forged, owner, lease, chunk_id=cid))
        assert code == EACCES and "signature" in msg, msg
        assert cid.hex() not in stored(cluster, v)


def test_expired_token_is_refused(cluster, fat):
    owner = volume_id(fat)
    lease, expiry, cands = alloc(fat, lease_ms=1000)
    assert expiry <= time.time() * 1000 + 5000, "the FAT did not honour a short lease"
    time.sleep(max(0.0, expiry / 1000.0 - time.time()) + 0.5)
    v = next(iter(cands))
    cid = os.urandom(16)
    code, msg = error_of(put(cluster, v, cands[v][1], owner, lease, chunk_id=cid))
    assert code == EACCES and "expired" in msg, msg
    assert cid.hex() not in stored(cluster, v)


def test_token_replayed_to_another_vendor_is_refused(cluster, fat):
    owner = volume_id(fat)
    lease, _, cands = alloc(fat, copies=1)
    (v, (_, token)), = cands.items() if len(cands) == 1 else [sorted(cands.items())[0]]
    other = 2 if v == 1 else 1
    cid = os.urandom(16)
    code, msg = error_of(put(cluster, other, token, owner, lease, chunk_id=cid))
    assert code == EACCES and "vendor %d" % v in msg, msg
    assert cid.hex() not in stored(cluster, other)
    # the same token with another owner (volume) or lease is refused too
    code, msg = error_of(put(cluster, v, token, os.urandom(16), lease))
    assert code == EACCES, msg
    code, msg = error_of(put(cluster, v, token, owner, lease + 1))
    assert code == EACCES, msg


def test_oversized_token_is_refused(cluster, fat):
    owner = volume_id(fat)
    lease, _, cands = alloc(fat, nbytes=4096)
    v = next(iter(cands))
    token = cands[v][1]
    # a token blob far larger than any real one (padding after a valid token)
    huge = token + b"\0" * (64 << 10)
    cid = os.urandom(16)
    code, msg = error_of(put(cluster, v, huge, owner, lease, chunk_id=cid))
    assert code == EACCES, msg
    # a chunk larger than the token's byte limit
    code, msg = error_of(put(cluster, v, token, owner, lease, payload=os.urandom(64 << 10),
                             chunk_id=cid))
    assert code == E2BIG, msg
    assert cid.hex() not in stored(cluster, v)
