"""probelab - a pstore cluster on a netlab network, for the path-probing tests.

The FAT server and pstorefs run in the root namespace on the lab's client
address; each vendor runs inside its netlab host namespace (`netlab exec`),
so that every byte between the client and a vendor crosses that host's
routers and emulated link.  Configs follow tools/pstore-dev's format (its
PKI helper is reused).  ProbeLab is a context manager: leaving it, pass or
fail, stops the daemons (SIGCONT first, in case a test froze one), unmounts,
and takes the lab down (`netlab down` also kills anything left in its
namespaces).
"""

import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from pstorelib import BUILD, REPO, binary, pstore_bin, run, wait_for

NETLAB = os.path.join(REPO, "tools", "netlab")
LINKEMU = os.path.join(BUILD, "tools", "linkemu", "pstore-linkemu")
VOLUME = "default"
MiB = 1 << 20


def _pstore_dev():
    path = os.path.join(REPO, "tools", "pstore-dev")
    loader = importlib.machinery.SourceFileLoader("pstore_dev_tool", path)
    spec = importlib.util.spec_from_loader("pstore_dev_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def lab_ready():
    """None when labs can run here, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not os.access(LINKEMU, os.X_OK):
        return "pstore-linkemu not built at %s" % LINKEMU
    if shutil.which("ip") is None:
        return "iproute2 missing"
    return None


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def percentile(values, q):
    s = sorted(values)
    if not s:
        return 0.0
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))
    return s[k]


class ProbeLab:
    """hosts: netlab host specs (name, routers, link...) plus optional "zone".
    probe: extra [probe] keys for client.conf."""

    def __init__(self, name, hosts, copies=2, chunk_size=None, probe=None,
                 vendor_timeout_ms=3000, capacity=4 << 30):
        self.name = name
        self.hosts = hosts
        self.copies = copies
        self.chunk_size = chunk_size
        self.probe = dict(probe or {})
        self.vendor_timeout_ms = vendor_timeout_ms
        self.capacity = capacity
        self.base = tempfile.mkdtemp(prefix="pstore-probe-", dir="/tmp")
        self.procs = {}      # id -> Popen
        self.mounts = {}     # path -> Popen
        self.lab = None
        self.vendor_ids = {}  # host name -> vendor id

    # ---- lifecycle
    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def netlab(self, *args, timeout=120, check=True):
        env = dict(os.environ, PSTORE_LINKEMU=LINKEMU)
        return run([NETLAB] + list(args), env=env, timeout=timeout, check=check)

    def up(self):
        spec = {"name": self.name, "seed": 7,
                "hosts": [{k: v for k, v in h.items() if k != "zone"} for h in self.hosts]}
        spec_path = os.path.join(self.base, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        self.lab = json.loads(self.netlab("up", "--spec", spec_path, "--name", self.name,
                                          "--linkemu", LINKEMU).stdout)
        self.client_addr = self.lab["client"]["addr"]
        dev = _pstore_dev()
        pki = os.path.join(self.base, "pki")
        names = [("fatd", "fat:1"), ("client", "client:probe"), ("admin", "admin:root")]
        names += [("vendor%d" % (i + 1), "vendor:%d" % (i + 1)) for i in range(len(self.hosts))]
        dev.make_pki(pki, names)
        self.pki = pki
        fat_port = free_port(self.client_addr)
        self.fat_addr = "%s:%d" % (self.client_addr, fat_port)
        fat_data = os.path.join(self.base, "fatd")
        os.makedirs(fat_data)
        fat_conf = os.path.join(self.base, "fatd.conf")
        dev.write_ini(fat_conf, [("fatd", [("id", "1"), ("listen", self.fat_addr),
                                           ("data", fat_data), ("map_size", "1G"),
                                           ("vendor_timeout_ms", str(self.vendor_timeout_ms)),
                                           ("heartbeat_ms", "500"), ("log_level", "info")]),
                                 dev.tls_section(pki, "fatd")])
        self.spawn("fatd", [binary("pstore-fatd", "src/fatsrv"), "-c", fat_conf])
        wait_for(lambda: self._accepts(self.client_addr, fat_port), 20, what="fatd listening")
        for i, h in enumerate(self.hosts):
            vid = i + 1
            addr = "%s:7101" % self.lab["hosts"][h["name"]]["addr"]
            vdir = os.path.join(self.base, "vendor%d" % vid)
            devs = [os.path.join(vdir, "dev0")]
            index = os.path.join(vdir, "index")
            for p in devs + [index]:
                os.makedirs(p)
            conf = os.path.join(self.base, "vendor%d.conf" % vid)
            dev.write_ini(conf, [("vendor", [("id", str(vid)), ("listen", addr),
                                             ("address", addr), ("zone", h.get("zone", "default")),
                                             ("devices", ", ".join(devs)),
                                             ("capacity", str(self.capacity)),
                                             ("index", index), ("fat", self.fat_addr),
                                             ("heartbeat_ms", "500"), ("log_level", "info")]),
                                 dev.tls_section(pki, "vendor%d" % vid)])
            self.spawn("vendor%d" % vid,
                       [NETLAB, "exec", "--name", self.name, h["name"], "--",
                        binary("pstore-vendord", "src/vendor"), "-c", conf])
            self.vendor_ids[h["name"]] = vid
        self.client_conf = self.write_client_conf("client")
        wait_for(self._all_alive, 40, what="every vendor alive at the FAT")
        args = ["volume", "create", VOLUME, "--copies", str(self.copies)]
        if self.chunk_size:
            args += ["--chunk-size", str(self.chunk_size)]
        self.cli(*args)

    def write_client_conf(self, tag):
        dev = _pstore_dev()
        d = os.path.join(self.base, tag)
        os.makedirs(d, exist_ok=True)
        probe = {"interval_ms": "1000", "probes": "5", "timeout_ms": "1000"}
        probe.update({k: str(v) for k, v in self.probe.items()})
        conf = os.path.join(self.base, tag + ".conf")
        dev.write_ini(conf, [("client", [("fat", self.fat_addr), ("volume", VOLUME),
                                         ("state", os.path.join(d, "state")),
                                         ("cache", os.path.join(d, "cache")),
                                         ("key_file", dev.ensure_key_file(self.base)),
                                         ("log_level", "info")]),
                             ("probe", list(probe.items())),
                             dev.tls_section(self.pki, "client")])
        return conf

    def down(self):
        for p in list(self.procs.values()):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)
                except OSError:
                    pass
        for mnt in list(self.mounts):
            self.umount(mnt)
        for pid_id in sorted(self.procs, key=lambda k: k == "fatd"):  # fatd last
            self.stop(pid_id)
        if self.lab is not None or self.name:
            self.netlab("down", "--name", self.name, check=False)
        if not os.environ.get("PSTORE_IT_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    # ---- processes
    def log_path(self, pid_id):
        return os.path.join(self.base, pid_id + ".log")

    def spawn(self, pid_id, argv):
        with open(self.log_path(pid_id), "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
        self.procs[pid_id] = p
        return p

    def stop(self, pid_id):
        p = self.procs.get(pid_id)
        if not p or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait(timeout=10)

    def vendor_pid(self, vid):
        """The pstore-vendord process itself (netlab exec execs into it, but
        look it up by its config in case a wrapper stays)."""
        conf = os.path.join(self.base, "vendor%d.conf" % vid)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"pstore-vendord") and conf.encode() in argv:
                return int(pid)
        raise AssertionError("no pstore-vendord process for vendor %d" % vid)

    def freeze(self, vid):
        os.kill(self.vendor_pid(vid), signal.SIGSTOP)

    def thaw(self, vid):
        os.kill(self.vendor_pid(vid), signal.SIGCONT)

    def _accepts(self, addr, port):
        try:
            with socket.create_connection((addr, port), timeout=1):
                return True
        except OSError:
            return False

    def _all_alive(self):
        r = self.cli("vendors", "--json", check=False)
        if r.returncode != 0:
            return False
        vs = json.loads(r.stdout)
        vs = vs.get("vendors", vs) if isinstance(vs, dict) else vs
        alive = [v for v in vs if v.get("alive")]
        return len(alive) == len(self.hosts)

    # ---- client side
    def cli(self, *args, timeout=120, check=True, conf=None):
        return run([pstore_bin(), "-c", conf or self.client_conf] + list(args),
                   timeout=timeout, check=check)

    def mount(self, tag):
        """A pstorefs mount with fresh state and cache (it rebuilds the
        namespace from the FAT's metadata mirror), at BASE/mnt-TAG."""
        conf = self.write_client_conf(tag)
        mnt = os.path.join(self.base, "mnt-" + tag)
        os.makedirs(mnt, exist_ok=True)
        opts = "config=%s,volume=%s" % (conf, VOLUME)
        p = self.spawn("pstorefs-" + tag, [binary("pstorefs", "src/fs"), "-f", "-o", opts, mnt])
        self.mounts[mnt] = p

        def mounted():
            if p.poll() is not None:
                with open(self.log_path("pstorefs-" + tag)) as f:
                    raise AssertionError("pstorefs exited: %s" % f.read()[-3000:])
            with open("/proc/self/mountinfo") as f:
                return any((" %s " % mnt) in line and "pstorefs" in line for line in f)
        wait_for(mounted, 30, what="pstorefs mounted at " + mnt)
        return mnt

    def umount(self, mnt):
        p = self.mounts.pop(mnt, None)
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        if p is not None:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)

    def probe_json(self, mnt, pin=None):
        args = ["probe", "--json", mnt]
        if pin is not None:
            args[1:1] = ["--pin", str(pin)]
        return json.loads(self.cli(*args).stdout)

    def wait_rounds(self, mnt, rounds, timeout=60):
        return wait_for(lambda: (lambda r: r if r["rounds"] >= rounds else None)(
            self.probe_json(mnt)), timeout, interval=0.5, what="%d probe rounds" % rounds)

    def by_id(self, report):
        return {v["id"]: v for v in report["vendors"]}

    def locate(self, path):
        return json.loads(self.cli("locate", "--json", path).stdout)
