"""Issue 2, item 2: a 256 MiB random file and a tree of 1,000 small files,
copied in with `cp -a` and with `tar`, read back bit-identical; and again
after `down`/`up` with the client's local state and cache deleted, so that
namespace and data come from the FAT server and the vendors."""

import os
import shutil
import subprocess

from pstorelib import BIG_MB, MiB, drop_caches, make_small_tree, run, sha256_file, \
    tree_digest, write_random


def check_mount(mnt, big_sum, tree_sum):
    drop_caches()
    assert sha256_file(os.path.join(mnt, "big.bin")) == big_sum
    assert os.path.getsize(os.path.join(mnt, "big.bin")) == BIG_MB * MiB
    assert tree_digest(os.path.join(mnt, "cp-tree")) == tree_sum
    assert tree_digest(os.path.join(mnt, "tar-tree", "tree")) == tree_sum


def test_files_read_back_identical_also_from_a_fresh_client(make_cluster, tmp_path):
    c = make_cluster(vendors=4, copies=2)
    src = tmp_path / "src"
    src.mkdir()
    big_sum = write_random(str(src / "big.bin"), BIG_MB * MiB)
    make_small_tree(str(src / "tree"), n=1000)
    tree_sum = tree_digest(str(src / "tree"))

    run(["cp", "-a", str(src / "big.bin"), os.path.join(c.mount, "big.bin")], timeout=600)
    run(["cp", "-a", str(src / "tree"), os.path.join(c.mount, "cp-tree")], timeout=600)
    os.mkdir(os.path.join(c.mount, "tar-tree"))
    tar = subprocess.run("tar -C %s -cf - tree | tar -C %s -xpf -"
                         % (src, os.path.join(c.mount, "tar-tree")),
                         shell=True, capture_output=True, text=True, timeout=600)
    assert tar.returncode == 0, tar.stderr
    check_mount(c.mount, big_sum, tree_sum)

    # A fresh client: stop everything, forget the client's local state and
    # cache, start again on the same vendor and FAT data.
    c.down()
    state, cache = c.proc("pstorefs")["data"]
    shutil.rmtree(state)
    shutil.rmtree(cache)
    c.up()
    check_mount(c.mount, big_sum, tree_sum)
