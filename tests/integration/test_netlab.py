"""tools/netlab and pstore-linkemu: hosts behind 0-3 routers have the hop
counts the TTL says, delayed links have the RTT they were given, lossy links
lose what they should, a rate-limited link paces a TCP transfer, jitter keeps
packet order, and `netlab down` leaves nothing behind (even after a crash).
Every lab made here is removed by the fixture, pass or fail."""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
NETLAB = os.path.join(REPO, "tools", "netlab")
BUILD = os.environ.get("PSTORE_BUILD") or os.path.join(REPO, "build")
LINKEMU = os.path.join(BUILD, "tools", "linkemu", "pstore-linkemu")
PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(shutil.which("ping") is None,
                       reason="ping missing: install iputils-ping (tools/setup)"),
    pytest.mark.skipif(not os.access(LINKEMU, os.X_OK),
                       reason="pstore-linkemu not built at %s" % LINKEMU),
]

_seq = itertools.count()


def run(argv, timeout=120, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def netlab(*args, **kw):
    env = dict(os.environ, PSTORE_LINKEMU=LINKEMU)
    return run([NETLAB] + list(args), env=env, **kw)


def lab_name():
    return "t%05d%d" % (os.getpid() % 100000, next(_seq) % 100)


@pytest.fixture
def make_lab(tmp_path):
    """make_lab(hosts=[...], **top) -> the lab's JSON from `netlab up`;
    every lab is taken down at the end of the test, pass or fail."""
    names = []

    def make(hosts, **top):
        name = lab_name()
        names.append(name)
        spec = dict(top, name=name, hosts=hosts)
        path = tmp_path / ("%s.json" % name)
        path.write_text(json.dumps(spec))
        return json.loads(netlab("up", "--spec", str(path)).stdout)

    yield make
    errors = []
    for n in names:
        r = netlab("down", "--name", n, check=False)
        if r.returncode != 0:
            errors.append(r.stderr)
    assert not errors, "netlab down failed: %s" % errors


def ping(addr, count, interval, netns=None, deadline=None):
    """Runs ping; returns (sent, received, [rtt ms], [ttl])."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2"]
    if deadline:
        argv += ["-w", str(deadline)]
    argv.append(addr)
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    r = run(argv, check=False, timeout=120)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
    assert m, "ping gave no summary:\n%s\n%s" % (r.stdout, r.stderr)
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", r.stdout)]
    ttls = [int(x) for x in re.findall(r"ttl=(\d+)", r.stdout)]
    return int(m.group(1)), int(m.group(2)), rtts, ttls


def live_pids(pattern):
    """Pids of non-zombie processes whose command line contains `pattern`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if pattern in cmd and state != "Z":
            out.append(int(d))
    return out


def assert_gone(name):
    prefix = "pnl-%s-" % name
    nss = run(["ip", "netns", "list"]).stdout
    assert prefix not in nss, nss
    links = run(["ip", "-o", "link"]).stdout
    assert "pnl-%s" % name not in links, links
    assert live_pids("--tag " + prefix) == []
    routes = run(["ip", "route"]).stdout
    assert "pnl-%s" % name not in routes, routes
    assert not os.path.exists("/run/pstore-netlab/%s.json" % name)


# ------------------------------------------------------------------ hop counts

def test_ttl_drops_by_one_per_router(make_lab):
    lab = make_lab([{"name": "h%d" % k, "routers": k} for k in range(4)])
    for k in range(4):
        h = lab["hosts"]["h%d" % k]
        assert h["hops"] == k
        sent, got, _, ttls = ping(h["addr"], 5, 0.2)
        assert got == sent == 5
        assert set(ttls) == {64 - k}, "host behind %d routers: ttls %s" % (k, ttls)
        # and back: the host reaches the client's lab address in the root namespace
        sent, got, _, ttls = ping(lab["client"]["addr"], 3, 0.2, netns=h["netns"])
        assert got == 3 and set(ttls) == {64 - k}
    # host to host across the switch: hops add up (3 + 2)
    _, got, _, ttls = ping(lab["hosts"]["h2"]["addr"], 3, 0.2, netns=lab["hosts"]["h3"]["netns"])
    assert got == 3 and set(ttls) == {64 - 5}


def test_emulated_links_are_not_hops(make_lab):
    lab = make_lab([{"name": "a", "routers": 2,
                     "links": [{"delay_ms": 1}, {"delay_ms": 1}, {"delay_ms": 1}]}])
    _, got, _, ttls = ping(lab["hosts"]["a"]["addr"], 3, 0.2)
    assert got == 3 and set(ttls) == {62}


# ------------------------------------------------------------------ delay, jitter

def test_delay_applies_per_direction(make_lab):
    lab = make_lab([{"name": "both", "link": {"delay_ms": 40}},
                    {"name": "down", "routers": 1,
                     "link": {"to_host": {"delay_ms": 40}}}])
    ping(lab["hosts"]["both"]["addr"], 1, 0.2)  # neighbours resolved
    _, got, rtts, _ = ping(lab["hosts"]["both"]["addr"], 20, 0.05)
    assert got == 20
    # the median: one scheduling stall on a loaded 2-core VM must not decide
    avg = statistics.median(rtts)
    assert 64 <= avg <= 96, "40 ms each way: RTT %.1f ms (%s)" % (avg, rtts)
    ping(lab["hosts"]["down"]["addr"], 1, 0.2)
    _, got, rtts, _ = ping(lab["hosts"]["down"]["addr"], 20, 0.05)
    avg = statistics.median(rtts)
    assert got == 20 and 32 <= avg <= 48, "40 ms toward the host only: RTT %.1f ms (%s)" % (avg, rtts)


UDP_RECEIVER = r"""
import socket, sys, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(3.0)
print("ready", flush=True)
seqs = []
try:
    while True:
        d, _ = s.recvfrom(2048)
        if d == b"end":
            break
        seqs.append(int(d.split(b" ")[0]))
except socket.timeout:
    pass
print(json.dumps(seqs), flush=True)
"""


def udp_order(lab, host, n):
    """Sends n numbered datagrams, 1 ms apart, from the client to `host`;
    returns the sequence numbers in the order they arrived."""
    h = lab["hosts"][host]
    port = 9000 + os.getpid() % 1000
    rx = subprocess.Popen(["ip", "netns", "exec", h["netns"], PYTHON, "-c", UDP_RECEIVER,
                           h["addr"], str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(n):
            s.sendto(b"%d pad" % i + b"x" * 200, (h["addr"], port))
            time.sleep(0.001)
        time.sleep(0.5)
        s.sendto(b"end", (h["addr"], port))
        out, _ = rx.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def test_jitter_keeps_order_unless_reorder_asked(make_lab):
    lab = make_lab([{"name": "ord", "link": {"delay_ms": 20, "jitter_ms": 10}},
                    {"name": "reo", "link": {"delay_ms": 20, "jitter_ms": 10, "reorder": True}}])
    for h in ("ord", "reo"):
        ping(lab["hosts"][h]["addr"], 1, 0.2)
    _, _, rtts, _ = ping(lab["hosts"]["ord"]["addr"], 30, 0.05)
    assert statistics.pstdev(rtts) > 1.0, "jitter did not vary the RTT: %s" % rtts
    seqs = udp_order(lab, "ord", 300)
    assert len(seqs) == 300 and seqs == sorted(seqs)
    seqs = udp_order(lab, "reo", 300)
    assert len(seqs) == 300
    assert sum(1 for a, b in zip(seqs, seqs[1:]) if b < a) > 10, "no reordering with reorder"


# ------------------------------------------------------------------ loss

def test_loss_matches_probability(make_lab):
    lab = make_lab([{"name": "one", "link": {"to_host": {"loss_pct": 30}}},
                    {"name": "two", "routers": 1, "link": {"loss_pct": 30}}])
    for h in ("one", "two"):
        ping(lab["hosts"][h]["addr"], 5, 0.05)  # neighbours resolved (ARP is never dropped)
    sent, got, _, _ = ping(lab["hosts"]["one"]["addr"], 200, 0.01)
    loss = 1 - got / sent
    # binomial(200, 0.3): sd 3.2 points; +-3.7 sd
    assert sent == 200 and 0.18 <= loss <= 0.42, "30%% one way: measured %.2f" % loss
    sent, got, _, _ = ping(lab["hosts"]["two"]["addr"], 200, 0.01)
    loss = 1 - got / sent
    # both directions: 1 - 0.7^2 = 0.51
    assert sent == 200 and 0.38 <= loss <= 0.64, "30%% each way: measured %.2f" % loss
    stats = netlab("stats", "--name", lab["name"]).stdout
    drops = [int(x) for x in re.findall(r"drop_loss=(\d+)", stats)]
    assert sum(drops) > 100, stats


# ------------------------------------------------------------------ rate

TCP_SENDER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
buf = b"x" * 65536
left = int(sys.argv[3])
while left > 0:
    n = s.send(buf[:min(left, len(buf))])
    left -= n
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
"""


def tcp_rate(lab, host, nbytes):
    """Bytes/s of a TCP transfer from `host` to the client, timed at the
    receiver from the first to the last byte."""
    addr = lab["client"]["addr"]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((addr, 0))
    srv.listen(1)
    srv.settimeout(30)
    tx = subprocess.Popen(["ip", "netns", "exec", lab["hosts"][host]["netns"], PYTHON, "-c",
                           TCP_SENDER, addr, str(srv.getsockname()[1]), str(nbytes)])
    try:
        c, _ = srv.accept()
        c.settimeout(30)
        got, first, last = 0, None, None
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            if first is None:
                first = time.monotonic()
            got += len(d)
            last = time.monotonic()
        c.close()
        assert got == nbytes
        assert tx.wait(timeout=30) == 0
        return got / (last - first)
    finally:
        srv.close()
        if tx.poll() is None:
            tx.kill()
            tx.wait()


def test_rate_limits_tcp(make_lab):
    lab = make_lab([{"name": "slow", "routers": 1, "link": {"rate": 1000000}},
                    {"name": "fast", "routers": 1}])
    rate = tcp_rate(lab, "slow", 3 * 1000 * 1000)
    assert 0.8e6 <= rate <= 1.2e6, "1 MB/s link: %.0f B/s" % rate
    fast = tcp_rate(lab, "fast", 20 * 1000 * 1000)
    assert fast > 5e6, "an unlimited link is not limited: %.0f B/s" % fast


# ------------------------------------------------------------------ teardown

def test_down_removes_everything(make_lab):
    lab = make_lab([{"name": "a", "routers": 2, "link": {"delay_ms": 5}},
                    {"name": "b", "routers": 0, "links": [{"loss_pct": 1}]}])
    name = lab["name"]
    assert len(live_pids("--tag pnl-%s-" % name)) == 2
    # a daemon left running inside a host
    daemon = subprocess.Popen([NETLAB, "exec", "--name", name, "a", "--", "sleep", "300"])
    try:
        time.sleep(0.3)
        assert ("pnl-%s-a" % name) in run(["ip", "netns", "identify", str(daemon.pid)]).stdout
        netlab("down", "--name", name)
        assert daemon.wait(timeout=10) != 0
        assert_gone(name)
        netlab("down", "--name", name)  # idempotent
        assert_gone(name)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_down_after_crash_without_state(make_lab):
    lab = make_lab([{"name": "a", "routers": 1, "link": {"delay_ms": 5}},
                    {"name": "b", "routers": 3, "links": [{}, {}, {"delay_ms": 1}, {}]}])
    name = lab["name"]
    # an emulator dies and the state file is lost: down still finds everything by name
    os.kill(lab["emulators"][0]["pid"], signal.SIGKILL)
    os.unlink("/run/pstore-netlab/%s.json" % name)
    netlab("down", "--name", name)
    assert_gone(name)


def test_two_labs_side_by_side(make_lab):
    labs = [None, None]

    def up(i):
        labs[i] = make_lab([{"name": "x", "routers": 1, "link": {"delay_ms": 2}}])

    ts = [threading.Thread(target=up, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert labs[0] and labs[1] and labs[0]["net"] != labs[1]["net"]
    for lab in labs:
        _, got, _, ttls = ping(lab["hosts"]["x"]["addr"], 3, 0.1)
        assert got == 3 and set(ttls) == {63}


def test_bad_spec_is_refused_and_builds_nothing(tmp_path):
    name = lab_name()
    for hosts in ([], [{"name": "a", "routers": 4}], [{"name": "a", "link": {"delay": 5}}],
                  [{"name": "a"}, {"name": "a"}], [{"name": "a", "link": {"loss_pct": 101}}]):
        p = tmp_path / "bad.json"
        p.write_text(json.dumps({"name": name, "hosts": hosts}))
        r = netlab("up", "--spec", str(p), check=False)
        assert r.returncode == 2, (hosts, r.stderr)
        assert r.stderr.startswith("netlab: ")
        assert_gone(name)


# ------------------------------------------------------------------ the emulator's CLI

def test_linkemu_usage_and_errors():
    r = run([LINKEMU, "--help"])
    assert "--dev-a" in r.stdout and "--loss" in r.stdout
    for argv in (["--dev-a", "x"], ["--dev-a", "x", "--dev-b", "y", "--loss", "150"],
                 ["--dev-a", "x", "--dev-b", "y", "--delay", "abc"], ["--bogus"],
                 ["--dev-a", "x", "--dev-b", "y", "--mode", "eth"], ["--dev-a", "x", "--dev-b", "x"]):
        r = run([LINKEMU] + argv, check=False)
        assert r.returncode == 2, argv
        assert "pstore-linkemu: " in r.stderr
    r = run([LINKEMU, "--dev-a", "pnlq0", "--dev-b", "pnlq1", "--netns-a", "pnl-no-such-ns"],
            check=False)
    assert r.returncode == 1 and "pnl-no-such-ns" in r.stderr


def test_linkemu_counters_on_sigusr1(make_lab):
    lab = make_lab([{"name": "a", "link": {"delay_ms": 1}}])
    ping(lab["hosts"]["a"]["addr"], 10, 0.02)
    emu = lab["emulators"][0]
    os.kill(emu["pid"], signal.SIGUSR1)
    time.sleep(0.3)
    with open(emu["log"]) as f:
        log = f.read()
    m = re.findall(r"a->b rx=(\d+) .* tx=(\d+) ", log)
    assert m and int(m[-1][0]) >= 10 and int(m[-1][1]) >= 10, log
