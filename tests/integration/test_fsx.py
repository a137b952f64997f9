"""Issue 4, item 2: a model-based exerciser.  Random writes (inside and across
64 KiB chunk boundaries), truncates up and down, reads, mmap writes and
reads, renames, hard links, unlinks, hole punches, fallocate,
copy_file_range and fsyncs run on a pstorefs mount of a 64 KiB-chunk volume
and, identically, on a reference directory on the local disk; every read is
compared, and the whole tree is compared at the end, again after `pstore
sync`, unmount, deletion of the client's state and cache, and a fresh mount.

The seed is printed (and in every failure message); replay with
PSTORE_FSX_SEED=<seed>.  PSTORE_FSX_OPS sets the number of operations
(default 10,000)."""

import mmap
import os
import random
import time

import pytest

from conftest import module_cluster
from pstorelib import drop_caches
from posixlib import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, SmallVolume, fallocate,
                      tree_view)

cluster = module_cluster(vendors=2, copies=1)

CHUNK = 64 * 1024
MAX_SIZE = 12 * CHUNK + 1234
NAMES = ["f%d" % i for i in range(6)] + ["d/g%d" % i for i in range(4)]


@pytest.fixture(scope="module")
def small(cluster):
    v = SmallVolume(cluster, "fsx", "64K")
    v.up()
    yield v
    v.destroy()


class Exerciser:
    def __init__(self, seed, ref, mnt):
        self.rng = random.Random(seed)
        self.seed = seed
        self.roots = (ref, mnt)
        self.log = []
        for r in self.roots:
            os.makedirs(os.path.join(r, "d"), exist_ok=True)

    def fail(self, msg):
        tail = "\n".join(self.log[-15:])
        raise AssertionError("seed %d, op %d: %s\nlast operations:\n%s"
                             % (self.seed, len(self.log), msg, tail))

    def p(self, root, name):
        return os.path.join(root, name)

    def existing(self):
        ref = self.roots[0]
        return [n for n in NAMES if os.path.isfile(self.p(ref, n))]

    def offset(self, size):
        r = self.rng.random()
        if r < 0.4:  # near a chunk boundary
            k = self.rng.randrange(0, MAX_SIZE // CHUNK + 1)
            return max(0, k * CHUNK + self.rng.randrange(-300, 300))
        if r < 0.6 and size:
            return self.rng.randrange(0, size)
        return self.rng.randrange(0, MAX_SIZE)

    def length(self):
        r = self.rng.random()
        if r < 0.5:
            return self.rng.randrange(1, 600)
        if r < 0.85:
            return self.rng.randrange(1, 2 * CHUNK)
        return self.rng.randrange(1, 4 * CHUNK)

    def both(self, fn):
        out = []
        for r in self.roots:
            try:
                out.append(("ok", fn(r)))
            except OSError as e:
                out.append(("err", e.errno))
        if out[0] != out[1]:
            self.fail("reference %r, pstorefs %r" % (out[0][:1] + (repr(out[0][1])[:200],),
                                                     out[1][:1] + (repr(out[1][1])[:200],)))
        return out[0]

    # -- operations
    def op_write(self, name):
        ref_size = os.path.getsize(self.p(self.roots[0], name)) \
            if os.path.exists(self.p(self.roots[0], name)) else 0
        off = self.offset(ref_size)
        data = self.rng.randbytes(self.length())
        if off + len(data) > MAX_SIZE:
            off = max(0, MAX_SIZE - len(data))
        self.log.append("write %s off %d len %d" % (name, off, len(data)))

        def w(r):
            fd = os.open(self.p(r, name), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                return os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        self.both(w)

    def op_append(self, name):
        data = self.rng.randbytes(self.rng.randrange(1, 3000))
        self.log.append("append %s len %d" % (name, len(data)))

        def w(r):
            fd = os.open(self.p(r, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
                return os.fstat(fd).st_size
            finally:
                os.close(fd)
        self.both(w)

    def op_truncate(self, name):
        size = self.rng.choice([0, self.rng.randrange(0, MAX_SIZE),
                                self.rng.randrange(1, 12) * CHUNK + self.rng.randrange(-5, 5)])
        size = max(0, size)
        self.log.append("truncate %s %d" % (name, size))
        self.both(lambda r: os.truncate(self.p(r, name), size))

    def op_read(self, name):
        size = os.path.getsize(self.p(self.roots[0], name))
        off = self.offset(size)
        n = self.length()
        self.log.append("read %s off %d len %d" % (name, off, n))

        def rd(r):
            fd = os.open(self.p(r, name), os.O_RDONLY)
            try:
                return os.pread(fd, n, off)
            finally:
                os.close(fd)
        self.both(rd)

    def op_mmap_write(self, name):
        size = os.path.getsize(self.p(self.roots[0], name))
        if size == 0:
            return
        off = self.rng.randrange(0, size)
        data = self.rng.randbytes(min(self.length(), size - off))
        self.log.append("mmap-write %s off %d len %d" % (name, off, len(data)))

        def mw(r):
            fd = os.open(self.p(r, name), os.O_RDWR)
            try:
                mm = mmap.mmap(fd, size)
                mm[off:off + len(data)] = data
                if self.rng.random() < 0.3:
                    mm.flush()
                mm.close()
            finally:
                os.close(fd)
        self.both(mw)

    def op_mmap_read(self, name):
        size = os.path.getsize(self.p(self.roots[0], name))
        if size == 0:
            return
        off = self.rng.randrange(0, size)
        n = min(self.length(), size - off)
        self.log.append("mmap-read %s off %d len %d" % (name, off, n))

        def mr(r):
            with open(self.p(r, name), "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
                try:
                    return mm[off:off + n]
                finally:
                    mm.close()
        self.both(mr)

    def op_rename(self, name):
        to = self.rng.choice(NAMES)
        self.log.append("rename %s %s" % (name, to))
        self.both(lambda r: os.rename(self.p(r, name), self.p(r, to)))

    def op_link(self, name):
        to = self.rng.choice(NAMES)
        self.log.append("link %s %s" % (name, to))
        self.both(lambda r: os.link(self.p(r, name), self.p(r, to)))

    def op_unlink(self, name):
        self.log.append("unlink %s" % name)
        self.both(lambda r: os.unlink(self.p(r, name)))

    def op_punch(self, name):
        size = os.path.getsize(self.p(self.roots[0], name))
        off = self.offset(size)
        n = self.length()
        self.log.append("punch %s off %d len %d" % (name, off, n))

        def ph(r):
            fd = os.open(self.p(r, name), os.O_RDWR)
            try:
                fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n)
            finally:
                os.close(fd)
        self.both(ph)

    def op_fallocate(self, name):
        off = self.offset(0)
        n = min(self.length(), MAX_SIZE - off) if off < MAX_SIZE else 1
        self.log.append("fallocate %s off %d len %d" % (name, off, n))

        def fa(r):
            fd = os.open(self.p(r, name), os.O_RDWR)
            try:
                os.posix_fallocate(fd, off, max(1, n))
                return os.fstat(fd).st_size
            finally:
                os.close(fd)
        self.both(fa)

    def op_copy(self, name):
        src = self.rng.choice(self.existing() or [name])
        size = os.path.getsize(self.p(self.roots[0], src))
        soff = self.rng.randrange(0, size + 1)
        doff = self.offset(0)
        n = min(self.length(), MAX_SIZE - doff) if doff < MAX_SIZE else 0
        self.log.append("copy_file_range %s off %d -> %s off %d len %d"
                        % (src, soff, name, doff, n))

        def cp(r):
            fi = os.open(self.p(r, src), os.O_RDONLY)
            fo = os.open(self.p(r, name), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                done = 0
                while done < n:
                    k = os.copy_file_range(fi, fo, n - done, soff + done, doff + done)
                    if k == 0:
                        break
                    done += k
                return done
            finally:
                os.close(fi)
                os.close(fo)
        self.both(cp)

    def op_fsync(self, name):
        self.log.append("fsync %s" % name)

        def fs(r):
            fd = os.open(self.p(r, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.both(fs)

    def step(self):
        names = self.existing()
        r = self.rng.random()
        if not names or r < 0.30:
            return self.op_write(self.rng.choice(NAMES))
        name = self.rng.choice(names)
        table = [(0.08, self.op_append), (0.10, self.op_truncate), (0.22, self.op_read),
                 (0.06, self.op_mmap_write), (0.06, self.op_mmap_read), (0.05, self.op_rename),
                 (0.04, self.op_link), (0.03, self.op_unlink), (0.05, self.op_punch),
                 (0.03, self.op_fallocate), (0.04, self.op_copy), (0.002, self.op_fsync)]
        x = self.rng.random() * sum(w for w, _ in table)
        for w, fn in table:
            if x < w:
                return fn(name)
            x -= w
        return self.op_read(name)

    def compare_trees(self, when):
        a, b = tree_view(self.roots[0]), tree_view(self.roots[1])
        if a != b:
            da, db = dict((x[0], x[1:]) for x in a), dict((x[0], x[1:]) for x in b)
            diff = [k for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]
            self.fail("%s: trees differ at %s" % (when, diff[:10]))


def test_random_operations_match_a_local_reference(cluster, small, tmp_path):
    seed = int(os.environ.get("PSTORE_FSX_SEED") or random.randrange(1, 2**31))
    nops = int(os.environ.get("PSTORE_FSX_OPS") or 10000)
    print("\nfsx seed %d (replay: PSTORE_FSX_SEED=%d), %d operations" % (seed, seed, nops))
    ref = str(tmp_path / "ref")
    mnt = os.path.join(small.mount, "fsx")
    ex = Exerciser(seed, ref, mnt)
    t0 = time.monotonic()
    for i in range(nops):
        ex.step()
        if i % 2500 == 2499:
            ex.compare_trees("after %d operations" % (i + 1))
    ex.compare_trees("at the end")
    print("fsx: %d operations in %.1f s" % (nops, time.monotonic() - t0))

    # durable and rebuilt from the FAT and the vendors alone
    cluster.cli("sync", small.mount, timeout=600)
    small.down()
    small.forget_local()
    small.up()
    drop_caches()
    ex.compare_trees("after sync, unmount, forgetting local state and remount")


def test_sparse_file_beyond_4_GiB(cluster, small):
    """Holes read as zeros and are not stored: a file of 5 GiB + 10 bytes
    written at both ends has two chunks at the vendors."""
    path = os.path.join(small.mount, "sparse")
    far = 5 * (1 << 30)
    with open(path, "wb") as f:
        f.write(b"head")
        f.seek(far)
        f.write(b"tail567890")
    assert os.path.getsize(path) == far + 10
    cluster.cli("sync", small.mount, timeout=300)
    chunks = cluster.locate(path)
    assert [c["index"] for c in chunks] == [0, far // CHUNK], chunks
    with open(path, "rb") as f:
        assert f.read(8) == b"head\0\0\0\0"
        f.seek(far - 5)
        assert f.read(100) == b"\0" * 5 + b"tail567890"
        f.seek(3 * (1 << 30))
        assert f.read(CHUNK) == b"\0" * CHUNK
    small.down()
    small.forget_local()
    small.up()
    with open(path, "rb") as f:
        f.seek(far)
        assert f.read() == b"tail567890"
        f.seek(4 * (1 << 30) + 17)
        assert f.read(10) == b"\0" * 10
