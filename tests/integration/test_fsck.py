"""`pstore fsck MOUNT`: clean on a consistent volume (exit 0), reports a
dangling directory entry committed behind the mount's back (exit 1); and the
writer lease fences commits: while a mount holds it, a commit without its
token is refused."""

import json
import os
import struct

from pstorelib import MSG_ERROR, MiB, TlsPeer, pb, pb_decode, write_random

MSG_COMMIT = 25


def commit_dangling_dirent(c, name):
    """A metadata-only commit adding root/name -> inode 999999 (missing)."""
    key = b"d" + struct.pack(">Q", 1) + name.encode()
    val = bytes([1]) + struct.pack(">Q", 999999) + struct.pack(">I", 0o100000)
    req = pb((1, "default"), (5, [pb((1, key), (2, val))]))
    peer = TlsPeer(c, c.proc("fatd1")["address"])
    try:
        return peer.call(MSG_COMMIT, req)
    finally:
        peer.close()


def test_fsck_clean_then_finds_a_dangling_entry(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    os.makedirs(os.path.join(c.mount, "a", "b"))
    write_random(os.path.join(c.mount, "a", "f.bin"), 9 * MiB)
    os.link(os.path.join(c.mount, "a", "f.bin"), os.path.join(c.mount, "a", "b", "g.bin"))
    r = c.cli("fsck", c.mount, "--json", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["clean"], r.stdout
    assert rep["fat_chunks"] == 3

    # fenced: the mount holds the writer lease, a commit without it is refused
    mtype, ctl, _ = commit_dangling_dirent(c, "ghost")
    assert mtype == MSG_ERROR, hex(mtype)
    assert b"writer" in pb_decode(ctl)[2][0]

    # once the mount is gone (lease released at unmount) the commit goes in,
    # and the next mount's fsck finds the damage
    c.stop("pstorefs")
    mtype, _, _ = commit_dangling_dirent(c, "ghost")
    assert mtype == MSG_COMMIT | 0x8000, hex(mtype)
    c.start("pstorefs")
    r = c.cli("fsck", c.mount, check=False)
    assert r.returncode == 1, r.stdout
    # the dev volume is encrypted: an entry committed in clear behind the
    # mount's back does not open with the volume key, and fsck says so
    # (docs/encryption.md); on an unencrypted volume it is a dangling dirent
    assert ("dangling dirent ghost" in r.stdout
            or "1 metadata mirror entries do not open with the volume key" in r.stdout), \
        r.stdout
