"""Issue 4, item 1: conformance of the namespace, attribute and data calls on
a pstorefs mount, error cases included, each scenario run on a local (ext4)
directory and on the mount, the two traces compared.

Every scenario works in the current directory (compare() chdirs into the
local directory, then into the mount) and returns the list of outcomes of
its calls: values, or errno names for failures."""

import errno
import fcntl
import mmap
import os
import socket
import stat
import time

import pytest

from conftest import module_cluster
from posixlib import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, RENAME_EXCHANGE,
                      RENAME_NOREPLACE, UTIME_NOW, UTIME_OMIT, as_user, compare, fallocate,
                      getxattr_buf, outcome, renameat2, stat_view, tree_view, utimensat)

cluster = module_cluster(vendors=2, copies=1)
NOBODY = 65534


@pytest.fixture
def dirs(cluster, request):
    """(local dir, mount dir) for one test, both traversable by uid 65534."""
    os.chmod(cluster.base, 0o755)
    name = request.node.name.replace("[", "_").replace("]", "")
    local = os.path.join(cluster.base, "local", name)
    mnt = os.path.join(cluster.mount, name)
    os.makedirs(local)
    os.chmod(os.path.join(cluster.base, "local"), 0o755)
    os.mkdir(mnt)
    for d in (local, mnt):
        os.chmod(d, 0o777)
    return local, mnt


def check(scenario, dirs):
    a, b = compare(scenario, *dirs)
    assert a == b, "local vs pstorefs differ:\n%s" % "\n".join(
        "%3d %r\n    %r" % (i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y) \
        + ("\nlengths %d %d" % (len(a), len(b)) if len(a) != len(b) else "")
    return a


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ namespace

def sc_dirs(root):
    t = []
    t.append(outcome(os.mkdir, "a"))
    t.append(outcome(os.mkdir, "a"))                       # EEXIST
    t.append(outcome(os.mkdir, "nope/b"))                  # ENOENT
    write("f", b"x")
    t.append(outcome(os.mkdir, "f/b"))                     # ENOTDIR
    t.append(outcome(os.mkdir, "a/b"))
    t.append(outcome(os.rmdir, "a"))                       # ENOTEMPTY
    t.append(outcome(os.rmdir, "f"))                       # ENOTDIR
    t.append(outcome(os.unlink, "a"))                      # EISDIR
    t.append(outcome(os.rmdir, "missing"))                 # ENOENT
    t.append(outcome(os.unlink, "missing"))
    t.append(stat_view("a"))                               # nlink 3
    t.append(outcome(os.rmdir, "a/b"))
    t.append(stat_view("a"))
    t.append(outcome(os.rmdir, "a"))
    t.append(outcome(os.mkdir, "n" * 255))
    t.append(outcome(os.mkdir, "n" * 256))                 # ENAMETOOLONG
    t.append(outcome(open, "m" * 256, "w"))
    t.append(outcome(os.stat, "m" * 256))
    t.append(sorted(os.listdir(".")))
    return t


def sc_rename(root):
    t = []
    write("f1", b"one")
    write("f2", b"two")
    os.mkdir("d1")
    os.mkdir("d2")
    os.mkdir("full")
    write("full/x", b"x")
    t.append(outcome(os.rename, "f1", "f2"))                # file over file
    t.append((outcome(read, "f2"), os.path.exists("f1")))
    t.append(outcome(os.rename, "d1", "d2"))                # dir over empty dir
    t.append(outcome(os.rename, "d2", "full"))              # ENOTEMPTY
    t.append(outcome(os.rename, "f2", "full"))              # EISDIR
    t.append(outcome(os.rename, "full", "f2"))              # ENOTDIR
    t.append(outcome(os.rename, "full", "full/sub"))        # EINVAL
    t.append(outcome(os.rename, "missing", "zz"))           # ENOENT
    t.append(outcome(os.rename, "f2", "d2/f2"))             # across directories
    t.append(outcome(os.rename, "d2", "full/d2"))
    t.append(stat_view("full"))
    t.append(outcome(os.rename, "full/d2/f2", "full/d2/f2"))  # same name
    write("a", b"A")
    write("b", b"B")
    t.append(outcome(renameat2, "a", "b", RENAME_NOREPLACE))  # EEXIST
    t.append(outcome(renameat2, "a", "c", RENAME_NOREPLACE))
    t.append(outcome(renameat2, "c", "b", RENAME_EXCHANGE))
    t.append((read("b"), read("c")))
    t.append(outcome(renameat2, "c", "nothing", RENAME_EXCHANGE))  # ENOENT
    t.append(outcome(renameat2, "b", "c", RENAME_EXCHANGE | RENAME_NOREPLACE))  # EINVAL
    os.mkdir("e1")
    write("e1/in1", b"1")
    os.mkdir("e2")
    os.mkdir("e2/sub")
    t.append(outcome(renameat2, "e1", "full/d2", RENAME_EXCHANGE))  # dirs across parents
    t.append(outcome(renameat2, "e2", "b", RENAME_EXCHANGE))        # dir <-> file
    t.append(stat_view("."))
    t.append(stat_view("full"))
    t.append(outcome(renameat2, "full", "full/e1", RENAME_EXCHANGE))  # EINVAL
    t.append(tree_view("."))
    return t


def sc_links(root):
    t = []
    write("f", b"data")
    t.append(outcome(os.link, "f", "g"))
    t.append(outcome(os.link, "f", "g"))                    # EEXIST
    os.mkdir("d")
    t.append(outcome(os.link, "d", "d2"))                   # EPERM
    t.append(outcome(os.link, "missing", "h"))              # ENOENT
    t.append(stat_view("f")["nlink"])
    t.append(outcome(os.rename, "g", "d/g"))
    t.append(outcome(os.rename, "f", "d/g"))                # same inode: no-op
    t.append((os.path.exists("f"), stat_view("d/g")["nlink"]))
    t.append(outcome(os.unlink, "f"))
    t.append(stat_view("d/g")["nlink"])
    t.append(outcome(os.symlink, "d/g", "s"))
    t.append(outcome(os.symlink, "d/g", "s"))               # EEXIST
    t.append(outcome(os.readlink, "s"))
    t.append(outcome(os.readlink, "d/g"))                   # EINVAL
    t.append(outcome(read, "s"))
    t.append(outcome(os.symlink, "nowhere", "dangling"))
    t.append(outcome(read, "dangling"))                     # ENOENT
    t.append(stat_view("dangling", follow=False))
    t.append(outcome(os.symlink, "t" * 4096, "toolong"))    # ENAMETOOLONG
    t.append(outcome(os.symlink, "t" * 4095, "long"))
    t.append(outcome(os.readlink, "long"))
    t.append(outcome(os.link, "s", "s-hard"))               # link to the symlink itself
    t.append(stat_view("s", follow=False)["nlink"])
    return t


def sc_unlink_open(root):
    t = []
    write("f", b"x" * 100000)
    fd = os.open("f", os.O_RDWR)
    t.append(outcome(os.unlink, "f"))
    t.append(os.path.exists("f"))
    t.append(os.fstat(fd).st_nlink)
    os.lseek(fd, 0, 0)
    t.append(len(os.read(fd, 200000)))
    os.pwrite(fd, b"more", 100000)
    t.append(os.fstat(fd).st_size)
    t.append(os.pread(fd, 4, 100000))
    os.close(fd)
    t.append(sorted(os.listdir(".")))
    return t


def sc_special(root):
    t = []
    t.append(outcome(os.mkfifo, "fifo", 0o640))
    t.append(stat_view("fifo"))
    s = socket.socket(socket.AF_UNIX)
    t.append(outcome(s.bind, "sock"))
    s.close()
    t.append(stat_view("sock", follow=False)["type"])
    t.append(outcome(os.mknod, "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3)))
    t.append(stat_view("null"))
    t.append(outcome(os.mknod, "blk", 0o600 | stat.S_IFBLK, os.makedev(7, 0)))
    t.append(stat_view("blk"))
    t.append(outcome(os.mknod, "reg", 0o600 | stat.S_IFREG))
    t.append(stat_view("reg"))
    t.append(outcome(os.mkfifo, "fifo"))                     # EEXIST
    # a FIFO works through the mount (the kernel handles its data)
    r = os.open("fifo", os.O_RDONLY | os.O_NONBLOCK)
    w = os.open("fifo", os.O_WRONLY)
    os.write(w, b"through")
    t.append(os.read(r, 100))
    os.close(w)
    os.close(r)
    return t


# ---------------------------------------------------------------- attributes

def sc_attrs(root):
    t = []
    write("f", b"abc")
    t.append(outcome(os.chmod, "f", 0o4755))
    t.append(stat_view("f")["mode"])
    t.append(outcome(os.chown, "f", 1234, 5678))
    t.append(stat_view("f"))                                # setuid gone (chown)
    t.append(outcome(os.chmod, "missing", 0o600))
    t.append(outcome(os.utime, "f", ns=(1_000_000_123, 2_000_000_456)))
    v = stat_view("f", times=True)
    t.append((v["atime_ns"], v["mtime_ns"]))
    far = 4_102_444_800 * 10**9 + 999_999_999               # 2100-01-01, past 2038
    t.append(outcome(os.utime, "f", ns=(far, far)))
    v = stat_view("f", times=True)
    t.append((v["atime_ns"], v["mtime_ns"]))
    t.append(outcome(os.utime, "f", ns=(-1_000_000_000, 5)))  # before 1970
    v = stat_view("f", times=True)
    t.append((v["atime_ns"], v["mtime_ns"]))
    t.append(outcome(utimensat, "f", (7, 7), UTIME_OMIT))
    v = stat_view("f", times=True)
    t.append((v["atime_ns"], v["mtime_ns"]))
    before = time.time_ns()
    t.append(outcome(utimensat, "f", UTIME_OMIT, UTIME_NOW))
    v = stat_view("f", times=True)
    t.append((v["atime_ns"], v["mtime_ns"] >= before - 10**9))
    t.append(outcome(utimensat, "f", (1, 1_000_000_000), UTIME_OMIT))  # EINVAL
    # ctime moves on chmod, link, rename, write, xattr change
    for what in ("chmod", "link", "rename", "write", "xattr"):
        c0 = os.stat("f" if what != "rename" else "f").st_ctime_ns
        time.sleep(0.01)
        if what == "chmod":
            os.chmod("f", 0o600)
        elif what == "link":
            os.link("f", "f-link")
        elif what == "rename":
            os.rename("f", "f2")
            os.rename("f2", "f")
        elif what == "write":
            with open("f", "ab") as fh:
                fh.write(b"z")
        else:
            os.setxattr("f", "user.c", b"1")
        time.sleep(1.1)  # the kernel's attribute cache (1 s)
        t.append((what, os.stat("f").st_ctime_ns > c0))
    return t


def sc_xattr(root):
    t = []
    write("f", b"")
    os.mkdir("d")
    t.append(outcome(os.setxattr, "f", "user.a", b"hello"))
    t.append(outcome(os.getxattr, "f", "user.a"))
    t.append(outcome(os.setxattr, "f", "user.a", b"x", os.XATTR_CREATE))   # EEXIST
    t.append(outcome(os.setxattr, "f", "user.b", b"x", os.XATTR_REPLACE))  # ENODATA
    t.append(outcome(os.setxattr, "f", "user.a", b"again", os.XATTR_REPLACE))
    t.append(outcome(os.setxattr, "f", "user.empty", b""))
    t.append(outcome(os.getxattr, "f", "user.empty"))
    t.append(outcome(os.getxattr, "f", "user.none"))                      # ENODATA
    t.append(outcome(getxattr_buf, "f", "user.a", 0))                     # size query
    t.append(outcome(getxattr_buf, "f", "user.a", 2))                     # ERANGE
    t.append(outcome(getxattr_buf, "f", "user.a", 100))
    t.append(outcome(os.setxattr, "f", "user." + "n" * 250, b"v"))
    t.append(outcome(os.setxattr, "f", "user." + "n" * 251, b"v"))        # ERANGE
    # (ext4 without ea_inode holds ~4 KiB per inode: bigger values are
    # checked on the mount alone, test_big_xattr_values)
    t.append(outcome(os.setxattr, "f", "user.big", b"b" * 3000))
    t.append(len(os.getxattr("f", "user.big")))
    t.append(outcome(os.setxattr, "f", "user.huge", b"b" * 65537))        # E2BIG
    t.append(outcome(os.setxattr, "f", "trusted.t", b"root only"))
    t.append(outcome(os.getxattr, "f", "trusted.t"))
    t.append(outcome(os.setxattr, "f", "security.s", b"sec"))
    t.append(outcome(os.getxattr, "f", "security.s"))
    t.append(outcome(os.setxattr, "d", "user.dir", b"on a directory"))
    t.append(outcome(os.getxattr, "d", "user.dir"))
    t.append(sorted(os.listxattr("f")))
    t.append(outcome(os.removexattr, "f", "user.a"))
    t.append(outcome(os.removexattr, "f", "user.a"))                      # ENODATA
    t.append(sorted(os.listxattr("f")))
    t.append(outcome(os.getxattr, "missing", "user.a"))                   # ENOENT
    t.append(outcome(os.setxattr, "f", "bogus.x", b"1"))                  # EOPNOTSUPP
    os.rename("f", "g")
    t.append(outcome(os.getxattr, "g", "user.big") == ("ok", b"b" * 3000))
    # as nobody: user.* needs write permission, trusted.* needs root
    os.chmod("g", 0o644)
    t.append(as_user(NOBODY, lambda: os.setxattr(os.path.abspath("g"), "user.n", b"1")))
    t.append(as_user(NOBODY, lambda: os.getxattr(os.path.abspath("g"), "trusted.t")))
    return t


def sc_permissions(root):
    """EACCES/EPERM as uid 65534 (the kernel checks: default_permissions)."""
    t = []
    here = os.path.abspath(".")

    def p(n):
        return os.path.join(here, n)

    write("secret", b"s", 0o600)
    write("public", b"p", 0o644)
    write("shared", b"w", 0o666)
    os.mkdir("closed", 0o700)
    os.mkdir("sticky")
    os.chmod("sticky", 0o1777)
    write("sticky/roots", b"r", 0o666)
    t.append(as_user(NOBODY, lambda: open(p("secret")).read()))           # EACCES
    t.append(as_user(NOBODY, lambda: open(p("public")).read()))
    t.append(as_user(NOBODY, lambda: open(p("public"), "a").write("x")))  # EACCES
    t.append(as_user(NOBODY, lambda: os.chmod(p("public"), 0o777)))       # EPERM
    t.append(as_user(NOBODY, lambda: os.chown(p("public"), NOBODY, NOBODY)))  # EPERM
    t.append(as_user(NOBODY, lambda: os.listdir(p("closed"))))            # EACCES
    t.append(as_user(NOBODY, lambda: os.mkdir(p("closed/x"))))            # EACCES
    t.append(as_user(NOBODY, lambda: os.unlink(p("closed/none"))))       # EACCES
    t.append(as_user(NOBODY, lambda: os.utime(p("public"), (1, 1))))      # EPERM
    t.append(as_user(NOBODY, lambda: os.utime(p("shared"), None)))        # ok: may write
    # sticky directory: may create, may remove own, not others'
    t.append(as_user(NOBODY, lambda: open(p("sticky/mine"), "w").write("m")))
    t.append(as_user(NOBODY, lambda: os.unlink(p("sticky/roots"))))       # EPERM
    t.append(as_user(NOBODY, lambda: os.rename(p("sticky/roots"), p("sticky/r2"))))  # EPERM
    t.append(as_user(NOBODY, lambda: os.unlink(p("sticky/mine"))))
    t.append(sorted(os.listdir("sticky")))
    # ownership comes from the caller
    t.append(as_user(NOBODY, lambda: (os.mkdir(p("sticky/nd")), open(p("sticky/nf"), "w").close(),
                                      os.stat(p("sticky/nd")).st_uid,
                                      os.stat(p("sticky/nf")).st_gid)))
    # setuid/setgid cleared on write and truncate by a non-owner
    write("suid", b"abc", 0o6777)
    t.append(as_user(NOBODY, lambda: open(p("suid"), "r+b").write(b"X")))
    t.append(stat_view("suid")["mode"])
    os.chmod("suid", 0o6777)
    t.append(as_user(NOBODY, lambda: os.truncate(p("suid"), 1)))
    t.append(stat_view("suid")["mode"])
    os.chmod("suid", 0o6777)
    with open("suid", "r+b") as f:                          # root keeps them
        f.write(b"R")
    t.append(stat_view("suid")["mode"])
    # setgid directory passes its group on
    os.mkdir("sgid")
    os.chown("sgid", 0, 4321)
    os.chmod("sgid", 0o2777)
    t.append(as_user(NOBODY, lambda: (open(p("sgid/f"), "w").close(),
                                      os.mkdir(p("sgid/d")))))
    t.append((stat_view("sgid/f")["gid"], stat_view("sgid/d")["gid"],
              stat_view("sgid/d")["mode"] & 0o2000))
    return t


# ----------------------------------------------------------------------- data

def sc_data(root):
    t = []
    fd = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"a" * 1000, 0)
    os.pwrite(fd, b"b" * 10, 5000)                          # hole 1000..5000
    t.append((os.fstat(fd).st_size, os.pread(fd, 6000, 0)))
    os.ftruncate(fd, 500)                                   # down
    os.ftruncate(fd, 3000)                                  # up: zeros
    t.append(os.pread(fd, 4000, 0))
    os.close(fd)
    fd = os.open("f", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"appended")
    os.pwrite(fd, b"P", 0)                                  # O_APPEND: at the end anyway
    os.close(fd)
    t.append(read("f")[-12:])
    t.append(os.stat("f").st_size)
    fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    t.append(os.stat("f").st_size)
    # fallocate
    fd = os.open("g", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"g" * 10000)
    t.append(outcome(os.posix_fallocate, fd, 0, 20000))
    t.append(os.fstat(fd).st_size)
    t.append(outcome(fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 50000))
    t.append(os.fstat(fd).st_size)
    t.append(outcome(fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000))
    t.append(os.pread(fd, 10000, 0))
    t.append(outcome(fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 10))      # EOPNOTSUPP
    t.append(outcome(fallocate, fd, 0, 0, 0))                          # EINVAL
    os.close(fd)
    t.append(outcome(os.truncate, ".", 0))                             # EISDIR
    t.append(outcome(open, ".", "w"))                                  # EISDIR
    # copy_file_range
    write("src", bytes(range(256)) * 400)
    fi = os.open("src", os.O_RDONLY)
    fo = os.open("dst", os.O_RDWR | os.O_CREAT, 0o644)
    n = 0
    while n < 50000:
        k = os.copy_file_range(fi, fo, 50000 - n, 1000 + n, n + 7)
        if k == 0:
            break
        n += k
    os.close(fi)
    t.append((n, os.fstat(fo).st_size, os.pread(fo, 60000, 0)))
    os.close(fo)
    # mmap: shared writable mapping, read back through read()
    write("m", b"\0" * 20000)
    fd = os.open("m", os.O_RDWR)
    mm = mmap.mmap(fd, 20000)
    mm[100:105] = b"mmap!"
    mm[19990:20000] = b"0123456789"
    mm.flush()
    mm.close()
    os.close(fd)
    t.append((read("m")[95:110], read("m")[-10:]))
    with open("m", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        t.append(mm[100:105])
        mm.close()
    return t


def sc_locks(root):
    """flock and POSIX record locks between processes (local to the mount)."""
    t = []
    write("l", b"lock file")
    here = os.path.abspath("l")
    fd = os.open("l", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def try_flock():
        f = os.open(here, os.O_RDWR)
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return "got it"

    t.append(as_user(0, try_flock))                          # EWOULDBLOCK
    fcntl.flock(fd, fcntl.LOCK_UN)
    t.append(as_user(0, try_flock))
    fcntl.lockf(fd, fcntl.LOCK_EX, 4, 0)                     # bytes 0..3

    def try_range(start):
        f = os.open(here, os.O_RDWR)
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 4, start)
        return "locked %d" % start

    t.append(as_user(0, lambda: try_range(2)))               # EAGAIN/EACCES
    t.append(as_user(0, lambda: try_range(4)))
    os.close(fd)
    t.append(as_user(0, lambda: try_range(0)))
    return t


SCENARIOS = [sc_dirs, sc_rename, sc_links, sc_unlink_open, sc_special, sc_attrs, sc_xattr,
             sc_permissions, sc_data, sc_locks]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_same_as_a_local_directory(dirs, scenario):
    check(scenario, dirs)


def test_exdev_never_within_the_mount(cluster, dirs):
    _, mnt = dirs
    os.makedirs(os.path.join(mnt, "a/b/c"))
    with open(os.path.join(mnt, "a/b/c/f"), "w") as f:
        f.write("x")
    os.mkdir(os.path.join(mnt, "z"))
    os.rename(os.path.join(mnt, "a/b/c/f"), os.path.join(mnt, "z/f"))
    os.rename(os.path.join(mnt, "a/b"), os.path.join(mnt, "z/b"))
    os.link(os.path.join(mnt, "z/f"), os.path.join(mnt, "a/f-link"))
    assert os.path.isdir(os.path.join(mnt, "z/b/c"))
    assert os.stat(os.path.join(mnt, "a/f-link")).st_nlink == 2


def test_attributes_and_xattrs_survive_a_fresh_client(cluster, dirs):
    """Everything set above is in the FAT mirror: a client with empty local
    state sees the same tree, modes, owners, times and xattrs."""
    _, mnt = dirs
    os.chdir(mnt)
    try:
        write("f", b"content", 0o640)
        os.chown("f", 1000, 2000)
        os.utime("f", ns=(4_102_444_800 * 10**9 + 5, 1_500_000_000 * 10**9 + 7))
        os.setxattr("f", "user.k", b"v" * 1000)
        os.setxattr("f", "trusted.t", b"t")
        os.mkfifo("fifo")
        os.mknod("null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.symlink("f", "s")
        os.link("f", "h")
        os.mkdir("d")
        os.setxattr("d", "user.dir", b"dir value")
        os.setxattr("f", "user.gone", b"x")
        os.removexattr("f", "user.gone")
        before = tree_view(".")
        times = os.stat("f").st_atime_ns, os.stat("f").st_mtime_ns
    finally:
        os.chdir("/")
    cluster.sync()
    cluster.remount_fresh()
    os.chdir(mnt)
    try:
        assert tree_view(".") == before
        assert (os.stat("f").st_atime_ns, os.stat("f").st_mtime_ns) == times
        assert sorted(os.listxattr("f")) == ["trusted.t", "user.k"]
        assert os.getxattr("f", "user.k") == b"v" * 1000
        assert os.getxattr("d", "user.dir") == b"dir value"
    finally:
        os.chdir("/")


def test_big_xattr_values(dirs):
    _, mnt = dirs
    f = os.path.join(mnt, "f")
    write(f, b"")
    os.setxattr(f, "user.big", b"b" * 65536)
    assert os.getxattr(f, "user.big") == b"b" * 65536
    assert getxattr_buf(f, "user.big", 0) == 65536
    for i in range(200):
        os.setxattr(f, "user.k%03d" % i, b"%d" % i)
    assert len(os.listxattr(f)) == 201
    # the list of names is bounded like Linux's (64 KiB): ENOSPC beyond
    with pytest.raises(OSError) as e:
        for i in range(300):
            os.setxattr(f, "user." + ("%03d" % i) * 80, b"")
    assert e.value.errno == errno.ENOSPC


def test_no_getxattr_before_every_write(cluster, dirs):
    """FUSE_HANDLE_KILLPRIV_V2 is negotiated (fuseio.c), so the kernel does
    not ask GETXATTR(security.capability) before every write: 20,000 small
    writes run at page-cache speed, not one daemon round trip each."""
    assert "FUSE_HANDLE_KILLPRIV_V2 on" in cluster.log("pstorefs")
    _, mnt = dirs
    path = os.path.join(mnt, "many")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    for _ in range(20000):
        os.write(fd, b"x" * 10)
    dt = time.monotonic() - t0
    os.close(fd)
    assert os.path.getsize(path) == 200000
    # with writeback caching and no per-write request, this is page-cache
    # speed (~20 ms); one round trip each is ~0.5-1 s here
    print("20,000 writes of 10 bytes: %.3f s" % dt)
    assert dt < 1.0, "20,000 small writes took %.2f s: a request per write?" % dt
