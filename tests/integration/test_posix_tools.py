"""Issue 4, item 3: real tools on a pstorefs mount: `git clone` of a local
repository and `git fsck`; `tar x` of a source tree and `diff -r`; `rsync
-a` in and out; the sqlite3 CLI doing 1,000 transactions, then `PRAGMA
integrity_check`.  Each result is checked again from a fresh client (empty
local state and cache) at the end."""

import os
import shutil
import subprocess

import pytest

from conftest import module_cluster
from pstorelib import REPO, make_small_tree, run

cluster = module_cluster(vendors=2, copies=1)


def need(tool):
    if not shutil.which(tool):
        pytest.skip("%s is not installed (tools/setup installs it)" % tool)


def sh(cmd, cwd=None, timeout=600):
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, "%s\nexit %d\nstdout:\n%s\nstderr:\n%s" % (
        cmd, r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


@pytest.fixture(scope="module")
def src_repo(tmp_path_factory):
    """A local git repository with some history (this project's tree)."""
    need("git")
    d = tmp_path_factory.mktemp("repo") / "r"
    shutil.copytree(os.path.join(REPO, "src"), d / "src")
    shutil.copytree(os.path.join(REPO, "docs"), d / "docs")
    g = "git -c user.email=t@example.org -c user.name=t"
    sh("git init -q . && %s add src && %s commit -q -m one && %s add docs && "
       "%s commit -q -m two && git gc -q" % (g, g, g, g), cwd=str(d))
    return str(d)


def test_git_clone_and_fsck(cluster, src_repo):
    mnt = cluster.mount
    sh("git clone -q --no-local %s %s/clone" % (src_repo, mnt))
    sh("git fsck --full --strict", cwd=mnt + "/clone")
    g = "git -c user.email=t@example.org -c user.name=t"
    sh("echo change >> docs/ARCHITECTURE.md && %s commit -q -am three && git gc -q && "
       "git fsck --full" % g, cwd=mnt + "/clone")
    sh("diff -r --exclude=.git %s/src %s/clone/src" % (src_repo, mnt))


def test_tar_extract_and_diff(cluster, tmp_path):
    src = tmp_path / "tree"
    shutil.copytree(os.path.join(REPO, "src"), src / "src")
    shutil.copytree(os.path.join(REPO, "tests"), src / "tests")
    os.symlink("src/fs/fs.h", src / "link-to-header")
    os.link(src / "src" / "fs" / "meta.c", src / "hardlink-meta.c")
    sh("tar -C %s -cf %s/t.tar ." % (src, tmp_path))
    os.mkdir(cluster.mount + "/tar")
    sh("tar -C %s/tar -xpf %s/t.tar" % (cluster.mount, tmp_path))
    sh("diff -r --no-dereference %s %s/tar" % (src, cluster.mount))
    assert os.stat(cluster.mount + "/tar/hardlink-meta.c").st_nlink == 2


def test_rsync_in_and_out(cluster, tmp_path):
    need("rsync")
    src = tmp_path / "in"
    make_small_tree(str(src), n=300, dirs=10)
    os.symlink("d00", src / "sym")
    os.chmod(src / "d01", 0o750)
    sh("rsync -aHX %s/ %s/rs/" % (src, cluster.mount))
    out = tmp_path / "out"
    sh("rsync -aHX %s/rs/ %s/" % (cluster.mount, out))
    # rsync's own check: nothing left to transfer, either way
    assert sh("rsync -aHXn --itemize-changes %s/ %s/rs/" % (src, cluster.mount)).strip() == ""
    assert sh("rsync -aHXn --itemize-changes %s/ %s/" % (src, out)).strip() == ""
    sh("diff -r --no-dereference %s %s" % (src, out))


def test_sqlite_1000_transactions(cluster):
    need("sqlite3")
    db = cluster.mount + "/db.sqlite"
    script = ["PRAGMA journal_mode=DELETE;",
              "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);",
              "CREATE INDEX tk ON t(k);"]
    for i in range(1000):
        script.append("BEGIN; INSERT INTO t(k, v) VALUES('k%d', randomblob(%d)); "
                      "UPDATE t SET k = k || 'x' WHERE id = %d; COMMIT;"
                      % (i, 100 + (i * 37) % 3000, (i * 7) % (i + 1) + 1))
    script.append("BEGIN; DELETE FROM t WHERE id % 3 = 0; COMMIT;")
    r = subprocess.run(["sqlite3", db], input="\n".join(script), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert sh("sqlite3 %s 'PRAGMA integrity_check;'" % db).strip() == "ok"
    assert sh("sqlite3 %s 'SELECT count(*) FROM t;'" % db).strip() == "667"
    # WAL mode too (shared-memory mmap of the -shm file)
    r = subprocess.run(["sqlite3", cluster.mount + "/wal.sqlite"],
                       input="PRAGMA journal_mode=WAL; CREATE TABLE w(x);"
                             + "".join("INSERT INTO w VALUES(%d);" % i for i in range(200))
                             + "PRAGMA wal_checkpoint(FULL);",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sh("sqlite3 %s/wal.sqlite 'PRAGMA integrity_check; SELECT sum(x) FROM w;'"
              % cluster.mount).split() == ["ok", str(sum(range(200)))]


def test_all_of_it_from_a_fresh_client(cluster):
    """Runs last: everything above, read by a client with no local state."""
    if not os.path.isdir(cluster.mount + "/clone"):
        pytest.skip("the tool tests did not run")
    cluster.sync()
    cluster.remount_fresh()
    sh("git fsck --full", cwd=cluster.mount + "/clone")
    if os.path.exists(cluster.mount + "/db.sqlite"):
        assert sh("sqlite3 %s/db.sqlite 'PRAGMA integrity_check;'"
                  % cluster.mount).strip() == "ok"
    run(["ls", "-lR", cluster.mount], timeout=120)
