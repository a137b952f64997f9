"""`pstore fsck MOUNT`: clean on a consistent volume (exit 0), reports a
dangling directory entry committed behind the mount's back (exit 1); and the
writer lease fences commits: while a mount holds it, a commit without its
token is refused.

The dev volume is encrypted: an entry committed in clear behind its mount's
back does not open with the volume key, and that is what fsck reports there
(docs/encryption.md).  The dangling-entry check itself is exercised on an
unencrypted volume (`volume create --no-encryption`) mounted next to it."""

import json
import os
import struct

from pstorelib import (MSG_ERROR, MiB, TlsPeer, mount_extra, pb, pb_decode, pstorefs_pids_for,
                       unmount_extra, wait_for, write_random)

MSG_COMMIT = 25


def commit_dangling_dirent(c, name, volume="default"):
    """A metadata-only commit adding root/name -> inode 999999 (missing)."""
    key = b"d" + struct.pack(">Q", 1) + name.encode()
    val = bytes([1]) + struct.pack(">Q", 999999) + struct.pack(">I", 0o100000)
    req = pb((1, volume), (5, [pb((1, key), (2, val))]))
    peer = TlsPeer(c, c.proc("fatd1")["address"])
    try:
        return peer.call(MSG_COMMIT, req)
    finally:
        peer.close()


def make_tree(mnt):
    os.makedirs(os.path.join(mnt, "a", "b"))
    write_random(os.path.join(mnt, "a", "f.bin"), 9 * MiB)
    os.link(os.path.join(mnt, "a", "f.bin"), os.path.join(mnt, "a", "b", "g.bin"))


def fsck_json(c, mnt):
    r = c.cli("fsck", mnt, "--json", check=False)
    return r.returncode, json.loads(r.stdout), r.stdout


def assert_fenced(c, volume):
    """The mount holds the writer lease: a commit without it is refused."""
    mtype, ctl, _ = commit_dangling_dirent(c, "ghost", volume)
    assert mtype == MSG_ERROR, hex(mtype)
    assert b"writer" in pb_decode(ctl)[2][0]


def test_fsck_encrypted_volume_reports_an_entry_in_clear(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    make_tree(c.mount)
    rc, rep, out = fsck_json(c, c.mount)
    assert rc == 0 and rep["clean"], out
    assert rep["fat_chunks"] == 3
    assert_fenced(c, "default")

    # once the mount is gone (lease released at unmount) the commit goes in,
    # and the next mount's fsck finds it: in clear, it does not open
    c.stop("pstorefs")
    mtype, _, _ = commit_dangling_dirent(c, "ghost")
    assert mtype == MSG_COMMIT | 0x8000, hex(mtype)
    c.start("pstorefs")
    r = c.cli("fsck", c.mount, check=False)
    assert r.returncode == 1, r.stdout
    assert "1 metadata mirror entries do not open with the volume key" in r.stdout, r.stdout


def test_fsck_finds_a_dangling_entry_on_an_unencrypted_volume(make_cluster, tmp_path):
    c = make_cluster(vendors=3, copies=2)
    c.cli("volume", "create", "plainvol", "--copies", "2", "--no-encryption")
    vols = {v["name"]: v for v in json.loads(c.cli("volume", "list", "--json").stdout)
            ["volumes"]}
    assert vols["plainvol"]["encrypted"] is False, vols
    mnt = str(tmp_path / "plain")

    def mount():
        r = mount_extra(c, mnt, str(tmp_path / "p" / "state"), str(tmp_path / "p" / "cache"),
                        opts="volume=plainvol")
        assert r.returncode == 0, r.stderr

    def unmount():
        unmount_extra(mnt)
        wait_for(lambda: not pstorefs_pids_for(mnt), 30, what="pstorefs of %s to exit" % mnt)

    mount()
    try:
        make_tree(mnt)
        rc, rep, out = fsck_json(c, mnt)
        assert rc == 0 and rep["clean"], out
        assert rep["fat_chunks"] == 3
        assert_fenced(c, "plainvol")
    finally:
        unmount()
    mtype, _, _ = commit_dangling_dirent(c, "ghost", "plainvol")
    assert mtype == MSG_COMMIT | 0x8000, hex(mtype)
    mount()
    try:
        r = c.cli("fsck", mnt, check=False)
        print(r.stdout)
        assert r.returncode == 1, r.stdout
        assert "dangling dirent ghost" in r.stdout, r.stdout
        assert "do not open with the volume key" not in r.stdout, r.stdout
    finally:
        unmount()
