"""pstorelib - helpers that keep pstore's integration tests short.

A DevCluster drives tools/pstore-dev (the same tool users and outside
checkers drive) in a temporary directory, reads cluster.json, and offers what
tests need: the CLI (`pstore vendors --json`, `locate`, `sync`), the vendors'
index dump, file checks, raw TLS connections with the dev CA's certificates,
and a tiny protobuf encoder for hand-made frames.  Only the Python standard
library is used.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
PSTORE_DEV = os.path.join(REPO, "tools", "pstore-dev")
BUILD = os.environ.get("PSTORE_BUILD") or os.path.join(REPO, "build")
BIG_MB = int(os.environ.get("PSTORE_IT_BIG_MB", "256"))
MiB = 1 << 20


def binary(name, sub):
    p = os.path.join(BUILD, sub, name)
    if os.access(p, os.X_OK):
        return p
    found = shutil.which(name)
    if found:
        return found
    raise AssertionError("%s not built (looked at %s)" % (name, p))


def pstore_bin():
    return binary("pstore", "src/cli")


def vendord_bin():
    return binary("pstore-vendord", "src/vendor")


def run(argv, timeout=120, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def wait_for(pred, timeout, interval=0.2, what="condition"):
    """Polls pred() until it returns a true value; returns it or raises."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)"
                         % (timeout, what, last))


# ---------------------------------------------------------------- the cluster

class DevCluster:
    def __init__(self, vendors=4, copies=2, lease_ms=None, vendor_timeout_ms=3000,
                 heartbeat_ms=500, capacity=None, base=None):
        self.base = base or tempfile.mkdtemp(prefix="pstore-it-", dir="/tmp")
        self.dir = os.path.join(self.base, "dev")
        self.mount = os.path.join(self.base, "mnt")
        self.vendors_n = vendors
        self.copies = copies
        self.opts = []
        if lease_ms is not None:
            self.opts += ["--lease-ms", str(lease_ms)]
        if vendor_timeout_ms is not None:
            self.opts += ["--vendor-timeout-ms", str(vendor_timeout_ms)]
        if heartbeat_ms is not None:
            self.opts += ["--heartbeat-ms", str(heartbeat_ms)]
        if capacity is not None:
            self.opts += ["--capacity", str(capacity)]
        self.info = None

    # -- pstore-dev
    def dev(self, *args, timeout=300, check=True):
        return run([PSTORE_DEV] + list(args) + ["--dir", self.dir], timeout=timeout,
                   check=check)

    def up(self):
        run([PSTORE_DEV, "up", "--dir", self.dir, "--mount", self.mount,
             "--vendors", str(self.vendors_n), "--copies", str(self.copies)] + self.opts,
            timeout=180)
        self.reload()
        return self

    def down(self):
        r = run([PSTORE_DEV, "down", "--dir", self.dir], timeout=300, check=False)
        subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True)
        return r

    def destroy(self):
        """Teardown: down whatever happens, then remove the data."""
        try:
            self.down()
        finally:
            # Kill anything left (a hung daemon must not outlive the test).
            try:
                self.reload()
                for p in self.info["processes"]:
                    if p.get("pid"):
                        try:
                            os.kill(p["pid"], signal.SIGKILL)
                        except OSError:
                            pass
            except Exception:
                pass
            subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True)
            if not os.environ.get("PSTORE_IT_KEEP"):
                shutil.rmtree(self.base, ignore_errors=True)

    def reload(self):
        with open(os.path.join(self.dir, "cluster.json")) as f:
            self.info = json.load(f)
        return self.info

    def proc(self, pid_id):
        self.reload()
        for p in self.info["processes"]:
            if p["id"] == pid_id:
                return p
        raise KeyError(pid_id)

    def start(self, pid_id):
        self.dev("start", pid_id)
        self.reload()

    def stop(self, pid_id):
        self.dev("stop", pid_id)
        self.reload()

    def kill(self, pid_id):
        self.dev("kill", pid_id)
        self.reload()

    @property
    def client_conf(self):
        return os.path.join(self.dir, "client.conf")

    def log(self, pid_id):
        try:
            with open(os.path.join(self.dir, "logs", pid_id + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- the CLI
    def cli(self, *args, timeout=120, check=True):
        return run([pstore_bin(), "-c", self.client_conf] + list(args), timeout=timeout,
                   check=check)

    def vendors(self):
        """{id: record} from `pstore vendors --json`."""
        out = json.loads(self.cli("vendors", "--json").stdout)
        return {v["id"]: v for v in out["vendors"]}

    def locate(self, path):
        return json.loads(self.cli("locate", path, "--json").stdout)["chunks"]

    def sync(self, path=None):
        self.cli("sync", path or self.mount, timeout=900)

    def wait_vendor_stats(self, pred, timeout=20, what="vendor statistics"):
        return wait_for(lambda: pred(self.vendors()), timeout, 0.5, what)

    def dump_index(self, vendor_id):
        conf = self.proc("vendor%d" % vendor_id)["config"]
        r = run([vendord_bin(), "-c", conf, "--dump-index", "--json"], timeout=60)
        return json.loads(r.stdout)

    # -- the client's local state
    def remount_fresh(self):
        """Unmounts, deletes the client's state and cache, mounts again: what
        is read afterwards comes from the FAT server and the vendors."""
        p = self.proc("pstorefs")
        self.stop("pstorefs")
        for d in p["data"]:
            shutil.rmtree(d, ignore_errors=True)
        self.start("pstorefs")

    def vendor_data_dirs(self, vendor_id):
        return self.proc("vendor%d" % vendor_id)["data"]


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


# ---------------------------------------------------------------- files

def write_random(path, size, block=4 * MiB, seed=None):
    """Writes size random bytes; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(block, left)
            b = os.urandom(n)
            f.write(b)
            h.update(b)
            left -= n
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def make_small_tree(root, n=1000, dirs=20):
    """n small files of varied sizes in `dirs` folders, with modes and times."""
    os.makedirs(root)
    for d in range(dirs):
        os.mkdir(os.path.join(root, "d%02d" % d))
    for i in range(n):
        p = os.path.join(root, "d%02d" % (i % dirs), "f%04d.bin" % i)
        with open(p, "wb") as f:
            f.write(os.urandom(1 + (i * 7919) % 20000))
        os.chmod(p, 0o600 if i % 3 == 0 else 0o644)
        os.utime(p, (1600000000 + i, 1600000000 + i))


def tree_digest(root):
    """{relative path: (type, mode, size, mtime, sha256)} of a tree."""
    out = {}
    for dp, dns, fns in os.walk(root):
        for name in dns + fns:
            p = os.path.join(dp, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                out[rel] = ("f", st.st_mode & 0o7777, st.st_size, int(st.st_mtime),
                            sha256_file(p))
    return out


def sha256_data(path):
    """sha256 over (offset, bytes) of the non-zero 1 MiB blocks of path; holes
    and zero blocks count alike (the local store's LMDB file is sparse, tens of
    GiB long, with blocks reserved ahead by fallocate)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        fd, end = f.fileno(), os.fstat(f.fileno()).st_size
        off, last = 0, -1
        while off < end:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: nothing but a hole up to the end
            hole = os.lseek(fd, off, os.SEEK_HOLE)
            # whole 1 MiB blocks at absolute offsets, each hashed once: the
            # result does not depend on where the file system put its extents
            off -= off % (1 << 20)
            while off < hole:
                if off > last:
                    f.seek(off)
                    b = f.read(1 << 20)
                    if b.count(0) != len(b):
                        h.update(off.to_bytes(8, "little"))
                        h.update(b)
                    last = off
                off += 1 << 20
    return h.hexdigest()


def snapshot_dirs(paths):
    """{path: (size, sha256 of its data regions)} of every regular file under
    paths."""
    out = {}
    for root in paths:
        for dp, _, fns in os.walk(root):
            for name in fns:
                p = os.path.join(dp, name)
                try:
                    out[p] = (os.path.getsize(p), sha256_data(p))
                except OSError:
                    pass
    return out


# ---------------------------------------------------------------- wire helpers

FRAME_MAGIC = 0x46545350
CHUNK_MAGIC = 0x48435350
MSG_ERROR = 1
MSG_ALLOC = 23
MSG_CHUNK_PUT = 40
MSG_CHUNK_GET = 41
MSG_PING = 43
REPLY_BIT = 0x8000


def frame(mtype, ctl=b"", data=b"", req_id=1, ctl_len=None, data_len=None):
    hdr = struct.pack("<IHHQII", FRAME_MAGIC, 1, mtype, req_id,
                      len(ctl) if ctl_len is None else ctl_len,
                      len(data) if data_len is None else data_len)
    return hdr + ctl + data


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb(*fields):
    """Encodes protobuf fields given as (number, value): int -> varint,
    bytes/str -> length-delimited, list -> repeated."""
    out = b""
    for num, val in fields:
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            if isinstance(v, bool):
                v = int(v)
            if isinstance(v, int):
                out += _varint(num << 3) + _varint(v)
            else:
                if isinstance(v, str):
                    v = v.encode()
                out += _varint(num << 3 | 2) + _varint(len(v)) + v
    return out


def pb_decode(buf):
    """{field number: [values]} (varints as int, length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def chunk_header(chunk_id, owner, lease_id, vendor_id, chain, pieces, raw_len, payload,
                 flags=0):
    digest = hashlib.sha256(payload).digest()
    chain8 = list(chain) + [0] * (8 - len(chain))
    return (struct.pack("<IHH16s16sQIBBH8III", CHUNK_MAGIC, 1, flags, chunk_id, owner,
                        lease_id, vendor_id, len(chain), pieces, 0, *chain8, raw_len,
                        len(payload)) + digest + b"\0" * 16)


class TlsPeer:
    """A mutual-TLS connection to a daemon with one of the dev CA's certs."""

    def __init__(self, cluster, address, cert="client", timeout=10.0):
        pki = os.path.join(cluster.dir, "pki")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, cert + ".crt"), os.path.join(pki, cert + ".key"))
        ctx.check_hostname = False
        host, port = address.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock = ctx.wrap_socket(raw)
        self.sock.settimeout(timeout)

    def send(self, b):
        self.sock.sendall(b)

    def recv_frame(self):
        """(type, ctl, data), or None if the peer closed the connection."""
        try:
            hdr = self._recv_exact(24)
            if hdr is None:
                return None
            magic, ver, mtype, req_id, cl, dl = struct.unpack("<IHHQII", hdr)
            assert magic == FRAME_MAGIC, "bad magic in reply"
            ctl = self._recv_exact(cl) if cl else b""
            data = self._recv_exact(dl) if dl else b""
            if ctl is None or data is None:
                return None
            return mtype, ctl, data
        except (ssl.SSLError, ConnectionError):
            return None

    def closed_or_error(self):
        """True if the peer closes or answers MSG_ERROR (or a timeout passes
        with nothing: a vendor waiting for bytes that never come is fine only
        if the caller then closes)."""
        try:
            r = self.recv_frame()
        except socket.timeout:
            return "timeout"
        if r is None:
            return "closed"
        if r[0] == MSG_ERROR:
            return "error"
        return "reply %#x" % r[0]

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            b = self.sock.recv(n - len(buf))
            if not b:
                return None
            buf += b
        return buf

    def call(self, mtype, ctl=b"", data=b"", req_id=7):
        self.send(frame(mtype, ctl, data, req_id))
        return self.recv_frame()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- client options, extra mounts

def set_client_option(cluster, key, value):
    """Sets [client] key = value in the cluster's client.conf (takes effect at
    the next start of pstorefs)."""
    path = cluster.client_conf
    with open(path) as f:
        lines = f.read().splitlines()
    out, in_client, done = [], False, False
    for ln in lines:
        s = ln.strip()
        if s.startswith("["):
            if in_client and not done:
                out.append("%s = %s" % (key, value))
                done = True
            in_client = s == "[client]"
        elif in_client and s.split("=")[0].strip() == key:
            if not done:
                out.append("%s = %s" % (key, value))
                done = True
            continue
        out.append(ln)
    if in_client and not done:
        out.append("%s = %s" % (key, value))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def pstorefs_bin():
    return binary("pstorefs", "src/fs")


def mount_extra(cluster, mountpoint, state, cache, opts="", check=True, timeout=60):
    """Mounts the cluster's volume a second time (pstorefs daemonizes once the
    mount is ready or failed).  Returns the CompletedProcess."""
    os.makedirs(mountpoint, exist_ok=True)
    o = "config=%s,volume=default,state=%s,cache=%s,log=%s" % (
        cluster.client_conf, state, cache, os.path.join(os.path.dirname(state), "pstorefs.log"))
    if opts:
        o += "," + opts
    os.makedirs(os.path.dirname(state), exist_ok=True)
    return run([pstorefs_bin(), "-o", o, mountpoint], timeout=timeout, check=check)


def unmount_extra(mountpoint):
    subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True)
    subprocess.run(["fusermount3", "-uz", mountpoint], capture_output=True)


def pstorefs_pids_for(mountpoint):
    """pids of pstorefs processes serving mountpoint (by command line)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pstorefs") and mountpoint.encode() in argv:
            pids.append(int(d))
    return pids


def dir_disk_usage(path):
    """Bytes of disk the files under path take (st_blocks), holes excluded."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total
