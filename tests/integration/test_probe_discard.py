"""Path probing on netlab (issue 6, must-show 2): a vendor with 30 % packet
loss, and a vendor that stops answering (SIGSTOP), are discarded, and
`pstore probe` says why; the healthy ones stay usable."""

import os

import pytest

from probelab import ProbeLab, lab_ready, wait_for

pytestmark = pytest.mark.skipif(lab_ready() is not None, reason=lab_ready() or "")


def test_lossy_and_silent_vendors_are_discarded():
    hosts = [
        {"name": "good1", "routers": 0, "link": {"delay_ms": 1}},
        {"name": "good2", "routers": 1, "link": {"delay_ms": 1}},
        # 30 % of what goes to the vendor is lost: 30 % of the probes
        {"name": "lossy", "routers": 1, "link": {"delay_ms": 1, "to_host": {"loss_pct": 30}}},
        {"name": "stops", "routers": 0, "link": {"delay_ms": 1}},
    ]
    with ProbeLab("pd%d" % (os.getpid() % 10000), hosts, copies=2) as lab:
        mnt = lab.mount("a")
        lossy, stops = lab.vendor_ids["lossy"], lab.vendor_ids["stops"]
        good = [lab.vendor_ids["good1"], lab.vendor_ids["good2"]]

        def discarded(vid, words):
            v = lab.by_id(lab.probe_json(mnt))[vid]
            return v if v["verdict"] == "discarded" and any(w in v["reason"] for w in words) \
                else None

        v = wait_for(lambda: discarded(lossy, ("availability", "no answer")), 40,
                     interval=1, what="the lossy vendor discarded")
        print("lossy:", v["availability"], v["reason"])
        assert v["availability"] < 0.9
        report = lab.by_id(lab.probe_json(mnt))
        assert report[stops]["verdict"] != "discarded", report[stops]
        for g in good:
            assert report[g]["verdict"] == "chosen", report[g]

        lab.freeze(stops)
        try:
            v = wait_for(lambda: discarded(stops, ("no answer", "not alive")), 20, interval=0.5,
                         what="the frozen vendor discarded")
            print("stopped:", v["reason"])
            assert "no answer to the last" in v["reason"] or "not alive" in v["reason"]
            for g in good:
                assert lab.by_id(lab.probe_json(mnt))[g]["verdict"] == "chosen"
            # new data avoids both
            with open(os.path.join(mnt, "f"), "wb") as f:
                f.write(os.urandom(12 << 20))
            lab.cli("sync", mnt, timeout=120)
            used = {x for c in lab.locate(os.path.join(mnt, "f"))["chunks"] for x in c["vendors"]}
            assert used == set(good), used
        finally:
            lab.thaw(stops)
        # back: answering again, it is no longer discarded for silence
        wait_for(lambda: lab.by_id(lab.probe_json(mnt))[stops]["verdict"] != "discarded", 30,
                 interval=1, what="the thawed vendor back")
