"""Path probing on netlab (issue 6, must-show 5): with two zones declared,
no chunk has both copies in one zone, even though the two fastest vendors
share a zone."""

import os

import pytest

from probelab import MiB, ProbeLab, lab_ready

pytestmark = pytest.mark.skipif(lab_ready() is not None, reason=lab_ready() or "")


def test_copies_span_zones():
    hosts = [
        {"name": "a1", "routers": 0, "link": {"delay_ms": 0.5}, "zone": "rack-a"},
        {"name": "a2", "routers": 0, "link": {"delay_ms": 0.5}, "zone": "rack-a"},
        {"name": "b1", "routers": 1, "link": {"delay_ms": 5}, "zone": "rack-b"},
        {"name": "b2", "routers": 1, "link": {"delay_ms": 5}, "zone": "rack-b"},
    ]
    with ProbeLab("pz%d" % (os.getpid() % 10000), hosts, copies=2, chunk_size=MiB) as lab:
        mnt = lab.mount("a")
        lab.wait_rounds(mnt, 2)
        zone = {lab.vendor_ids[h["name"]]: h["zone"] for h in hosts}
        with open(os.path.join(mnt, "data"), "wb") as f:
            f.write(os.urandom(40 * MiB))
        lab.cli("sync", mnt, timeout=300)
        chunks = lab.locate(os.path.join(mnt, "data"))["chunks"]
        assert len(chunks) == 40
        same = [c for c in chunks if len({zone[v] for v in c["vendors"]}) < 2]
        per = {}
        for c in chunks:
            for v in c["vendors"]:
                per[v] = per.get(v, 0) + 1
        print("copies per vendor:", per)
        assert not same, same
        assert all(len(c["vendors"]) == 2 for c in chunks)
