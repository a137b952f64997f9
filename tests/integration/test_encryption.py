"""Client-side encryption (issue 5, must-show 1 and 6; docs/encryption.md).

1. A tree whose file names, contents, symlink target and extended attribute
   carry a known marker is written through the mount of an encrypted volume
   and committed: neither the marker nor any of the names appears in any byte
   the vendors (devices, LMDB index), the FAT server (LMDB store) or any
   daemon's log wrote.  The same scan finds the marker of an unencrypted
   volume (--no-encryption) written alongside, so the scan does see data.
2. A mount with a wrong passphrase (or a key file where a passphrase is
   expected, or no secret at all) fails with a clear message before
   mounting and changes nothing (local state, FAT revision); the right one
   works; `pstore volume passwd` re-wraps the key (the old passphrase stops
   working, the data reads back as it was, nothing is re-encrypted).
Real daemons, real FUSE mounts."""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from pstorelib import (mount_extra, pstore_bin, pstorefs_bin, pstorefs_pids_for, run,
                       sha256_file, snapshot_dirs, unmount_extra, wait_for)

MARKER = b"zq7MARKER-the-secret-4417"
CONTROL = b"zq7CONTROL-plain-volume-9923"
NAMES = ["zq7-quarterly-budget-report.ods", "zq7-holiday-photos-folder",
         "zq7-diary-entry-march.txt", "zq7-link-to-the-diary", "zq7-deeply-nested-folder",
         "zq7-incompressible-archive.bin", "zq7-renamed-afterwards.txt",
         "zq7-tiny-file-with-marker", "zq7MARKER-the-secret-4417.txt"]


def _files_under(paths):
    for root in paths:
        for dp, _, fns in os.walk(root):
            for n in fns:
                yield os.path.join(dp, n)


def _scan(paths, needles):
    """{needle: [files containing it]} over every byte of every file."""
    found = {n: [] for n in needles}
    for p in _files_under(paths):
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for n in needles:
            if n in data:
                found[n].append(p)
    return found


def _server_paths(cluster):
    """What the FAT servers and vendors wrote (data dirs, LMDB files) and
    every daemon's log."""
    paths = [os.path.join(cluster.dir, "logs")]
    for p in cluster.info["processes"]:
        if p["role"] in ("fatd", "vendor"):
            paths += p["data"]
    return paths


def _conf_without_secret(cluster, base):
    """A copy of client.conf without key_file (so env and options decide)."""
    out = os.path.join(base, "nosecret.conf")
    with open(cluster.client_conf) as f:
        lines = [ln for ln in f if not ln.strip().startswith("key_file")]
    with open(out, "w") as f:
        f.writelines(lines)
    return out


def _mount(conf, mnt, state, cache, volume, extra="", env=None, check=True):
    os.makedirs(mnt, exist_ok=True)
    o = "config=%s,volume=%s,state=%s,cache=%s,log=%s" % (
        conf, volume, state, cache, os.path.join(os.path.dirname(state), "pstorefs.log"))
    if extra:
        o += "," + extra
    e = dict(os.environ)
    e.pop("PSTORE_PASSPHRASE", None)
    e.update(env or {})
    return run([pstorefs_bin(), "-o", o, mnt], timeout=60, check=check, env=e,
               stdin=subprocess.DEVNULL)


def _unmount(mnt):
    unmount_extra(mnt)
    wait_for(lambda: not pstorefs_pids_for(mnt), 30, what="pstorefs of %s to exit" % mnt)


def _volumes(cluster):
    return {v["name"]: v for v in json.loads(cluster.cli("volume", "list", "--json").stdout)
            ["volumes"]}


def test_nothing_readable_reaches_servers(make_cluster, tmp_path):
    cluster = make_cluster(vendors=3, copies=2)
    assert _volumes(cluster)["default"]["encrypted"] is True
    root = os.path.join(cluster.mount, NAMES[1])
    nested = os.path.join(root, NAMES[4])
    os.makedirs(nested)
    text = (b"dear diary, " + MARKER + b"\n") * 20000      # compressible, ~0.7 MB
    with open(os.path.join(root, NAMES[2]), "wb") as f:
        f.write(text)
    blob = bytearray(os.urandom(5 << 20))                   # incompressible, 2 chunks
    for off in range(0, len(blob), 700 << 10):
        blob[off:off + len(MARKER)] = MARKER
    with open(os.path.join(nested, NAMES[5]), "wb") as f:
        f.write(blob)
    with open(os.path.join(nested, NAMES[7]), "wb") as f:
        f.write(MARKER)
    with open(os.path.join(root, NAMES[8]), "wb") as f:
        f.write(b"x")
    with open(os.path.join(root, NAMES[0]), "wb") as f:
        f.write(MARKER * 3)
    os.rename(os.path.join(root, NAMES[0]), os.path.join(root, NAMES[6]))
    os.symlink(NAMES[2], os.path.join(root, NAMES[3]))
    os.setxattr(os.path.join(root, NAMES[2]), "user.comment", MARKER)
    cluster.sync()

    # an unencrypted volume next to it: the same scan must find its marker
    plain_mnt = str(tmp_path / "plain")
    cluster.cli("volume", "create", "plainvol", "--copies", "2", "--no-encryption")
    assert _volumes(cluster)["plainvol"]["encrypted"] is False
    r = mount_extra(cluster, plain_mnt, str(tmp_path / "p" / "state"),
                    str(tmp_path / "p" / "cache"), opts="volume=plainvol")
    assert r.returncode == 0
    try:
        with open(os.path.join(plain_mnt, CONTROL.decode() + ".txt"), "wb") as f:
            # incompressible, and the marker away from where pieces are cut
            f.write(os.urandom(1000) + CONTROL + os.urandom(9000))
        cluster.sync(plain_mnt)
    finally:
        _unmount(plain_mnt)

    # what reads back through the encrypted mount is what was written
    with open(os.path.join(root, NAMES[2]), "rb") as f:
        assert f.read() == text
    with open(os.path.join(nested, NAMES[5]), "rb") as f:
        assert f.read() == bytes(blob)
    assert os.readlink(os.path.join(root, NAMES[3])) == NAMES[2]

    needles = [MARKER, CONTROL] + [n.encode() for n in NAMES]
    found = _scan(_server_paths(cluster), needles)
    leaks = {n.decode(): f for n, f in found.items() if f and n != CONTROL}
    assert not leaks, "plaintext reached the servers: %r" % leaks
    # the scan does read the vendors' data and the FAT store
    for role in ("vendor", "fatd"):
        dirs = [d for p in cluster.info["processes"] if p["role"] == role for d in p["data"]]
        assert any(f.startswith(d + os.sep) for f in found[CONTROL] for d in dirs), \
            (role, found[CONTROL])

    # a fresh client rebuilds the tree from the sealed mirror
    cluster.remount_fresh()
    with open(os.path.join(root, NAMES[6]), "rb") as f:
        assert f.read() == MARKER * 3
    assert sorted(os.listdir(root)) == sorted([NAMES[2], NAMES[3], NAMES[4], NAMES[6],
                                               NAMES[8]])
    assert os.getxattr(os.path.join(root, NAMES[2]), "user.comment") == MARKER
    assert sha256_file(os.path.join(nested, NAMES[5])) == hashlib.sha256(blob).hexdigest()


def test_wrong_passphrase_changes_nothing(make_cluster, tmp_path):
    cluster = make_cluster(vendors=2, copies=2)
    good = tmp_path / "good.pass"
    good.write_text("correct horse battery staple 42\n")
    bad = tmp_path / "bad.pass"
    bad.write_text("not the passphrase at all\n")
    new = tmp_path / "new.pass"
    new.write_text("a brand new passphrase, 2nd edition\n")
    keyfile = os.path.join(cluster.dir, "volume.key")
    conf = _conf_without_secret(cluster, str(tmp_path))
    cl = [pstore_bin(), "-c", conf]

    # no secret and no terminal: refused with what to do
    r = run(cl + ["volume", "create", "pvol"], check=False, stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "PSTORE_PASSPHRASE"})
    assert r.returncode == 2 and "--no-encryption" in r.stderr, r.stderr
    run(cl + ["volume", "create", "pvol", "--copies", "2", "--passphrase-file", str(good)])
    assert _volumes(cluster)["pvol"]["encrypted"] is True

    mnt, state, cache = (str(tmp_path / "mnt"), str(tmp_path / "c" / "state"),
                         str(tmp_path / "c" / "cache"))
    _mount(conf, mnt, state, cache, "pvol", "passphrase_file=%s" % good)
    data = os.urandom(300 << 10)
    try:
        with open(os.path.join(mnt, "secret.bin"), "wb") as f:
            f.write(data)
        cluster.sync(mnt)
    finally:
        _unmount(mnt)

    rev = _volumes(cluster)["pvol"]["revision"]
    before = snapshot_dirs([state, cache])

    def refused(extra, env=None, want=""):
        r = _mount(conf, mnt, state, cache, "pvol", extra, env=env, check=False)
        assert r.returncode != 0, r
        assert want in r.stderr, r.stderr
        assert "nothing was mounted or changed" in r.stderr, r.stderr
        assert not os.path.ismount(mnt)
        assert not pstorefs_pids_for(mnt)
        assert snapshot_dirs([state, cache]) == before
        assert _volumes(cluster)["pvol"]["revision"] == rev

    refused("passphrase_file=%s" % bad, want="volume pvol: wrong passphrase")
    refused("", env={"PSTORE_PASSPHRASE": "not the passphrase at all"},
            want="volume pvol: wrong passphrase")
    refused("key_file=%s" % keyfile, want="protected by a passphrase, and a key file was given")
    refused("", want="needs a passphrase or key file")

    # the right passphrase from the environment
    _mount(conf, mnt, state, cache, "pvol", env={"PSTORE_PASSPHRASE":
                                                 "correct horse battery staple 42"})
    try:
        with open(os.path.join(mnt, "secret.bin"), "rb") as f:
            assert f.read() == data
    finally:
        _unmount(mnt)

    # passwd: the wrong current passphrase changes nothing
    r = run(cl + ["volume", "passwd", "pvol", "--passphrase-file", str(bad),
                  "--new-passphrase-file", str(new)], check=False, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "wrong current passphrase; nothing changed" in r.stderr, r
    run(cl + ["volume", "passwd", "pvol", "--passphrase-file", str(good),
              "--new-passphrase-file", str(new)], stdin=subprocess.DEVNULL)
    # the old one no longer opens the key; the new one does, on a fresh
    # client, with the data as it was (the data was not re-encrypted)
    shutil.rmtree(os.path.dirname(state))
    r = _mount(conf, mnt, state, cache, "pvol", "passphrase_file=%s" % good, check=False)
    assert r.returncode != 0 and "wrong passphrase" in r.stderr, r.stderr
    _mount(conf, mnt, state, cache, "pvol", "passphrase_file=%s" % new)
    try:
        with open(os.path.join(mnt, "secret.bin"), "rb") as f:
            assert f.read() == data
    finally:
        _unmount(mnt)
