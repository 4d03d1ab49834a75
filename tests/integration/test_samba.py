#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Samba's own programs through two tsgates (issue 16, items 2 and 3).

smbclient / rpcclient -> tsgate (plain in, `connect: tls`) -> tsgate (TLS
in) -> smbd / samba-dcerpcd, with the gateways run on the two files of
etc/examples (samba-client-side.yaml, samba-server-side.yaml) and every
framing at its default max_pdu:
  - SMB2/3 over `framing: nbt`: tens of MiB put and got, SHA-256 exact;
    SMB3 encryption on a share that requires it; the old 1 MiB default
    (and 8 MiB) refusing Samba's PDUs;
  - DCE/RPC over named pipes (ncacn_np, inside SMB) and over
    `ncacn_ip_tcp` through `framing: ncacn`: the endpoint mapper on port
    135, then the port it names;
  - the NetBIOS session service on port 139: RFC 1002 session request and
    positive response, then SMB.
Each step is checked in both gateways' `conn` log lines.

The ports are the protocols' own (rpcclient asks port 135 of the host it
is given; smbclient sends a session request only to port 139), so the
test runs in a network and mount namespace of its own (`unshare --net
--mount`, as root): smbd and samba-dcerpcd listen on 127.0.0.1, the
client-side gateway on 127.0.0.2 (added to that namespace's lo), and
nothing clashes with the host's ports or with other tests. Samba's system
dirs (/var/log/samba, ...) are empty tmpfs mounts there, so nothing a
Samba program writes by its compiled-in paths reaches the host. Samba's
daemons run in a temp dir with a smb.conf that puts every path there,
the throw-away SMB user is in that dir's passdb.tdb (the running user's
name: no system account is made), and each daemon runs in a session of
its own (setsid), stopped by its process group.
"""

import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

SMBD = "/usr/sbin/smbd"
DCERPCD = "/usr/libexec/samba/samba-dcerpcd"
SAMBA = "127.0.0.1"       # smbd, samba-dcerpcd, the server-side gateway
NEAR = "127.0.0.2"        # the client-side gateway
TLS_PORT = 8445
RPC_PORTS = (49152, 49153, 49154)
EXAMPLES = os.path.join(gh.SRCDIR, "etc", "examples")
MIB = 1024 * 1024
SAMBA_SYSTEM_DIRS = ("/var/log/samba", "/var/lib/samba", "/var/cache/samba",
                     "/run/samba")


def listening(ip, port):
    """A LISTEN socket on ip:port in /proc/net/tcp (this namespace's)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in
                                reversed(ip.split("."))), port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                return True
    return False


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def nb_name(name):
    """A NetBIOS name, first-level encoded (RFC 1001 14.1)."""
    raw = name.upper().ljust(15)[:15].encode() + b"\x20"
    enc = bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 15)))
    return bytes([32]) + enc + b"\0"


class Samba:
    """smbd and samba-dcerpcd in a temp dir, on 127.0.0.1 (445, 139, 135
    and RPC_PORTS), with one SMB user in a private passdb."""

    def __init__(self, tmpdir):
        self.dir = d = os.path.join(tmpdir, "samba")
        for sub in ("lock", "state", "cache", "private", "pid", "log",
                    "ncalrpc", "binddns", "share", "client"):
            os.makedirs(os.path.join(d, sub))
        for sub in ("lock", "state", "cache", "private", "pid"):
            os.makedirs(os.path.join(d, "client", sub))
        self.share = os.path.join(d, "share")
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.password = secrets.token_hex(12)
        self.conf = os.path.join(d, "smb.conf")
        with open(self.conf, "w") as f:
            f.write(self.server_conf())
        self.client_conf = os.path.join(d, "client.conf")
        with open(self.client_conf, "w") as f:
            f.write(self.paths(os.path.join(d, "client")) +
                    "  workgroup = TSGATE\n"
                    "  client min protocol = SMB2_02\n")
        self.authfile = os.path.join(d, "auth")
        with open(self.authfile, "w") as f:
            f.write("username = %s\npassword = %s\ndomain = TSGATE\n" %
                    (self.user, self.password))
        os.chmod(self.authfile, 0o600)
        r = subprocess.run(["smbpasswd", "-c", self.conf, "-s", "-a",
                            self.user],
                           input="%s\n%s\n" % (self.password, self.password),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("smbpasswd: " + r.stdout + r.stderr)
        self.procs = []
        try:
            self.procs.append(self.start("smbd", [SMBD]))
            self.procs.append(self.start("samba-dcerpcd",
                                         [DCERPCD, "--libexec-rpcds"]))
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def paths(d):
        return ("[global]\n"
                "  lock directory = %(d)s/lock\n"
                "  state directory = %(d)s/state\n"
                "  cache directory = %(d)s/cache\n"
                "  private dir = %(d)s/private\n"
                "  pid directory = %(d)s/pid\n"
                % {"d": d})

    def server_conf(self):
        d = self.dir
        return (self.paths(d) +
                "  ncalrpc dir = %(d)s/ncalrpc\n"
                "  binddns dir = %(d)s/binddns\n"
                "  log file = %(d)s/log/%%m.log\n"
                "  passdb backend = tdbsam:%(d)s/private/passdb.tdb\n"
                "  usershare path = %(d)s/state/usershares\n"
                "  netbios name = TSGATESMB\n"
                "  workgroup = TSGATE\n"
                "  server role = standalone server\n"
                "  interfaces = %(ip)s\n"
                "  bind interfaces only = yes\n"
                "  smb ports = 445 139\n"
                "  disable netbios = yes\n"
                # samba-dcerpcd as a daemon of its own (below), so that
                # ncacn_ip_tcp listens: 135 and a fixed range
                "  rpc start on demand helpers = no\n"
                "  rpc server dynamic port range = %(lo)d-%(hi)d\n"
                "  load printers = no\n"
                "  printing = bsd\n"
                "  printcap name = /dev/null\n"
                "  disable spoolss = yes\n"
                "  server min protocol = SMB2_02\n"
                "  log level = 1\n"
                "[share]\n"
                "  path = %(d)s/share\n"
                "  read only = no\n"
                "[crypt]\n"
                "  path = %(d)s/share\n"
                "  read only = no\n"
                "  server smb encrypt = required\n"
                % {"d": d, "ip": SAMBA, "lo": RPC_PORTS[0],
                   "hi": RPC_PORTS[-1]})

    def start(self, name, argv):
        log = open(os.path.join(self.dir, "log", name + ".out"), "wb")
        # a session of its own (setsid): its process group is killed to
        # stop it with its children, never the test's own group
        # -l: samba-dcerpcd hands its log dir to the rpcd_* workers it
        # starts (--log-basename); they ignore "log file" and would write
        # to /var/log/samba
        p = subprocess.Popen(argv + ["-s", self.conf, "--foreground",
                                     "--no-process-group", "--debug-stdout",
                                     "-l", os.path.join(self.dir, "log")],
                             stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT,
                             start_new_session=True)
        p.name, p.log = name, log
        return p

    def ports(self):
        return (445, 139, 135) + RPC_PORTS

    def wait_ready(self):
        def ready():
            return all(listening(SAMBA, p) for p in self.ports())

        def dead():
            return any(p.poll() is not None for p in self.procs)
        gh.wait_until(lambda: ready() or dead(), 60, 0.1)
        if not ready():
            missing = [p for p in self.ports() if not listening(SAMBA, p)]
            raise AssertionError("Samba did not start (ports %s not "
                                 "listening):\n%s" % (missing, self.logs()))

    def logs(self):
        out = []
        for name in sorted(os.listdir(os.path.join(self.dir, "log"))):
            path = os.path.join(self.dir, "log", name)
            if not os.path.isfile(path):
                continue        # smbd's cores/
            with open(path, "rb") as f:
                out.append("== %s\n%s" % (name, f.read()[-3000:].decode(
                    errors="replace")))
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break

                def group_gone():
                    p.poll()
                    try:
                        os.killpg(p.pid, 0)
                    except ProcessLookupError:
                        return True
                    return False
                if gh.wait_until(group_gone, wait, 0.05):
                    break
            p.wait(10)
            p.log.close()
        self.procs = []

    def client(self, prog, args, timeout=300):
        """Run smbclient or rpcclient with the client config and user."""
        # restore_signals=False: SIGPIPE stays ignored, as in this
        # process, so a reset connection is an error smbclient reports
        # (NT_STATUS_...) rather than a write that kills it
        return subprocess.run([prog, "-s", self.client_conf, "-A",
                               self.authfile] + args,
                              capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              restore_signals=False)


class SambaThroughTsgate(gh.GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        cls.classtmp = tempfile.mkdtemp(prefix="tsgate-samba-")
        try:
            cls.samba = Samba(cls.classtmp)
        except BaseException:
            # no tearDownClass after a failed setUpClass
            shutil.rmtree(cls.classtmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.samba.stop()
        shutil.rmtree(cls.classtmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        files = os.path.join(self.tmp, "files")
        os.mkdir(files)
        gw_key, gw_crt = self.certs.issue("gw", "/CN=gw.example.com",
                                          "DNS:gw.example.com")
        for src, dst in ((self.certs.ca, "gw-ca.crt"),
                         (self.certs.ca, "clients-ca.crt"),
                         (self.certs.alice, "app.crt"),
                         (self.certs.alice_key, "app.key"),
                         (gw_crt, "server.crt"), (gw_key, "server.key")):
            shutil.copy(src, os.path.join(files, dst))
            os.chmod(os.path.join(files, dst), 0o600)
        self.files = files + "/"

    def example(self, name, edit=None):
        """An etc/examples file as the test runs it: its /etc/tsgate/
        files made here, its addresses this namespace's, JSON logs."""
        with open(os.path.join(EXAMPLES, name)) as f:
            text = f.read()
        text = text.replace("/etc/tsgate/", self.files)
        if "client" in name:
            text = text.replace('"tcp://127.0.0.1:', '"tcp://%s:' % NEAR)
        text = text.replace("192.0.2.10:%d" % TLS_PORT,
                            "%s:%d" % (SAMBA, TLS_PORT))
        text = text.replace("[::]:%d" % TLS_PORT,
                            "%s:%d" % (SAMBA, TLS_PORT))
        if edit is not None:
            text = edit(text)
        return "log: {level: info, format: json}\n" + text

    def start_pair(self, server_edit=None):
        """The server side, then the client side of etc/examples."""
        far = self.gateway(self.example("samba-server-side.yaml",
                                        server_edit), name="far")
        near = self.gateway(self.example("samba-client-side.yaml"),
                            name="near")
        return near, far

    def lines_of(self, g, listener=None, route=None):
        return [l for l in g.conn_lines()
                if (listener is None or l.get("listener") == listener) and
                (route is None or l.get("route") == route)]

    def smbclient(self, share, commands, extra=(), port=None):
        args = ["//%s/%s" % (NEAR, share), "-c", commands] + list(extra)
        if port is not None:
            args += ["-p", str(port)]
        return self.samba.client("smbclient", args)

    def check_ok(self, r, what):
        self.assertEqual(r.returncode, 0, "%s failed:\n%s\n%s\n%s" % (
            what, r.stdout, r.stderr, self.samba.logs()))
        self.assertNotIn("NT_STATUS_", r.stdout + r.stderr, what)

    def put_get(self, share, size, extra=(), port=None):
        """Put one file of size bytes and get another; both SHA-256
        exact. Returns the smbclient result."""
        up = os.path.join(self.tmp, "up.bin")
        down_src = os.path.join(self.samba.share, self.next_name("down"))
        down = os.path.join(self.tmp, "down.bin")
        remote_up = self.next_name("up")
        random_file(up, size)
        random_file(down_src, size + 12345)
        r = self.smbclient(share, "lcd %s; put up.bin %s; get %s down.bin" % (
            self.tmp, remote_up, os.path.basename(down_src)), extra, port)
        self.check_ok(r, "smbclient put/get on //%s/%s" % (NEAR, share))
        self.assertEqual(sha256_file(os.path.join(self.samba.share,
                                                  remote_up)),
                         sha256_file(up))
        self.assertEqual(sha256_file(down), sha256_file(down_src))
        return r

    def check_conn(self, g, listener, route, at_least_in=0, at_least_out=0):
        """One `conn` line of that route, ok, carrying at least these
        many bytes each way; returns it."""
        g.wait_conn_lines(1)
        gh.wait_until(lambda: self.lines_of(g, listener, route))
        lines = self.lines_of(g, listener, route)
        self.assertTrue(lines, "no conn line for %s/%s in %s:\n%s" % (
            listener, route, g.config, g.log_bytes().decode()))
        line = lines[-1]
        self.assertEqual(line["result"], "ok", line)
        self.assertGreaterEqual(line["bytes_in"], at_least_in, line)
        self.assertGreaterEqual(line["bytes_out"], at_least_out, line)
        return line

    # --- SMB over framing: nbt -------------------------------------------

    def test_smb_tens_of_mib_both_ways_default_max_pdu(self):
        near, far = self.start_pair()
        size = 40 * MIB
        self.put_get("share", size)
        # the smbclient session went through both gateways, each way
        self.check_conn(near, "smb", "route-1", size, size)
        line = self.check_conn(far, "samba-tls", "smb", size, size)
        self.assertEqual(line["sni"], "smb.gw.example.com")
        # SMB2 moves data in PDUs of up to 8 MiB + headers: a few dozen
        # carry 80 MiB, where 64 KiB PDUs would take over a thousand
        self.assertLess(line["pdus_in"] + line["pdus_out"], 1000, line)

    def test_smaller_max_pdu_refuses_samba_pdus(self):
        """What the old default (1 MiB) did to every transfer over 1 MiB,
        and why 8 MiB is not enough either: Samba's 8 MiB reads and
        writes come with their SMB2 header."""
        for max_pdu in ("1MiB", "8MiB"):
            for way in ("put", "get"):
                with self.subTest(max_pdu=max_pdu, way=way):
                    self.reset()

                    def edit(text):
                        self.assertIn('"tcp://127.0.0.1:445"\n'
                                      '        framing: nbt\n', text)
                        return text.replace(
                            'backend: "tcp://127.0.0.1:445"\n'
                            '        framing: nbt\n',
                            'backend: "tcp://127.0.0.1:445"\n'
                            '        framing: nbt\n'
                            '        max_pdu: %s\n' % max_pdu)
                    near, far = self.start_pair(edit)
                    name = self.next_name("big")
                    path = os.path.join(self.tmp if way == "put"
                                        else self.samba.share, name)
                    random_file(path, 20 * MIB)
                    r = self.smbclient("share", "lcd %s; %s %s" % (
                        self.tmp, way, name))
                    self.assertTrue(
                        re.search(r"NT_STATUS_", r.stdout + r.stderr),
                        "%s of 20 MiB with max_pdu %s passed:\n%s%s" % (
                            way, max_pdu, r.stdout, r.stderr))
                    who = "client" if way == "put" else "backend"
                    gh.wait_until(lambda: self.lines_of(far, None, "smb"))
                    line = self.lines_of(far, None, "smb")[-1]
                    self.assertEqual(line["result"], "error", line)
                    self.assertEqual(line["reason"],
                                     "%s PDU too large" % who, line)

    def test_smb3_encryption(self):
        near, far = self.start_pair()
        size = 24 * MIB
        self.put_get("crypt", size, ["--client-protection=encrypt"])
        self.check_conn(near, "smb", "route-1", size, size)
        self.check_conn(far, "samba-tls", "smb", size, size)
        # the share refuses a client that cannot encrypt (SMB 2.1): the
        # bytes above were SMB3-encrypted end to end inside the tunnel
        r = self.smbclient("crypt", "ls", ["-m", "SMB2_10"])
        self.assertIn("NT_STATUS_ACCESS_DENIED", r.stdout + r.stderr)
        r = self.smbclient("share", "ls", ["-m", "SMB2_10"])
        self.check_ok(r, "smbclient -m SMB2_10 on //%s/share" % NEAR)

    # --- DCE/RPC ---------------------------------------------------------

    def check_rpc_output(self, r):
        self.check_ok(r, "rpcclient")
        self.assertIn("TSGATESMB", r.stdout)            # srvinfo
        self.assertIn("Samba", r.stdout)
        for share in ("share", "crypt", "IPC$"):        # netshareenumall
            self.assertIn("netname: %s" % share, r.stdout)

    def test_rpc_over_named_pipes(self):
        near, far = self.start_pair()
        r = self.samba.client("rpcclient", [
            "-c", "srvinfo; netshareenumall", "ncacn_np:%s" % NEAR])
        self.check_rpc_output(r)
        self.check_conn(near, "smb", "route-1", 1, 1)
        self.check_conn(far, "samba-tls", "smb", 1, 1)

    def test_rpc_over_ncacn_ip_tcp(self):
        near, far = self.start_pair()
        r = self.samba.client("rpcclient", [
            "-c", "srvinfo; netshareenumall", "ncacn_ip_tcp:%s" % NEAR])
        self.check_rpc_output(r)
        # first the endpoint mapper on 135, then the port it named: both
        # through both gateways, with no SMB at all
        self.check_conn(near, "epmap", "route-1", 16, 16)
        self.check_conn(far, "samba-tls", "epmap", 16, 16)
        gh.wait_until(lambda: any(
            l.get("listener", "").startswith("rpc-")
            for l in near.conn_lines()))
        rpc = [l for l in near.conn_lines()
               if l.get("listener", "").startswith("rpc-")]
        self.assertTrue(rpc, near.log_bytes().decode())
        port = rpc[0]["listener"]
        self.check_conn(near, port, "route-1", 16, 16)
        self.check_conn(far, "samba-tls", port, 16, 16)
        self.assertEqual(self.lines_of(near, "smb"), [])
        # the answers are DCE/RPC fragments, counted one PDU each
        line = self.lines_of(far, "samba-tls", port)[-1]
        self.assertGreaterEqual(line["pdus_out"], 2, line)

    def test_epmlookup_through_the_tunnel(self):
        """rpcclient's own endpoint mapper query, through 135."""
        near, far = self.start_pair()
        r = self.samba.client("rpcclient", ["-c", "epmlookup",
                                            "ncacn_ip_tcp:%s[135]" % NEAR])
        self.check_ok(r, "rpcclient epmlookup")
        ports = set(int(p) for p in re.findall(
            r"ncacn_ip_tcp:%s\[(\d+)," % re.escape(SAMBA), r.stdout))
        self.assertIn(135, ports, r.stdout)     # the mapper itself
        # srvsvc, lsarpc, winreg: every port the mapper hands out is one
        # the tunnel serves
        self.assertEqual(ports - {135}, set(RPC_PORTS), r.stdout)
        self.check_conn(near, "epmap", "route-1", 16, 16)
        self.check_conn(far, "samba-tls", "epmap", 16, 16)

    # --- NetBIOS session service on 139 ---------------------------------

    def test_netbios_session_request_on_139(self):
        near, far = self.start_pair()
        body = nb_name("TSGATESMB") + nb_name("TSGATETEST")
        s = socket.create_connection((NEAR, 139), timeout=20)
        s.sendall(bytes([0x81, 0, 0, len(body)]) + body)
        # positive session response: type 0x82, length 0
        self.assertEqual(gh.recv_exact(s, 4), b"\x82\x00\x00\x00")
        s.shutdown(socket.SHUT_WR)
        s.close()
        line = self.check_conn(near, "netbios", "route-1", 4 + len(body), 4)
        self.assertEqual(line["pdus_in"], 1, line)
        self.assertEqual(line["pdus_out"], 1, line)
        self.check_conn(far, "samba-tls", "netbios", 4 + len(body), 4)
        # smbclient on port 139 opens with the same request, then SMB2
        self.put_get("share", 3 * MIB, port=139)
        gh.wait_until(lambda: len(self.lines_of(far, None, "netbios")) >= 2)
        line = self.lines_of(far, None, "netbios")[-1]
        self.assertEqual(line["result"], "ok", line)
        self.assertGreaterEqual(line["bytes_in"], 3 * MIB, line)


def enter_namespace():
    """Run this file in a network namespace of its own (see the module
    doc); returns only inside it."""
    if os.environ.get("TSGATE_SAMBA_NETNS") == "1":
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", NEAR + "/8", "dev", "lo"]):
            subprocess.run(cmd, check=True)
        # Samba's own dirs, empty and private to this mount namespace:
        # the rpcd_* workers create their log files in /var/log/samba
        # before they read --log-basename, whatever smb.conf says
        for d in SAMBA_SYSTEM_DIRS:
            if os.path.isdir(d):
                subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755",
                                "tsgate-test", d], check=True)
        return
    if os.geteuid() != 0:
        raise SystemExit("test_samba needs root: a network namespace "
                         "(unshare --net) for ports 135, 139 and 445, "
                         "and smbd")
    env = dict(os.environ, TSGATE_SAMBA_NETNS="1")
    argv = ["unshare", "--net", "--mount", "--", sys.executable,
            os.path.abspath(__file__)] + sys.argv[1:]
    os.execvpe("unshare", argv, env)


if __name__ == "__main__":
    gh.require_binary()
    for prog in (SMBD, DCERPCD, "smbclient", "rpcclient", "smbpasswd",
                 "unshare", "ip", "openssl"):
        if shutil.which(prog) is None:
            raise SystemExit("%s is missing: scripts/deps test installs "
                             "samba, smbclient, iproute2 and openssl" % prog)
    enter_namespace()
    unittest.main(verbosity=2)
