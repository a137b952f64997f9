"""Issue 2, item 3: `pstore locate` shows every chunk of a file on exactly
`copies` distinct vendors, and the vendors' own index (`pstore-vendord
--dump-index --json`) shows each chunk split into at least the asked number
of pieces (2) on distinct devices."""

import os

from conftest import module_cluster
from pstorelib import MiB, write_random

cluster = module_cluster(vendors=4, copies=2)
SIZE = 64 * MiB + 12345
CHUNK = 4 * MiB


def index_chunks(dump):
    """{chunk id hex: [device of each piece]} from a vendor's index dump."""
    items = dump.get("chunks", []) if isinstance(dump, dict) else dump
    out = {}
    for ch in items:
        cid = ch.get("chunk_id") or ch.get("id")
        out[cid] = [p.get("device") for p in ch.get("pieces", [])]
    return out


def test_locate_lists_each_chunk_on_copies_distinct_vendors(cluster):
    path = os.path.join(cluster.mount, "f.bin")
    write_random(path, SIZE)
    cluster.sync(path)
    chunks = cluster.locate(path)
    ids = set(cluster.vendors())
    assert [ch["index"] for ch in chunks] == list(range((SIZE + CHUNK - 1) // CHUNK))
    assert len({ch["chunk_id"] for ch in chunks}) == len(chunks)
    for ch in chunks:
        assert len(ch["vendors"]) == cluster.copies, ch
        assert len(set(ch["vendors"])) == cluster.copies, ch
        assert set(ch["vendors"]) <= ids, ch
        assert ch["stored"] > 0


def test_vendor_index_splits_each_chunk_over_distinct_devices(cluster):
    path = os.path.join(cluster.mount, "g.bin")
    write_random(path, 16 * MiB)
    cluster.sync(path)
    chunks = cluster.locate(path)
    dumps = {v: index_chunks(cluster.dump_index(v)) for v in cluster.vendors()}
    for ch in chunks:
        for v in ch["vendors"]:
            devices = dumps[v].get(ch["chunk_id"])
            assert devices is not None, "vendor %d has no chunk %s" % (v, ch["chunk_id"])
            assert len(devices) >= 2, (v, ch["chunk_id"], devices)
            assert len(set(devices)) == min(len(devices), 2), (v, ch["chunk_id"], devices)
