"""Who may talk to the daemons: connections without a certificate, with one
from another CA, with a revoked one, or with the wrong role for the call are
refused; a user cannot see, read or commit another user's volume.  Real
pstore-fatd and pstore-vendord processes, hand-made frames."""

import os
import time

from pstorelib import chunk_header, pb, pb_decode, pstore_bin, run, wait_for
from seclib import (MSG_ALLOC, MSG_CHUNK_LIST, MSG_CHUNK_PUT, MSG_COMMIT, MSG_META_LIST,
                    MSG_PING, MSG_VENDOR_HEARTBEAT, MSG_VOLUME_GET, MSG_VOLUME_LIST, Cluster,
                    Peer, alloc, connect_and_call, error_of, ok_of)

import pytest

EACCES, ENOENT = 13, 2
MSG_CHUNK_GET = 41


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(vendors=2, copies=1)
    try:
        c.up()
        yield c
    finally:
        c.destroy()


def test_valid_client_is_served(cluster):
    for addr, mtype in ((cluster.fat_addr(), MSG_VOLUME_LIST), (cluster.vendor_addr(1), MSG_PING)):
        ok_of(connect_and_call(cluster, addr, cluster.cert("client"), mtype), mtype)


def test_no_certificate_is_refused(cluster):
    for addr, mtype in ((cluster.fat_addr(), MSG_VOLUME_LIST), (cluster.vendor_addr(1), MSG_PING)):
        assert connect_and_call(cluster, addr, None, mtype) is None, addr


def test_certificate_of_another_ca_is_refused(cluster):
    other = os.path.join(cluster.base, "other-ca")
    run([pstore_bin(), "ca", "init", "--dir", other, "--name", "intruder"])
    # same CN as the real client: only the issuer differs
    cert = cluster.issue("client", "dev", name="client-dev", ca_dir=other)
    for addr, mtype in ((cluster.fat_addr(), MSG_VOLUME_LIST), (cluster.vendor_addr(1), MSG_PING)):
        assert connect_and_call(cluster, addr, cert, mtype) is None, addr


def test_revoked_certificate_is_refused(cluster):
    cert = cluster.issue("client", "carol")
    for addr, mtype in ((cluster.fat_addr(), MSG_VOLUME_LIST), (cluster.vendor_addr(2), MSG_PING)):
        ok_of(connect_and_call(cluster, addr, cert, mtype), mtype)
    # connections open at the revocation are cut before their next request
    held = Peer(cluster, cluster.vendor_addr(2), cert)
    ok_of(held.call(MSG_PING), MSG_PING)
    cluster.ca("revoke", cert[0])
    listed = {c["id"]: c for c in __import__("json").loads(
        cluster.ca("list", "--json").stdout)["certificates"] if c["role"] == "client"}
    assert listed["carol"]["revoked"] and not listed["dev"]["revoked"]
    # daemons notice the new CRL file on their next connection (at most 1 s later)
    for addr, mtype in ((cluster.fat_addr(), MSG_VOLUME_LIST), (cluster.vendor_addr(2), MSG_PING)):
        wait_for(lambda: connect_and_call(cluster, addr, cert, mtype) is None, 10,
                 what="%s refusing the revoked certificate" % addr)
    assert held.call(MSG_PING) is None, "a connection of a revoked peer was still served"
    held.close()
    # the CLI with that certificate fails; the others still work
    conf = cluster.client_conf_for(*cert, name="carol")
    r = run([pstore_bin(), "-c", conf, "volume", "list"], check=False, timeout=60)
    assert r.returncode != 0
    ok_of(connect_and_call(cluster, cluster.fat_addr(), cluster.cert("client"),
                           MSG_VOLUME_LIST), MSG_VOLUME_LIST)
    # SIGHUP reloads too (and must not disturb the daemon)
    os.kill(cluster.proc("fatd1")["pid"], 1)
    time.sleep(0.3)
    assert "SIGHUP: reloading the CRL" in cluster.log("fatd1")
    ok_of(connect_and_call(cluster, cluster.fat_addr(), cluster.cert("client"),
                           MSG_VOLUME_LIST), MSG_VOLUME_LIST)


def test_wrong_role_is_refused(cluster):
    fat = cluster.fat_addr()
    hello = pb((1, 1), (2, cluster.vendor_addr(1)), (3, "default"))
    # a client pretending to be vendor 1
    code, msg = error_of(connect_and_call(cluster, fat, cluster.cert("client"),
                                          MSG_VENDOR_HEARTBEAT, hello))
    assert code == EACCES, msg
    # vendor 2's certificate speaking for vendor 1
    code, msg = error_of(connect_and_call(cluster, fat, cluster.cert("vendor2"),
                                          MSG_VENDOR_HEARTBEAT, hello))
    assert code == EACCES, msg
    # a vendor may not read any volume's FAT, list volumes, or allocate
    for mtype, ctl in ((MSG_META_LIST, pb((1, "default"))), (MSG_CHUNK_LIST, pb((1, "default"))),
                       (MSG_VOLUME_LIST, b""), (MSG_VOLUME_GET, pb((1, "default"))),
                       (MSG_ALLOC, pb((1, "default"), (2, 4096), (3, 1)))):
        code, msg = error_of(connect_and_call(cluster, fat, cluster.cert("vendor1"), mtype, ctl))
        assert code == EACCES, (mtype, msg)
    # the FAT server's own certificate is not a client either
    code, msg = error_of(connect_and_call(cluster, fat, cluster.cert("fatd"), MSG_VOLUME_LIST))
    assert code == EACCES, msg


def test_user_cannot_use_another_users_volume(cluster):
    """`default` belongs to client:dev (pstore-dev created it with that
    certificate); client:bob may not list, read, allocate in or commit to it."""
    bob = cluster.issue("client", "bob")
    fat = cluster.fat_addr()
    p = Peer(cluster, fat, bob)
    try:
        for mtype, ctl in ((MSG_VOLUME_GET, pb((1, "default"))),
                           (MSG_META_LIST, pb((1, "default"))),
                           (MSG_CHUNK_LIST, pb((1, "default"))),
                           (MSG_ALLOC, pb((1, "default"), (2, 4096), (3, 1))),
                           (MSG_COMMIT, pb((1, "default"), (8, os.urandom(16))))):
            code, msg = error_of(p.call(mtype, ctl))
            assert code == EACCES, (mtype, msg)
        # bob's listing does not show dev's volume; bob's own volume works
        conf = cluster.client_conf_for(*bob, name="bob")
        run([pstore_bin(), "-c", conf, "volume", "create", "bobvol", "--copies", "1"])
        names = run([pstore_bin(), "-c", conf, "volume", "list"]).stdout
        assert "bobvol" in names and "default" not in names
        ok_of(p.call(MSG_VOLUME_GET, pb((1, "bobvol"))), MSG_VOLUME_GET)
    finally:
        p.close()
    # and dev cannot use bob's volume, while an admin sees both
    code, msg = error_of(connect_and_call(cluster, fat, cluster.cert("client"), MSG_VOLUME_GET,
                                          pb((1, "bobvol"))))
    assert code == EACCES, msg
    admin = cluster.cli("volume", "list").stdout  # client:dev
    assert "default" in admin and "bobvol" not in admin
    r = run([pstore_bin(), "-c", os.path.join(cluster.dir, "admin.conf"), "volume", "list"])
    assert "default" in r.stdout and "bobvol" in r.stdout


def test_user_cannot_fetch_another_users_chunks(cluster):
    """Vendors serve a chunk to a client only with the FAT's read capability
    for the chunk's volume, given to that client."""
    dev = Peer(cluster, cluster.fat_addr(), cluster.cert("client"))
    try:
        info = ok_of(dev.call(MSG_VOLUME_GET, pb((1, "default"))), MSG_VOLUME_GET)
        owner, dev_token = info[2][0], info[8][0]
        lease, _, cands = alloc(dev, copies=1)
    finally:
        dev.close()
    v, (addr, token) = sorted(cands.items())[0]
    cid, payload = os.urandom(16), os.urandom(5000)
    hdr = chunk_header(cid, owner, lease, v, [v], 1, len(payload), payload)
    p = Peer(cluster, addr, cluster.cert("client"))
    try:
        ok_of(p.call(MSG_CHUNK_PUT, pb((1, pb((1, v), (2, addr), (3, token)))), hdr + payload),
              MSG_CHUNK_PUT)
    finally:
        p.close()

    def get(cert, read_token=None, vol=owner):
        fields = [(1, cid), (2, vol)] + ([(5, read_token)] if read_token else [])
        return connect_and_call(cluster, addr, cert, MSG_CHUNK_GET, pb(*fields))

    # the owner with its capability reads the chunk back
    r = get(cluster.cert("client"), dev_token)
    ok_of(r, MSG_CHUNK_GET)
    assert r[2][144:] == payload
    # without a capability, nobody but an admin reads
    code, msg = error_of(get(cluster.cert("client")))
    assert code == EACCES and "capability" in msg, msg
    ok_of(get(cluster.cert("admin")), MSG_CHUNK_GET)
    code, msg = error_of(get(cluster.cert("vendor2")))
    assert code == EACCES, msg
    # bob: dev's capability is not his; his own is for another volume
    bob = cluster.cert("client-bob") if os.path.exists(cluster.cert("client-bob")[0]) \
        else cluster.issue("client", "bob")
    code, msg = error_of(get(bob, dev_token))
    assert code == EACCES and "client:dev" in msg, msg
    conf = cluster.client_conf_for(*bob, name="bob")
    run([pstore_bin(), "-c", conf, "volume", "create", "bobvol2", "--copies", "1"])
    bp = Peer(cluster, cluster.fat_addr(), bob)
    try:
        bob_token = ok_of(bp.call(MSG_VOLUME_GET, pb((1, "bobvol2"))), MSG_VOLUME_GET)[8][0]
    finally:
        bp.close()
    code, msg = error_of(get(bob, bob_token))
    assert code == EACCES and "another volume" in msg, msg
    # a capability for bob's volume with dev's chunk id: no such chunk there
    bob_volume = pb_decode(pb_decode(bob_token)[1][0])[10][0]  # ReadCap.volume_id
    code, msg = error_of(get(bob, bob_token, vol=bob_volume))
    assert code == ENOENT, msg  # the chunk's owner is not bob's volume


def _set_fatd_user(cluster, user):
    conf = cluster.proc("fatd1")["config"]
    with open(conf) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith("user =")]
    if user:
        lines.insert(lines.index("[fatd]") + 1, "user = %s" % user)
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")


def _uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_fatd_drops_privileges(cluster):
    import pwd
    nobody = pwd.getpwnam("nobody")
    data = cluster.proc("fatd1")["data"][0]
    cluster.stop("fatd1")
    try:
        # the data must belong to the user; the CRL must stay readable for reloads
        for dp, dns, fns in os.walk(data):
            for n in [dp] + [os.path.join(dp, x) for x in fns]:
                os.chown(n, nobody.pw_uid, nobody.pw_gid)
        os.chmod(cluster.pki, 0o711)
        _set_fatd_user(cluster, "nobody")
        cluster.start("fatd1")
        pid = cluster.proc("fatd1")["pid"]
        assert _uid_of(pid) == [nobody.pw_uid] * 4
        assert "running as user nobody" in cluster.log("fatd1")
        ok_of(connect_and_call(cluster, cluster.fat_addr(), cluster.cert("client"),
                               MSG_VOLUME_LIST), MSG_VOLUME_LIST)
        cluster.cli("volume", "create", "after-drop", "--copies", "1")
        # a user that does not exist: a warning, and the daemon keeps running as root
        cluster.stop("fatd1")
        _set_fatd_user(cluster, "no-such-pstore-user")
        cluster.start("fatd1")
        assert _uid_of(cluster.proc("fatd1")["pid"])[0] == 0
        assert "does not exist: continuing as root" in cluster.log("fatd1")
    finally:
        cluster.stop("fatd1")
        _set_fatd_user(cluster, None)
        os.chmod(cluster.pki, 0o700)
        cluster.start("fatd1")


def test_key_files_are_private(cluster):
    """pstore ca writes every private key 0600 in a 0700 CA directory; the
    FAT signing key is 0600 too; no daemon warns about a readable key."""
    assert os.stat(cluster.pki).st_mode & 0o777 == 0o700
    keys = [os.path.join(cluster.pki, n) for n in os.listdir(cluster.pki) if n.endswith(".key")]
    keys.append(os.path.join(cluster.proc("fatd1")["data"][0], "signing.key"))
    assert len(keys) >= 5
    for k in keys:
        assert os.stat(k).st_mode & 0o777 == 0o600, k
    for p in ("fatd1", "vendor1", "vendor2"):
        assert "may be read by others" not in cluster.log(p)
