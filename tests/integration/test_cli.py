"""The pstore CLI as a user meets it: help, usage errors, volumes, vendors,
locate of a file that is not on pstore."""

import json
import os

from conftest import module_cluster
from pstorelib import MiB, pstore_bin, run, write_random

cluster = module_cluster(vendors=3, copies=2)


def test_help_and_usage_errors():
    r = run([pstore_bin(), "--help"])
    assert "vendors" in r.stdout and "locate" in r.stdout
    for cmd in (["volume", "--help"], ["vendors", "--help"], ["locate", "--help"],
                ["sync", "--help"]):
        assert run([pstore_bin()] + cmd).returncode == 0
    assert run([pstore_bin(), "nonsense"], check=False).returncode == 2
    assert run([pstore_bin(), "volume", "create"], check=False).returncode == 2
    assert run([pstore_bin(), "locate"], check=False).returncode == 2


def test_volumes(cluster):
    cluster.cli("volume", "create", "second", "--copies", "3", "--chunk-size", "1M")
    vols = {v["name"]: v for v in
            json.loads(cluster.cli("volume", "list", "--json").stdout)["volumes"]}
    assert vols["default"]["copies"] == 2
    assert vols["second"]["copies"] == 3 and vols["second"]["chunk_size"] == MiB
    r = cluster.cli("volume", "create", "second", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    assert "second" in cluster.cli("volume", "list").stdout


def test_vendors_table_and_json(cluster):
    vs = cluster.vendors()
    assert sorted(vs) == [1, 2, 3]
    for v in vs.values():
        assert v["alive"] and v["capacity"] > 0 and v["address"].startswith("127.0.0.1:")
        for k in ("free", "reserved", "used", "chunks", "bytes_from_clients",
                  "bytes_from_vendors", "receipts"):
            assert k in v
    table = cluster.cli("vendors").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "ADDRESS", "ALIVE"] and len(table) == 4


def test_locate_table_and_errors(cluster, tmp_path):
    path = os.path.join(cluster.mount, "x.bin")
    write_random(path, 5 * MiB)
    cluster.sync(path)
    out = cluster.cli("locate", path).stdout
    assert "INDEX" in out and len(out.splitlines()) == 2 + 2
    other = tmp_path / "local"
    other.write_text("not on pstore")
    r = cluster.cli("locate", str(other), check=False)
    assert r.returncode == 1 and "not on a pstorefs mount" in r.stderr
    r = cluster.cli("locate", os.path.join(cluster.mount, "missing"), check=False)
    assert r.returncode == 1


def test_config_from_environment(cluster):
    env = dict(os.environ, PSTORE_CONFIG=cluster.client_conf)
    r = run([pstore_bin(), "vendors", "--json"], env=env)
    assert len(json.loads(r.stdout)["vendors"]) == 3
