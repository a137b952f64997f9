"""Tamper evidence (issue 5, must-show 3; docs/encryption.md).

One byte of one piece of a committed chunk is flipped on a vendor's disk.
A fresh client (state and cache deleted, remounted) reads the file back
bit-identical: the corrupt replica is detected (the vendor's digest check,
or the client's digest and AEAD checks), the read is served by the other
replica, and the bad replica is reported to the FAT, where `pstore vendors`
shows it.  Path probing is off in this test so that a fresh client tries a
chunk's replicas in the committed order: the first one is the corrupt one.

A dishonest vendor goes further: its piece is altered and its index record
(header digest and recorded digest) rewritten to match, so it serves the
forged chunk as if it were sound.  The client compares the header's digest
with the one committed with the chunk (review finding H2) and reads the
other replica; shown on an unencrypted volume, where no AEAD tag would
catch it."""

import glob
import hashlib
import os
import shutil
import subprocess

from pstorelib import mount_extra, sha256_file, unmount_extra, wait_for


def _disable_probing(cluster):
    with open(cluster.client_conf, "a") as f:
        f.write("\n[probe]\nenabled = false\n")


def _flip_one_byte(cluster, vendor_id, chunk_hex):
    pieces = sorted(p for d in cluster.vendor_data_dirs(vendor_id)
                    for p in glob.glob(os.path.join(d, chunk_hex[:2], chunk_hex + ".*")))
    assert pieces, "no piece of chunk %s on vendor %d" % (chunk_hex, vendor_id)
    victim = pieces[0]
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())
    return victim


def test_flipped_byte_is_detected_and_read_elsewhere(make_cluster):
    cluster = make_cluster(vendors=3, copies=2)
    _disable_probing(cluster)
    cluster.remount_fresh()  # the mount now runs without probing
    path = os.path.join(cluster.mount, "precious.bin")
    data = os.urandom(6 << 20)  # two chunks
    with open(path, "wb") as f:
        f.write(data)
    want = hashlib.sha256(data).hexdigest()
    cluster.sync()
    chunks = cluster.locate(path)
    assert len(chunks) == 2 and all(len(c["vendors"]) == 2 for c in chunks), chunks
    target = chunks[1]
    bad_vendor = target["vendors"][0]
    before = cluster.vendors()
    victim = _flip_one_byte(cluster, bad_vendor, target["chunk_id"])

    # unmount, drop state and cache, remount: the read must come from the vendors
    cluster.remount_fresh()
    assert sha256_file(path) == want
    with open(path, "rb") as f:
        assert f.read() == data

    # the corrupt replica was reported to the FAT
    after = cluster.wait_vendor_stats(
        lambda vs: vs if vs[bad_vendor]["bad_replicas"] > before[bad_vendor]["bad_replicas"]
        else None, timeout=30, what="vendor %d's bad replica reported" % bad_vendor)
    for vid, v in after.items():
        if vid != bad_vendor:
            assert v["bad_replicas"] == before[vid]["bad_replicas"], (vid, v)
    text = cluster.cli("vendors").stdout
    assert "BAD" in text.splitlines()[0], text
    lines = [ln for ln in cluster.log("pstorefs").splitlines()
             if "fetch: chunk %s on vendor %d:" % (target["chunk_id"], bad_vendor) in ln]
    assert lines, cluster.log("pstorefs")[-2000:]
    reasons = ("the vendor cannot read its copy", "digest or seal mismatch",
               "digest differs from the committed one")
    assert any(r in lines[0] for r in reasons), lines
    print(lines[0])
    assert os.path.exists(victim)


def _forge_index(cluster, vendor_id, chunk_hex):
    """Alters the chunk's first piece on vendor_id and rewrites the vendor's
    LMDB index (mdb_dump / mdb_load, vendor stopped) so that its header and
    recorded digest match the altered payload."""
    dirs = cluster.vendor_data_dirs(vendor_id)
    index = [d for d in dirs if d.endswith("index")][0]
    pieces = sorted((p for d in dirs for p in glob.glob(os.path.join(d, chunk_hex[:2],
                                                                     chunk_hex + ".*"))),
                    key=lambda p: int(p.rsplit(".", 1)[1]))
    assert pieces

    def digest():
        h = hashlib.sha256()
        for p in pieces:
            with open(p, "rb") as f:
                h.update(f.read())
        return h.hexdigest()

    cluster.stop("vendor%d" % vendor_id)
    old = digest()
    with open(pieces[0], "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0x5A]))
    new = digest()
    dump = subprocess.run(["mdb_dump", "-a", index], capture_output=True, text=True,
                          check=True).stdout
    assert dump.count(old) == 2, "header digest and recorded digest"
    forged = index + ".forged"
    os.makedirs(forged)
    subprocess.run(["mdb_load", "-f", "/dev/stdin", forged], input=dump.replace(old, new),
                   capture_output=True, text=True, check=True)
    os.replace(os.path.join(forged, "data.mdb"), os.path.join(index, "data.mdb"))
    cluster.start("vendor%d" % vendor_id)


def test_forging_vendor_is_caught_by_the_committed_digest(make_cluster, tmp_path):
    cluster = make_cluster(vendors=2, copies=2)
    _disable_probing(cluster)
    cluster.cli("volume", "create", "clearvol", "--copies", "2", "--no-encryption")
    mnt = str(tmp_path / "mnt")
    state, cache = str(tmp_path / "c" / "state"), str(tmp_path / "c" / "cache")
    data = os.urandom(300 << 10)
    mount_extra(cluster, mnt, state, cache, opts="volume=clearvol")
    try:
        with open(os.path.join(mnt, "f.bin"), "wb") as f:
            f.write(data)
        cluster.sync(mnt)
        chunk = cluster.locate(os.path.join(mnt, "f.bin"))[0]
    finally:
        unmount_extra(mnt)
    wait_for(lambda: not os.path.ismount(mnt), 30, what="unmount")
    bad_vendor = chunk["vendors"][0]
    before = cluster.vendors()[bad_vendor]["bad_replicas"]
    _forge_index(cluster, bad_vendor, chunk["chunk_id"])
    cluster.wait_vendor_stats(lambda vs: vs[bad_vendor]["alive"], what="forging vendor back")

    # a fresh client of the volume: first asks the forging vendor
    shutil.rmtree(str(tmp_path / "c"))
    mount_extra(cluster, mnt, state, cache, opts="volume=clearvol")
    try:
        with open(os.path.join(mnt, "f.bin"), "rb") as f:
            assert f.read() == data
        cluster.wait_vendor_stats(lambda vs: vs[bad_vendor]["bad_replicas"] > before,
                                  timeout=30, what="the forging vendor reported")
    finally:
        unmount_extra(mnt)
    with open(str(tmp_path / "c" / "pstorefs.log")) as f:
        log = f.read()
    assert ("fetch: chunk %s on vendor %d: digest differs from the committed one"
            % (chunk["chunk_id"], bad_vendor)) in log, log[-2000:]
