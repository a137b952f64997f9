"""seclib - helpers of the security tests: a dev cluster without a mount,
certificates from `pstore ca`, raw mutual-TLS connections with any (or no)
certificate, and the few control messages the tests hand-craft (protobuf
field numbers from src/proto/pstore.proto)."""

import os
import socket
import ssl
import struct

from pstorelib import (DevCluster, MSG_ERROR, REPLY_BIT, frame, pb, pb_decode, pstore_bin,
                       run)

MSG_VENDOR_HEARTBEAT = 11
MSG_VOLUME_GET = 21
MSG_VOLUME_LIST = 22
MSG_ALLOC = 23
MSG_COMMIT = 25
MSG_META_LIST = 26
MSG_CHUNK_LIST = 27
MSG_CHUNK_PUT = 40
MSG_PING = 43


class Cluster(DevCluster):
    """A dev cluster with no pstorefs mount (the security tests speak the
    wire protocol themselves)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.opts.append("--no-mount")

    @property
    def pki(self):
        return os.path.join(self.dir, "pki")

    def fat_addr(self):
        return self.proc("fatd1")["address"]

    def vendor_addr(self, i):
        return self.proc("vendor%d" % i)["address"]

    def issue(self, role, ident, name=None, ca_dir=None):
        """Issues CN=role:ident from the dev CA (or ca_dir); returns (crt, key)."""
        ca_dir = ca_dir or self.pki
        prefix = os.path.join(ca_dir, name or "%s-%s" % (role, ident))
        run([pstore_bin(), "ca", "issue", "--dir", ca_dir, "--role", role, "--id", ident,
             "--out", prefix, "--san", "IP:127.0.0.1"])
        return prefix + ".crt", prefix + ".key"

    def ca(self, *args, check=True):
        return run([pstore_bin(), "ca"] + list(args) + ["--dir", self.pki], check=check)

    def client_conf_for(self, crt, key, name):
        """A copy of client.conf presenting another certificate."""
        with open(self.client_conf) as f:
            text = f.read()
        text = text.replace(os.path.join(self.pki, "client.crt"), crt)
        text = text.replace(os.path.join(self.pki, "client.key"), key)
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def cert(self, name):
        return os.path.join(self.pki, name + ".crt"), os.path.join(self.pki, name + ".key")


class Peer:
    """One TLS 1.3 connection; cert = (crt, key) or None for no certificate.
    The server is verified against ca (default: the dev CA)."""

    def __init__(self, cluster, address, cert, ca=None, timeout=10.0):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(ca or os.path.join(cluster.pki, "ca.crt"))
        if cert:
            ctx.load_cert_chain(*cert)
        host, port = address.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock = ctx.wrap_socket(raw)
        self.sock.settimeout(timeout)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            b = self.sock.recv(n - len(buf))
            if not b:
                return None
            buf += b
        return buf

    def call(self, mtype, ctl=b"", data=b"", req_id=9):
        """(type, ctl, data) of the reply, or None when the server closes the
        connection or the TLS session fails (a refused certificate)."""
        try:
            self.sock.sendall(frame(mtype, ctl, data, req_id))
            hdr = self._recv_exact(24)
            if hdr is None:
                return None
            _, _, rtype, _, cl, dl = struct.unpack("<IHHQII", hdr)
            c = self._recv_exact(cl) if cl else b""
            d = self._recv_exact(dl) if dl else b""
            if c is None or d is None:
                return None
            return rtype, c, d
        except (ssl.SSLError, ConnectionError, OSError):
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connect_and_call(cluster, address, cert, mtype, ctl=b"", ca=None):
    """A fresh connection, one call; None if the server refused the peer
    (handshake failure or connection closed)."""
    try:
        p = Peer(cluster, address, cert, ca=ca)
    except (ssl.SSLError, ConnectionError, OSError):
        return None
    try:
        return p.call(mtype, ctl)
    finally:
        p.close()


def error_of(reply):
    """(code, message) of a MSG_ERROR reply; AssertionError otherwise."""
    assert reply is not None, "connection closed instead of an error reply"
    assert reply[0] == MSG_ERROR, "expected MSG_ERROR, got type %#x" % reply[0]
    f = pb_decode(reply[1])
    return f.get(1, [0])[0], f.get(2, [b""])[0].decode(errors="replace")


def ok_of(reply, mtype):
    """Decoded control part of a successful reply to mtype."""
    assert reply is not None, "connection closed"
    if reply[0] == MSG_ERROR:
        raise AssertionError("error reply: %r" % (error_of(reply),))
    assert reply[0] == mtype | REPLY_BIT, "reply type %#x" % reply[0]
    return pb_decode(reply[1])


def volume_id(peer, name="default"):
    return ok_of(peer.call(MSG_VOLUME_GET, pb((1, name))), MSG_VOLUME_GET)[2][0]


def alloc(peer, volume="default", nbytes=1 << 20, copies=1, lease_ms=60000):
    """(lease_id, expiry_ms, {vendor_id: (address, token)}) of a fresh lease."""
    r = ok_of(peer.call(MSG_ALLOC, pb((1, volume), (2, nbytes), (3, copies), (4, lease_ms))),
              MSG_ALLOC)
    cands = {}
    for c in r.get(3, []):
        f = pb_decode(c)
        cands[f[1][0]] = (f[2][0].decode(), f[4][0])
    return r[1][0], r[2][0], cands
