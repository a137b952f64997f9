"""Path probing on netlab (issue 6, must-show 1): six vendors at RTTs of
about 1, 5, 20, 40, 80 and 150 ms behind 0-3 routers.  `pstore probe`
reports each RTT within 20 % and each hop count exactly, and uploads put at
least 90 % of the chunk copies on the three best vendors.

"Within 20 %" is checked against the path's real RTT: the median of ping
(ICMP) over the same path, measured right before the probe rounds the report
is made of and right after it; the reported RTT must be within 20 % of one
of the two.  The userspace emulator adds per-round-trip overhead that grows
with load (~0.1-0.3 ms on a quiet VM, 1 ms and more on a loaded 2-core CI
machine running the suite's daemons: docs/netlab.md, Limits), so the path
is not exactly its nominal RTT: that the lab gives "about" the nominal
RTTs is checked separately and loosely (the delay is applied: at least 80 %
of nominal; at most 1.5x nominal + 5 ms; paths in their nominal order)."""

import os
import re
import statistics
import subprocess

import pytest

from probelab import MiB, ProbeLab, lab_ready

pytestmark = pytest.mark.skipif(lab_ready() is not None, reason=lab_ready() or "")

# name, routers, RTT in ms (delay is per direction: half the RTT)
PATHS = [("v1", 0, 1), ("v2", 1, 5), ("v3", 2, 20), ("v4", 3, 40), ("v5", 1, 80),
         ("v6", 2, 150)]


def ping_median(addr, n=15):
    r = subprocess.run(["ping", "-n", "-c", str(n), "-i", "0.05", "-W", "1", addr],
                       capture_output=True, text=True, timeout=60)
    times = [float(t) for t in re.findall(r"time=([0-9.]+) ms", r.stdout)]
    assert times, r.stdout + r.stderr
    return statistics.median(times)


def test_rtt_hops_and_placement():
    hosts = [{"name": n, "routers": r, "link": {"delay_ms": rtt / 2.0}} for n, r, rtt in PATHS]
    with ProbeLab("pp%d" % (os.getpid() % 10000), hosts, copies=2, chunk_size=MiB) as lab:
        mnt = lab.mount("a")
        lab.wait_rounds(mnt, 2)
        ping0 = {n: ping_median(lab.lab["hosts"][n]["addr"]) for n, _, _ in PATHS}
        # the RTT a report shows is the median over the recent rounds: wait
        # for two more, taken between the two ping measurements
        rounds = lab.probe_json(mnt)["rounds"]
        lab.wait_rounds(mnt, rounds + 2)
        seen = lab.by_id(lab.probe_json(mnt))
        ping1 = {n: ping_median(lab.lab["hosts"][n]["addr"]) for n, _, _ in PATHS}
        lines = []
        for name, routers, rtt in PATHS:
            v = seen[lab.vendor_ids[name]]
            lines.append("%s: probe rtt %s ms (nominal %d, ping median %.3f before, %.3f after),"
                         " hops %s (want %d), %s %s"
                         % (name, v["rtt_ms"], rtt, ping0[name], ping1[name], v["hops"],
                            routers, v["verdict"], v["reason"]))
        print("\n".join(lines))
        for name, routers, rtt in PATHS:
            v = seen[lab.vendor_ids[name]]
            assert v["hops"] == routers, lines
            assert v["rtt_ms"] is not None, lines
            # the check: within 20 % of the path's real RTT
            assert any(abs(v["rtt_ms"] - p[name]) <= 0.2 * p[name] for p in (ping0, ping1)), \
                lines
            # the lab's: the path is about its nominal RTT
            real = min(ping0[name], ping1[name])
            assert 0.8 * rtt <= real <= 1.5 * rtt + 5, lines
        for (a, _, _), (b, _, _) in zip(PATHS, PATHS[1:]):
            assert min(ping0[a], ping1[a]) < min(ping0[b], ping1[b]), lines
            assert seen[lab.vendor_ids[a]]["rtt_ms"] < seen[lab.vendor_ids[b]]["rtt_ms"], lines
        # uploads: 48 chunks x 2 copies
        with open(os.path.join(mnt, "data"), "wb") as f:
            f.write(os.urandom(48 * MiB))
        lab.cli("sync", mnt, timeout=300)
        loc = lab.locate(os.path.join(mnt, "data"))
        best = {lab.vendor_ids[n] for n, _, _ in PATHS[:3]}
        copies = [v for c in loc["chunks"] for v in c["vendors"]]
        on_best = sum(1 for v in copies if v in best)
        counts = {vid: copies.count(vid) for vid in sorted(set(copies))}
        print("copies per vendor:", counts)
        assert len(copies) == 96
        assert on_best >= 0.9 * len(copies), counts
