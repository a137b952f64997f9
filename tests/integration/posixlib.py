"""posixlib - helpers of the POSIX tests on a pstorefs mount.

- outcome(fn, *args): runs one call and returns what happened in a form that
  compares across filesystems ("ok", a value, or an errno name);
- compare(scenario, local_dir, mount_dir): runs the same scenario on a local
  directory and on the mount and returns both traces;
- as_user(uid, fn): runs fn in a forked child with real/effective/saved uid
  and gid set (e.g. 65534), returning its result or errno name;
- SmallVolume: a second pstorefs mount of a volume with a small chunk size
  (64 KiB), which can be synced, unmounted, forgotten and mounted again;
- libc helpers for calls Python lacks (renameat2, fallocate flags, utimensat
  with UTIME_NOW/UTIME_OMIT, getxattr into a small buffer).
Only the Python standard library is used.
"""

import ctypes
import errno
import os
import pickle
import shutil
import stat
import subprocess
import time

from pstorelib import binary, run

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


def _check(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def renameat2(old, new, flags):
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint]
    return _check(libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags))


def fallocate(fd, mode, off, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    return _check(libc.fallocate(fd, mode, off, length))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    ts = (_Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if isinstance(t, tuple):
            ts[i].tv_sec, ts[i].tv_nsec = t
        else:
            ts[i].tv_sec, ts[i].tv_nsec = 0, t
    libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return _check(libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0))


def getxattr_buf(path, name, size):
    """getxattr(2) into a buffer of size bytes (size 0: the value's length)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    libc.getxattr.restype = ctypes.c_ssize_t
    n = _check(libc.getxattr(os.fsencode(path), os.fsencode(name), buf if size else None, size))
    return n if size == 0 else buf.raw[:n]


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def outcome(fn, *args, **kw):
    """Runs fn; returns ("ok", value) or ("err", ERRNO_NAME)."""
    try:
        return ("ok", fn(*args, **kw))
    except OSError as e:
        return ("err", errname(e))


def as_user(uid, fn, gid=None):
    """Runs fn() in a child with uid/gid (default gid = uid); returns its
    result (picklable) or ("err", ERRNO_NAME)."""
    gid = uid if gid is None else gid
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                res = ("ok", fn())
            except OSError as e:
                res = ("err", errname(e))
            data = pickle.dumps(res)
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            data = pickle.dumps(("exc", repr(e)))
        os.write(w, data)
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(b"".join(chunks))


def stat_view(path, follow=True, times=False):
    """The parts of stat that must agree across filesystems."""
    st = os.stat(path) if follow else os.lstat(path)
    v = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
         "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        v["size"] = st.st_size
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        v["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if times:
        v["atime_ns"] = st.st_atime_ns
        v["mtime_ns"] = st.st_mtime_ns
    return v


def tree_view(root):
    """Sorted (relpath, stat_view, content or link target) of a tree."""
    out = []
    for dp, dns, fns in os.walk(root):
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            v = stat_view(p, follow=False)
            if os.path.islink(p):
                extra = os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    extra = f.read()
            else:
                extra = None
            out.append((rel, v, extra))
    return sorted(out, key=lambda x: x[0])


def compare(scenario, local_dir, mount_dir):
    """Runs scenario(root) -> trace on both; returns (local, mount)."""
    cwd = os.getcwd()
    try:
        os.chdir(local_dir)
        a = scenario(local_dir)
        os.chdir(mount_dir)
        b = scenario(mount_dir)
    finally:
        os.chdir(cwd)
    return a, b


class SmallVolume:
    """A volume with a small chunk size on its own pstorefs mount."""

    def __init__(self, cluster, name="small", chunk="64K", copies=1):
        self.c = cluster
        self.name = name
        self.base = os.path.join(cluster.base, "vol-" + name)
        self.mount = os.path.join(self.base, "mnt")
        self.state = os.path.join(self.base, "state")
        self.cache = os.path.join(self.base, "cache")
        self.log = os.path.join(self.base, "pstorefs.log")
        os.makedirs(self.mount, exist_ok=True)
        cluster.cli("volume", "create", name, "--chunk-size", chunk, "--copies", str(copies))

    def up(self):
        opts = "config=%s,volume=%s,state=%s,cache=%s,log=%s" % (
            self.c.client_conf, self.name, self.state, self.cache, self.log)
        run([binary("pstorefs", "src/fs"), "-o", opts, self.mount], timeout=120)
        return self

    def pid(self):
        r = subprocess.run(["pgrep", "-f", "pstorefs .*volume=%s,.* %s$" % (self.name, self.mount)],
                           capture_output=True, text=True)
        return [int(x) for x in r.stdout.split()]

    def down(self):
        pids = self.pid()
        subprocess.run(["fusermount3", "-u", self.mount], capture_output=True)
        end = time.monotonic() + 120
        while time.monotonic() < end and any(_alive(p) for p in pids):
            time.sleep(0.1)
        if any(_alive(p) for p in pids):
            raise AssertionError("pstorefs of %s did not exit after unmount" % self.name)

    def forget_local(self):
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)

    def destroy(self):
        try:
            self.down()
        except Exception:  # noqa: BLE001 - teardown goes on
            subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True)
            for p in self.pid():
                try:
                    os.kill(p, 9)
                except OSError:
                    pass


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
