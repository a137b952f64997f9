"""tools/pstore-dev as tests and outside checkers drive it: cluster.json,
status, up on a running cluster, stop/kill/start of single processes."""

import os

from conftest import module_cluster
from pstorelib import PSTORE_DEV, run, wait_for

cluster = module_cluster(vendors=2, copies=2)


def test_cluster_json_describes_every_process(cluster):
    info = cluster.reload()
    assert info["mount"] == cluster.mount
    roles = [p["role"] for p in info["processes"]]
    assert roles == ["fatd", "vendor", "vendor", "pstorefs"]
    assert [p["id"] for p in info["processes"]] == ["fatd1", "vendor1", "vendor2", "pstorefs"]
    for p in info["processes"]:
        assert p["pid"] and os.path.exists("/proc/%d" % p["pid"])
        assert os.path.exists(p["config"])
        assert all(os.path.isdir(d) for d in p["data"])
        if p["role"] == "pstorefs":
            assert p["address"] is None and len(p["data"]) == 2
        else:
            assert p["address"].startswith("127.0.0.1:")
    vendor = info["processes"][1]
    assert len(vendor["data"]) == 3       # dev0, dev1, index


def test_up_again_reports_running(cluster):
    r = run([PSTORE_DEV, "up", "--dir", cluster.dir, "--mount", cluster.mount])
    assert "already running" in r.stdout


def test_status(cluster):
    out = cluster.dev("status").stdout
    assert "mounted" in out and out.count("running") == 4


def test_kill_and_start_a_vendor(cluster):
    cluster.kill("vendor2")
    assert cluster.proc("vendor2")["pid"] is None
    wait_for(lambda: not cluster.vendors()[2]["alive"], 20, what="vendor2 not alive")
    cluster.start("vendor2")
    assert cluster.proc("vendor2")["pid"]
    wait_for(lambda: cluster.vendors()[2]["alive"], 20, what="vendor2 alive again")


def test_stop_and_start_the_mount(cluster):
    path = os.path.join(cluster.mount, "keep.txt")
    with open(path, "w") as f:
        f.write("hello\n")
    cluster.stop("pstorefs")
    assert not os.path.exists(path)
    cluster.start("pstorefs")
    with open(path) as f:
        assert f.read() == "hello\n"


def test_unknown_id_and_usage(cluster):
    assert cluster.dev("start", "nope", check=False).returncode == 1
    assert run([PSTORE_DEV, "frobnicate"], check=False).returncode == 2
