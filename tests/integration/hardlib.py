"""hardlib - helpers of the hardening tests (test_hardening_*.py): vendor
config edits and hand-made chunk puts along a chain."""

import os

from pstorelib import chunk_header, frame, pb
from seclib import MSG_CHUNK_PUT, Peer


def set_vendor_option(cluster, vendor, key, value):
    """Puts key = value into the [vendor] section of vendorN.conf (restart
    the vendor to apply)."""
    path = cluster.proc("vendor%d" % vendor)["config"]
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith(key + " ") or s.startswith(key + "="):
            continue
        out.append(line)
        if s == "[vendor]":
            out.append("%s = %s" % (key, value))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def put_frame(cluster, chain, tokens, owner, lease_id, payload, chunk_id=None,
              deadline_ms=0, req_id=9):
    """A MSG_CHUNK_PUT frame for chain (vendor ids; tokens: {id: token})."""
    chunk_id = chunk_id or os.urandom(16)
    hdr = chunk_header(chunk_id, owner, lease_id, chain[0], chain, 1, len(payload), payload)
    hops = [pb((1, v), (2, cluster.vendor_addr(v)), (3, tokens[v])) for v in chain]
    fields = [(1, hops)]
    if deadline_ms:
        fields.append((3, deadline_ms))
    return frame(MSG_CHUNK_PUT, pb(*fields), hdr + payload, req_id)


def client_peer(cluster, vendor, timeout=10.0):
    return Peer(cluster, cluster.vendor_addr(vendor), cluster.cert("client"),
                timeout=timeout)
