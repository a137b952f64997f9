"""Path probing on netlab (issue 6, must-shows 3 and 4): reads follow the
live score, and hedged reads ride over a frozen replica.

3. Replicas on a 1 ms and an 80 ms vendor: at least 90 % of the bytes read
   come from the 1 ms one, and reading a 64 MiB file is at least 3x faster
   than with reads pinned to the slow replica (`pstore probe --pin`).
4. A replica frozen with SIGSTOP: every read still completes with the right
   data, each stalled chunk within the primary's hedge bound plus the other
   replica's latency, and the p99 of 200 chunk reads stays under 5x the
   healthy p99.

Every read starts from a fresh mount (it rebuilds the namespace from the
FAT's mirror) or with the mount's cache and the page cache dropped, so that
the data comes from the vendors, not the cache.  The 3x comparison takes the
best of up to 3 measurements of each side (a loaded CI machine)."""

import hashlib
import os
import time

import pytest

from probelab import MiB, ProbeLab, lab_ready, percentile

pytestmark = pytest.mark.skipif(lab_ready() is not None, reason=lab_ready() or "")


def write_file(path, size):
    """Random (incompressible) data: stored bytes = raw bytes."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            b = os.urandom(min(MiB, left))
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def drop_page_cache():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_all(path):
    h = hashlib.sha256()
    t0 = time.monotonic()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return time.monotonic() - t0, h.hexdigest()


def cold_read(lab, mnt, path):
    """read_all with the mount's cache and the page cache dropped first."""
    lab.cli("cache", "drop", mnt)
    drop_page_cache()
    return read_all(path)


def read_chunks(path, chunk):
    """Reads the file one chunk at a time (no readahead); latencies in ms."""
    lat, h = [], hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        size = os.fstat(fd).st_size
        for off in range(0, size, chunk):
            t0 = time.monotonic()
            b = os.pread(fd, chunk, off)
            lat.append((time.monotonic() - t0) * 1000)
            assert len(b) == min(chunk, size - off)
            h.update(b)
    finally:
        os.close(fd)
    return lat, h.hexdigest()


def test_reads_prefer_the_fast_replica():
    hosts = [{"name": "fast", "routers": 0, "link": {"delay_ms": 0.5}},
             {"name": "slow", "routers": 1, "link": {"delay_ms": 40}}]
    with ProbeLab("pr%d" % (os.getpid() % 10000), hosts, copies=2) as lab:
        fast, slow = lab.vendor_ids["fast"], lab.vendor_ids["slow"]
        mnt = lab.mount("w")
        digest = write_file(os.path.join(mnt, "big"), 64 * MiB)
        lab.cli("sync", mnt, timeout=300)
        lab.umount(mnt)

        mnt = lab.mount("r1")
        path = os.path.join(mnt, "big")
        lab.wait_rounds(mnt, 2)
        t, d = read_all(path)
        assert d == digest
        rep = lab.by_id(lab.probe_json(mnt))
        total = rep[fast]["read_bytes"] + rep[slow]["read_bytes"]
        print("scored: %.2f s; bytes from fast %d, slow %d"
              % (t, rep[fast]["read_bytes"], rep[slow]["read_bytes"]))
        assert total >= 64 * MiB
        assert rep[fast]["read_bytes"] >= 0.9 * total

        # 3x faster than pinned to the slow replica.  Timing on a loaded
        # 2-core VM is noisy: up to 3 rounds of (scored cold read, pinned cold
        # read), the best (shortest) time of each side compared.  Taking the
        # slow side's best too only makes the check harder.
        t_fast, t_slow = [t], []
        for attempt in range(3):
            if attempt:
                lab.probe_json(mnt, pin=0)
                t, d = cold_read(lab, mnt, path)
                assert d == digest
                t_fast.append(t)
            lab.probe_json(mnt, pin=slow)
            before = lab.by_id(lab.probe_json(mnt))[slow]["read_bytes"]
            t, d = cold_read(lab, mnt, path)
            assert d == digest
            t_slow.append(t)
            rep = lab.by_id(lab.probe_json(mnt))
            print("round %d: scored %.2f s, pinned to the slow replica %.2f s;"
                  " bytes from slow in the pinned read %d"
                  % (attempt + 1, t_fast[-1], t, rep[slow]["read_bytes"] - before))
            assert rep[slow]["read_bytes"] - before >= 64 * MiB
            if min(t_slow) >= 3 * min(t_fast):
                break
        print("scored samples %s s, pinned samples %s s: best %.2f vs %.2f s (%.1fx)"
              % (["%.2f" % x for x in t_fast], ["%.2f" % x for x in t_slow], min(t_fast),
                 min(t_slow), min(t_slow) / min(t_fast)))
        assert min(t_slow) >= 3 * min(t_fast)
        lab.probe_json(mnt, pin=0)
        lab.umount(mnt)


def test_hedged_reads_ride_over_a_frozen_replica():
    chunk = 64 << 10
    hosts = [{"name": "near", "routers": 0, "link": {"delay_ms": 0.5}},
             {"name": "far", "routers": 1, "link": {"delay_ms": 2}}]
    with ProbeLab("ph%d" % (os.getpid() % 10000), hosts, copies=2, chunk_size=chunk) as lab:
        near, far = lab.vendor_ids["near"], lab.vendor_ids["far"]
        mnt = lab.mount("w")
        digests = {n: write_file(os.path.join(mnt, n), 200 * chunk)
                   for n in ("healthy", "frozen")}
        digests["other"] = write_file(os.path.join(mnt, "other"), 40 * chunk)
        lab.cli("sync", mnt, timeout=300)
        lab.umount(mnt)

        mnt = lab.mount("r")
        lab.wait_rounds(mnt, 2)
        healthy, d = read_chunks(os.path.join(mnt, "healthy"), chunk)
        assert d == digests["healthy"]
        rep = lab.by_id(lab.probe_json(mnt))
        assert rep[near]["read_bytes"] > rep[far]["read_bytes"], rep
        # the other replica's own latency, pinned to it
        lab.probe_json(mnt, pin=far)
        other, d = read_chunks(os.path.join(mnt, "other"), chunk)
        assert d == digests["other"]
        lab.probe_json(mnt, pin=0)
        rep = lab.by_id(lab.probe_json(mnt))
        bound = rep[near]["hedge_ms"]
        p99_ok, p99_other = percentile(healthy, 0.99), percentile(other, 0.99)

        lab.freeze(near)
        try:
            frozen, d = read_chunks(os.path.join(mnt, "frozen"), chunk)
            rep = lab.by_id(lab.probe_json(mnt))
        finally:
            lab.thaw(near)
        assert d == digests["frozen"]
        p99_frozen = percentile(frozen, 0.99)
        stalled = [x for x in frozen if x > max(healthy)]
        allowance = bound + p99_other + 10  # 10 ms: scheduling on a loaded VM
        print("healthy p99 %.2f ms (max %.2f); other replica p99 %.2f ms; hedge bound %.1f ms;"
              " frozen p99 %.2f ms, max %.2f ms, %d reads above the healthy max: %s; "
              "hedges %d, hedge wins %d"
              % (p99_ok, max(healthy), p99_other, bound, p99_frozen, max(frozen), len(stalled),
                 ["%.1f" % x for x in stalled][:10], rep[near]["hedges"], rep[far]["hedge_wins"]))
        assert len(frozen) == 200
        assert rep[near]["hedges"] >= 1
        assert all(x <= allowance for x in stalled), (allowance, stalled)
        assert p99_frozen < 5 * p99_ok
