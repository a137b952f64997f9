"""Issue 4, item 6: overwriting a 64 MiB file 5 times leaves the space in use
at the vendors close to 64 MiB x copies once flushed (the replaced chunks are
freed at the FAT and deleted at the vendors), and a sequential writer uploads
each chunk once (vendors receive ~1x the data from the client)."""

import os

from pstorelib import MiB, sha256_file, write_random

SIZE = 64 * MiB
COPIES = 2


def totals(c):
    vs = c.vendors().values()
    return (sum(v["used"] for v in vs), sum(v.get("bytes_stored", 0) for v in vs),
            sum(v.get("bytes_from_clients", 0) for v in vs))


def test_overwrites_free_space_at_the_vendors(make_cluster, tmp_path):
    c = make_cluster(vendors=3, copies=COPIES)
    path = os.path.join(c.mount, "f.bin")
    _, _, clients0 = totals(c)
    for i in range(5):
        digest = write_random(path, SIZE, block=MiB)  # open(O_TRUNC) + sequential writes
        c.sync()
    assert sha256_file(path) == digest
    used, _, clients = totals(c)
    print("FAT used %.1f MiB, from clients %.1f MiB for 5 x %d MiB"
          % (used / MiB, (clients - clients0) / MiB, SIZE // MiB))
    # the FAT counts only the last version (each chunk of the encrypted dev
    # volume carries a 12-byte nonce and a 16-byte tag: docs/encryption.md)
    nchunks = len(c.locate(path))
    assert used == (SIZE + 28 * nchunks) * COPIES, used
    # each version uploaded once: the client sent ~5 x 64 MiB (chain forwarding
    # makes the other copies), not a re-upload of chunks while they filled
    assert clients - clients0 <= 5 * SIZE * 1.15, (clients - clients0) / MiB
    # the vendors deleted the freed chunks (told through heartbeat replies)
    c.wait_vendor_stats(lambda vs: sum(v.get("bytes_stored", 0) for v in vs.values())
                        <= SIZE * COPIES * 1.05, timeout=30,
                        what="vendors to delete the replaced chunks")
