"""Issue 2, item 9: garbage sent to a vendor (random bytes, a truncated
frame, a header with absurd sizes, a chunk without a valid allocation) gets
an error or a closed connection; the vendor keeps serving others and no
stored data changes."""

import json
import os
import socket
import struct

import pytest

from conftest import module_cluster
from pstorelib import (MSG_CHUNK_PUT, MSG_PING, REPLY_BIT, MiB, TlsPeer, chunk_header,
                       frame, pb, sha256_file, snapshot_dirs, write_random)

cluster = module_cluster(vendors=4, copies=2)
VICTIM = 2


@pytest.fixture(scope="module")
def stored(cluster):
    """A file stored before the garbage, and a snapshot of the vendor's data."""
    path = os.path.join(cluster.mount, "before.bin")
    digest = write_random(path, 8 * MiB)
    cluster.sync(path)
    devices = cluster.vendor_data_dirs(VICTIM)[:-1]
    return {"path": path, "digest": digest, "devices": devices,
            "snapshot": snapshot_dirs(devices),
            "index": chunks_of(cluster.dump_index(VICTIM))}


def chunks_of(dump):
    """The chunk records of an index dump (counters and the like may move)."""
    return dump.get("chunks") if isinstance(dump, dict) else dump


def address(cluster):
    return cluster.proc("vendor%d" % VICTIM)["address"]


def still_serving(cluster, stored):
    """The vendor runs, answers a ping, the FAT sees it alive; its stored
    data is untouched."""
    p = cluster.proc("vendor%d" % VICTIM)
    assert p["pid"] and os.path.exists("/proc/%d" % p["pid"]), "vendor died"
    peer = TlsPeer(cluster, address(cluster))
    try:
        r = peer.call(MSG_PING, b"")
        assert r is not None and r[0] == MSG_PING | REPLY_BIT, r
    finally:
        peer.close()
    assert cluster.vendors()[VICTIM]["alive"]
    assert snapshot_dirs(stored["devices"]) == stored["snapshot"]
    assert chunks_of(cluster.dump_index(VICTIM)) == stored["index"]


def test_plain_tcp_garbage_is_dropped(cluster, stored):
    host, port = address(cluster).rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(os.urandom(64 * 1024))
        s.settimeout(10)
        try:
            assert s.recv(65536) is not None      # alert or EOF, never a frame
        except (ConnectionError, socket.timeout):
            pass
    except ConnectionError:
        pass
    finally:
        s.close()
    still_serving(cluster, stored)


def test_random_bytes_over_tls_get_closed(cluster, stored):
    peer = TlsPeer(cluster, address(cluster))
    try:
        peer.send(os.urandom(64 * 1024))
        assert peer.closed_or_error() in ("closed", "error")
    except (ConnectionError, OSError):
        pass
    finally:
        peer.close()
    still_serving(cluster, stored)


def test_truncated_frame_is_dropped(cluster, stored):
    peer = TlsPeer(cluster, address(cluster))
    try:
        f = frame(MSG_CHUNK_PUT, b"x" * 100, b"y" * 1000)
        peer.send(f[:60])
    finally:
        peer.close()
    still_serving(cluster, stored)


@pytest.mark.parametrize("ctl_len,data_len", [(0xFFFFFFFF, 0), (0, 0xFFFFFFFF),
                                              (0x7FFFFFFF, 0x7FFFFFFF)],
                         ids=["huge-ctl", "huge-data", "both"])
def test_absurd_sizes_get_closed(cluster, stored, ctl_len, data_len):
    peer = TlsPeer(cluster, address(cluster))
    try:
        peer.send(frame(MSG_CHUNK_PUT, b"", b"", ctl_len=ctl_len, data_len=data_len))
        assert peer.closed_or_error() in ("closed", "error")
    finally:
        peer.close()
    still_serving(cluster, stored)


def test_bad_magic_gets_closed(cluster, stored):
    peer = TlsPeer(cluster, address(cluster))
    try:
        peer.send(struct.pack("<IHHQII", 0xDEADBEEF, 1, MSG_PING, 1, 0, 0))
        assert peer.closed_or_error() in ("closed", "error")
    finally:
        peer.close()
    still_serving(cluster, stored)


def volume_id(cluster):
    vols = json.loads(cluster.cli("volume", "list", "--json").stdout)["volumes"]
    return bytes.fromhex(next(v["id"] for v in vols if v["name"] == "default"))


@pytest.mark.parametrize("token", [b"", os.urandom(100),
                                   pb((1, os.urandom(40)), (2, os.urandom(64)))],
                         ids=["no-token", "random-token", "forged-signature"])
def test_chunk_without_valid_allocation_is_refused(cluster, stored, token):
    payload = os.urandom(256 * 1024)
    cid = os.urandom(16)
    hdr = chunk_header(cid, volume_id(cluster), 12345, VICTIM, [VICTIM], 2, len(payload),
                       payload)
    ctl = pb((1, [pb((1, VICTIM), (2, address(cluster)), (3, token))]))
    peer = TlsPeer(cluster, address(cluster))
    try:
        r = peer.call(MSG_CHUNK_PUT, ctl, hdr + payload)
        assert r is None or r[0] == 1, "chunk without allocation got reply %#x" % r[0]
    finally:
        peer.close()
    still_serving(cluster, stored)
    assert cid.hex() not in json.dumps(cluster.dump_index(VICTIM))


def test_data_still_reads_back_after_the_garbage(cluster, stored):
    cluster.remount_fresh()
    assert sha256_file(stored["path"]) == stored["digest"]
    path = os.path.join(cluster.mount, "after.bin")
    digest = write_random(path, 8 * MiB)
    cluster.sync(path)
    assert sha256_file(path) == digest
