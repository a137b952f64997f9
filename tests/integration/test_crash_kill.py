"""Issue 4, item 4: kill -9 of pstorefs during a mixed workload, 5 times at
random moments.  After each remount every file that was fsynced (and every
file that was closed: close hands data to the local cache, which survives a
crash of pstorefs) is intact, and `pstore fsck` reports no error.

The workload runs in its own process and journals, on local disk, each file
it fsynced or closed *after* the call returned; it never touches those files
again, so they must read back exactly."""

import hashlib
import json
import os
import random
import subprocess
import sys
import time

ROUNDS = 5

WORKLOAD = r'''
import hashlib, os, random, sys
root, journal, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
os.makedirs(root, exist_ok=True)
j = open(journal, "a")
def note(kind, path, data):
    j.write("%s %s %s %d\n" % (kind, path, hashlib.sha256(data).hexdigest(), len(data)))
    j.flush(); os.fsync(j.fileno())
scratch = []
i = 0
try:
    while True:
        i += 1
        op = rnd.random()
        if op < 0.45:
            size = rnd.choice([0, 1, 4096, 100000, rnd.randrange(1, 6 << 20)])
            data = os.urandom(size)
            path = os.path.join(root, "f%05d" % i)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            off = 0
            while off < size:
                off += os.write(fd, data[off:off + (1 << 20)])
            sync = rnd.random() < 0.5
            if sync:
                os.fsync(fd)
            os.close(fd)
            note("fsynced" if sync else "closed", path, data)
        elif op < 0.65:
            path = os.path.join(root, "s%05d" % i)
            with open(path, "wb") as f:
                f.write(os.urandom(rnd.randrange(1, 300000)))
            scratch.append(path)
        elif op < 0.8 and scratch:
            p = scratch.pop(rnd.randrange(len(scratch)))
            q = p + ".r"
            os.rename(p, q)
            scratch.append(q)
        elif op < 0.9 and scratch:
            os.unlink(scratch.pop(rnd.randrange(len(scratch))))
        else:
            d = os.path.join(root, "d%05d" % i)
            os.mkdir(d)
            with open(os.path.join(d, "x"), "wb") as f:
                f.write(b"x" * rnd.randrange(1, 5000))
                f.flush(); os.fsync(f.fileno())
except OSError:
    pass
'''


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def test_kill_9_during_a_mixed_workload(make_cluster, tmp_path):
    c = make_cluster(vendors=3, copies=2)
    seed = int(os.environ.get("PSTORE_IT_SEED", random.randrange(1 << 30)))
    print("seed", seed)
    rnd = random.Random(seed)
    journal = str(tmp_path / "journal")
    script = str(tmp_path / "workload.py")
    with open(script, "w") as f:
        f.write(WORKLOAD)
    for rnd_i in range(ROUNDS):
        root = os.path.join(c.mount, "round%d" % rnd_i)
        w = subprocess.Popen([sys.executable, script, root, journal,
                              str(rnd.randrange(1 << 30))])
        delay = rnd.uniform(1.0, 5.0)
        time.sleep(delay)
        c.kill("pstorefs")  # SIGKILL, then the dead mount is unmounted
        w.wait(timeout=60)
        c.start("pstorefs")
        entries = [ln.split() for ln in open(journal).read().splitlines()]
        bad = []
        for kind, path, digest, size in entries:
            try:
                ok = os.path.getsize(path) == int(size) and sha(path) == digest
            except OSError as e:
                ok = False
                kind += " (%s)" % e.strerror
            if not ok:
                bad.append("%s %s" % (kind, path))
        print("round %d: killed after %.1f s, %d files checked, %d bad"
              % (rnd_i, delay, len(entries), len(bad)))
        assert not bad, "after kill %d (seed %d): %s" % (rnd_i, seed, bad[:10])
        r = c.cli("fsck", c.mount, "--json", check=False, timeout=300)
        rep = json.loads(r.stdout) if r.stdout.strip() else {}
        assert r.returncode == 0 and rep.get("clean"), \
            "fsck after kill %d (seed %d): %s %s" % (rnd_i, seed, r.stdout[-3000:], r.stderr)
