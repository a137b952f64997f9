"""Orphan GC: a chunk uploaded under a lease that closes without a commit
does not stay on the vendor forever.  The vendor asks the FAT about chunks
older than orphan_grace_ms it has not seen confirmed; once their lease is
closed and the FAT's chunk table does not have them on that vendor, the
vendor deletes them.  Committed chunks stay (and are confirmed, so they are
not asked about again), and a late commit of a deleted orphan is refused.
Real daemons, hand-made ChunkPut and Commit frames, a short lease and
grace."""

import os
import time

import pytest

from hardlib import set_vendor_option
from pstorelib import chunk_header, pb, wait_for
from seclib import MSG_CHUNK_PUT, MSG_COMMIT, Cluster, Peer, alloc, error_of, ok_of, volume_id

ESTALE = 116


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(vendors=1, copies=1, lease_ms=2000)
    try:
        c.up()
        c.stop("vendor1")
        set_vendor_option(c, 1, "orphan_grace_ms", 1000)
        c.start("vendor1")
        yield c
    finally:
        c.destroy()


def put(cluster, token, owner, lease_id, chunk_id, payload):
    hdr = chunk_header(chunk_id, owner, lease_id, 1, [1], 1, len(payload), payload)
    ctl = pb((1, pb((1, 1), (2, cluster.vendor_addr(1)), (3, token))))
    p = Peer(cluster, cluster.vendor_addr(1), cluster.cert("client"))
    try:
        return p.call(MSG_CHUNK_PUT, ctl, hdr + payload)
    finally:
        p.close()


def stored(cluster):
    return {c["chunk_id"] for c in cluster.dump_index(1).get("chunks", [])}


def commit(fat, lease_id, chunk_id, size, release):
    placed = pb((1, chunk_id), (2, size), (3, [1]), (4, lease_id))
    return fat.call(MSG_COMMIT, pb((1, "default"), (2, lease_id), (3, placed),
                                   (6, release), (8, os.urandom(16))))


def test_uncommitted_chunk_is_deleted_after_its_lease_closes(cluster):
    fat = Peer(cluster, cluster.fat_addr(), cluster.cert("client"))
    try:
        wait_for(lambda: bool(alloc(fat, nbytes=1 << 16, lease_ms=2000)[2]), 20, 0.5,
                 "vendor 1 registered")
        owner = volume_id(fat)
        lease, _, cands = alloc(fat, nbytes=1 << 16, lease_ms=2000)
        kept, orphan = os.urandom(16), os.urandom(16)
        payload = os.urandom(3000)
        ok_of(put(cluster, cands[1][1], owner, lease, kept, payload), MSG_CHUNK_PUT)
        ok_of(put(cluster, cands[1][1], owner, lease, orphan, payload[::-1]),
              MSG_CHUNK_PUT)
        ok_of(commit(fat, lease, kept, len(payload), False), MSG_COMMIT)
        assert {kept.hex(), orphan.hex()} <= stored(cluster)

        # the lease expires (2 s), the grace passes (1 s): the orphan goes
        wait_for(lambda: orphan.hex() not in stored(cluster), 30, 0.5,
                 "the uncommitted chunk deleted")
        assert kept.hex() in stored(cluster)
        assert "whose lease closed without a commit" in cluster.log("vendor1")

        # a late commit of the deleted chunk is refused, not recorded
        code, msg = error_of(commit(fat, lease, orphan, len(payload), False))
        assert code == ESTALE, msg

        # the committed chunk is confirmed and survives further passes
        time.sleep(3)
        assert kept.hex() in stored(cluster)
    finally:
        fat.close()
