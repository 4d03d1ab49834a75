#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Program backends (backend: "exec:/path") of the real daemon, and
credential delegation against a throw-away MIT KDC (build/tests/tt-kdc).

Covered: delegation end to end (a second tsgate in client mode with
'delegate: true' and a forwardable TGT; the program runs klist on its
KRB5CCNAME and sees alice's TGT in a 0600 file of a 0700 directory, gone
after the connection, also when the program was killed), a TGT that is
not forwardable refused with a clear reason, the environment exact (knc's
KNC_* and the TSGATE_* identity, nothing of the daemon's own), half-close
both ways, 16 MiB both ways SHA-256 exact through /bin/cat, programs that
exit early, crash or never read, a flood over max_connections, no
zombies, stale ccaches removed at start, a TLS listener's identity, and
the configuration refusals (root, relative program, exec keys elsewhere).

The daemon runs as root in CI, so every exec daemon here drops to
'nobody' (programs never run as root): the files it needs are made
reachable for that user.
"""

import hashlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

NOBODY = pwd.getpwnam("nobody")
KLIST = shutil.which("klist") or "/usr/bin/klist"
KINIT = shutil.which("kinit") or "/usr/bin/kinit"


def children_of(pid):
    """(pid, state) of every process whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append((int(d), fields[0]))
    return out


class ExecBase(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            # the same checks hold; the daemon then needs no 'user'
            self.user_line = ""
        else:
            self.user_line = "user: nobody\n"
            os.chmod(self.tmp, 0o711)
        self.port = gh.free_port()
        self.ccdir = self.private_dir("cc")
        self.outdir = self.private_dir("out")

    def private_dir(self, name):
        d = os.path.join(self.tmp, name)
        os.mkdir(d, 0o700)
        if os.geteuid() == 0:
            os.chown(d, NOBODY.pw_uid, NOBODY.pw_gid)
        return d

    def script(self, name, body):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        return path

    def exec_gateway(self, program, extra="", accept="plain", listener="",
                     env=None, args=None, top=""):
        cfg = ("log: {level: info, format: json}\n" + self.user_line + top +
               "listeners:\n"
               "  - name: in\n"
               "    listen: \"tcp://127.0.0.1:%d\"\n"
               "    accept: %s\n" % (self.port, accept) + listener +
               "    routes:\n"
               "      - name: prog\n"
               "        backend: \"exec:%s\"\n" % program +
               "        ccache_dir: \"%s\"\n" % self.ccdir)
        if args is not None:
            cfg += "        args: [%s]\n" % ", ".join(
                '"%s"' % a for a in args)
        cfg += extra
        return self.gateway(cfg, env=env)

    def address(self):
        return "tcp://127.0.0.1:%d" % self.port

    def exec_lines(self, g, event="exec_exit"):
        return [l for l in g.lines() if l.get("event") == event]

    def assert_no_children(self, g):
        self.assertTrue(gh.wait_until(lambda: children_of(g.proc.pid) == []),
                        "children left: %r" % children_of(g.proc.pid))



class ExecGateway(ExecBase):
    """plain and TLS listeners: the stream, its ends, the program's life"""

    def test_cat_large_data_both_ways_sha256(self):
        g = self.exec_gateway("/bin/cat")
        data = os.urandom(16 * 1024 * 1024)
        c = self.connect(self.address(), timeout=60)
        got = gh.exchange(c, data, timeout=120)
        c.close()
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        lines = g.wait_conn_lines(1)
        self.assertEqual(lines[0]["result"], "ok", lines[0])
        self.assertEqual(lines[0]["bytes_in"], len(data))
        self.assertEqual(lines[0]["bytes_out"], len(data))
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        self.assertEqual(self.exec_lines(g)[0]["exit"], 0)
        self.assert_no_children(g)

    def test_half_close_both_ways(self):
        # the program ends its output first, then reads until our EOF
        prog = self.script("halves.sh",
                           "printf early\nexec 1>&-\n"
                           "cat > %s/got\n" % self.outdir)
        g = self.exec_gateway(prog)
        c = self.connect(self.address())
        # its stdout closed: the client sees EOF ...
        self.assertEqual(gh.recv_all(c, timeout=10), b"early")
        # ... and can still send, until its own half-close
        c.sendall(b"after the program's EOF")
        c.shutdown(socket.SHUT_WR)
        got = os.path.join(self.outdir, "got")
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        with open(got, "rb") as f:
            self.assertEqual(f.read(), b"after the program's EOF")
        c.close()
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "ok")

    def test_program_that_exits_ends_the_connection(self):
        prog = self.script("bye.sh", "echo bye\nexit 3\n")
        g = self.exec_gateway(prog)
        c = self.connect(self.address())
        # the client sends nothing: the exit alone ends the connection,
        # after its output reached the client
        self.assertEqual(gh.recv_all(c, timeout=10), b"bye\n")
        lines = g.wait_conn_lines(1)
        self.assertEqual(len(lines), 1)
        c.close()
        ex = self.exec_lines(g)
        self.assertEqual(ex[0]["exit"], 3)
        self.assertEqual(ex[0]["level"], "warning")
        self.assertEqual(ex[0]["program"], prog)
        self.assert_no_children(g)

    def test_crash_is_logged_with_its_signal(self):
        prog = self.script("crash.sh",
                           "echo half >&2\nprintf partial\nkill -SEGV $$\n")
        g = self.exec_gateway(prog)
        c = self.connect(self.address())
        self.assertEqual(gh.recv_all(c, timeout=10), b"partial")
        c.close()
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        ex = self.exec_lines(g)[0]
        self.assertEqual(ex["signal"], 11)
        # its stderr, tagged, line by line
        err = self.exec_lines(g, "exec_stderr")
        self.assertEqual([e["line"] for e in err], ["half"])
        self.assertEqual(err[0]["route"], "prog")
        self.assert_no_children(g)

    def test_program_that_never_reads_is_ended(self):
        prog = self.script("deaf.sh", "exec sleep 60\n")
        # a backend that never reads holds the client's writes until the
        # idle timeout, as a socket backend would
        g = self.exec_gateway(prog, top="limits: {idle_timeout: 1s}\n")
        c = self.connect(self.address())
        c.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                sent += c.send(b"x" * 65536)
            except BlockingIOError:
                # backpressure: the program does not read
                break
        self.assertGreater(sent, 0)
        c.close()
        # SIGTERM 2 s after its connection ended
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        self.assertEqual(self.exec_lines(g)[0]["signal"], 15)
        self.assert_no_children(g)

    def test_stderr_is_bounded(self):
        prog = self.script("noisy.sh",
                           "head -c 3000 /dev/zero | tr '\\0' a >&2\n"
                           "echo >&2\n"
                           "i=0\nwhile [ $i -lt 300 ]; do echo line $i >&2;"
                           " i=$((i+1)); done\n")
        g = self.exec_gateway(prog)
        c = self.connect(self.address())
        self.assertEqual(gh.recv_all(c, timeout=10), b"")
        c.close()
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        err = self.exec_lines(g, "exec_stderr")
        self.assertEqual(len(err), 100)
        # a line longer than 1 KiB is cut into pieces, marked
        self.assertEqual(err[0]["line"], "a" * 1024)
        self.assertEqual(err[0]["line_cut"], "true")
        self.assertEqual(err[1]["line"], "a" * 1024)
        self.assertEqual(err[2]["line"], "a" * 952)
        self.assertNotIn("line_cut", err[2])
        self.assertEqual(err[3]["line"], "line 0")
        self.assertEqual(self.exec_lines(g)[0]["stderr_lines_dropped"],
                         200 + 3)

    def test_flood_over_max_connections(self):
        g = self.exec_gateway("/bin/cat", extra="        max_connections: 2\n")
        conns = [self.connect(self.address()) for _ in range(8)]
        # two run; the other six are refused and closed
        refused = lambda: [l for l in g.conn_lines()
                           if "max_connections" in l.get("reason", "")]
        self.assertTrue(gh.wait_until(lambda: len(refused()) == 6),
                        g.conn_lines())
        # the refusals may be logged before both programs forked
        self.assertEqual(gh.wait_for_value(
            lambda: len(children_of(g.proc.pid)), lambda n: n == 2), 2)
        live = 0
        for c in conns:
            try:
                c.sendall(b"ping")
                c.shutdown(socket.SHUT_WR)
                if gh.recv_all(c) == b"ping":
                    live += 1
            except OSError:
                pass
            c.close()
        self.assertEqual(live, 2)
        self.assert_no_children(g)
        # the slots are free again
        c = self.connect(self.address())
        self.assertEqual(gh.exchange(c, b"again"), b"again")
        c.close()

    def test_workers_reap_their_own_programs(self):
        # each worker reaps its programs; the supervisor's waitpid(-1)
        # for workers never sees them (a worker's children are not its)
        g = self.exec_gateway("/bin/cat", top="workers: 2\n")
        workers = lambda: [p for p, _ in children_of(g.proc.pid)]
        self.assertTrue(gh.wait_until(lambda: len(workers()) == 2))
        for i in range(6):
            c = self.connect(self.address())
            msg = b"worker round %d" % i
            self.assertEqual(gh.exchange(c, msg), msg)
            c.close()
        self.assertTrue(gh.wait_until(
            lambda: len(self.exec_lines(g)) == 6))
        self.assertEqual([e["exit"] for e in self.exec_lines(g)], [0] * 6)
        self.assertTrue(gh.wait_until(
            lambda: all(children_of(w) == [] for w in workers())))
        self.assertEqual(len(workers()), 2)
        self.assertNotIn(b"restarting", g.log_bytes())

    def test_reload_keeps_programs_and_their_limit(self):
        g = self.exec_gateway("/bin/cat", extra="        max_connections: 1\n")
        c = self.connect(self.address())
        c.sendall(b"before")
        self.assertEqual(gh.recv_exact(c, 6), b"before")
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(lambda: any(
            l.get("event") == "reload" for l in g.lines())))
        # the running program keeps its connection ...
        c.sendall(b"after")
        self.assertEqual(gh.recv_exact(c, 5), b"after")
        # ... and its slot: the reloaded route counts it
        d = self.connect(self.address())
        self.assertEqual(gh.recv_all(d, timeout=10), b"")
        d.close()
        self.assertTrue(gh.wait_until(lambda: any(
            "max_connections" in l.get("reason", "")
            for l in g.conn_lines())))
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(c, timeout=10), b"")
        c.close()
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(g)))
        self.assert_no_children(g)

    def test_args_and_clean_environment(self):
        prog = self.script("argv.sh", 'for a in "$@"; do echo "[$a]"; done\n'
                           "env\n")
        env = {"TSGATE_IT_SECRET": "must-not-pass", "KRB5_CONFIG":
               "/etc/krb5.conf"}
        g = self.exec_gateway(prog, env=env, args=["one", "two words", "$x"])
        c = self.connect(self.address())
        c.shutdown(socket.SHUT_WR)
        out = gh.recv_all(c, timeout=10).decode()
        local_port = c.getsockname()[1]
        c.close()
        argv, _, envtext = out.partition("[$x]\n")
        self.assertEqual(argv, "[one]\n[two words]\n")
        env = dict(l.split("=", 1) for l in envtext.splitlines()
                   if "=" in l)
        env.pop("PWD", None)  # the shell's own
        env.pop("SHLVL", None)
        env.pop("_", None)
        self.assertEqual(env.pop("KNC_REMOTE_PORT"), str(local_port))
        self.assertTrue(env.pop("KNC_VERSION").startswith("tsgate-"))
        user = NOBODY if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.maxDiff = None
        for k in ("TZ", "LANG", "LC_ALL"):
            if k in os.environ:
                self.assertEqual(env.pop(k), os.environ[k])
        self.assertEqual(env, {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "KRB5_CONFIG": "/etc/krb5.conf",
            "HOME": user.pw_dir, "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "KNC_REMOTE_IP": "127.0.0.1", "KNC_REMOTE_ADDR": "127.0.0.1",
            "TSGATE_LOCAL_IP": "127.0.0.1",
            "TSGATE_LOCAL_PORT": str(self.port),
        })

    def test_stale_ccaches_removed_at_start(self):
        stale = os.path.join(self.ccdir, "krb5cc_tsgate_4194304_7")
        live = os.path.join(self.ccdir, "krb5cc_tsgate_%d_7" % os.getpid())
        other = os.path.join(self.ccdir, "keep-me")
        for p in (stale, live, other):
            with open(p, "w") as f:
                f.write("x")
        g = self.exec_gateway("/bin/cat")
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(live))
        self.assertTrue(os.path.exists(other))
        self.assertIn(b"removed 1 stale exec ccache", g.log_bytes())

    def test_tls_listener_identity_in_environment(self):
        certs = gh.Certs(self.tmp)
        key, crt = certs.issue("server", "/CN=localhost", "DNS:localhost")
        ckey, ccrt = certs.issue("client", "/CN=carol/O=Test",
                                 "DNS:carol.test")
        for p in (key, crt, certs.ca):
            if os.geteuid() == 0:
                os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
        prog = self.script("tlsenv.sh", "env | grep ^TSGATE_ | sort\n")
        listener = ("    tls:\n"
                    "      cert: \"%s\"\n"
                    "      key: \"%s\"\n"
                    "      client_ca: \"%s\"\n"
                    "      min_version: \"1.3\"\n" % (crt, key, certs.ca))
        self.exec_gateway(prog, accept="tls", listener=listener)
        ctx = certs.client_context(ccrt, ckey)
        raw = self.connect(self.address())
        c = ctx.wrap_socket(raw, server_hostname="localhost")
        out = b""
        while True:
            try:
                chunk = c.recv(65536)
            except ssl.SSLError:
                break
            if not chunk:
                break
            out += chunk
        c.close()
        env = dict(l.split("=", 1) for l in out.decode().splitlines())
        self.assertEqual(env["TSGATE_TLS_VERSION"], "TLS1.3")
        self.assertEqual(env["TSGATE_CLIENT_CERT_VERIFIED"], "1")
        self.assertEqual(env["TSGATE_CLIENT_SUBJECT"], "O=Test,CN=carol")
        self.assertEqual(env["TSGATE_CLIENT_CN"], "carol")
        self.assertEqual(env["TSGATE_SNI"], "localhost")
        self.assertIn("TSGATE_TLS_CIPHER", env)
        self.assertNotIn("TSGATE_PRINCIPAL", env)


class ExecConfig(gh.GatewayTestCase):

    def check(self, text):
        path = os.path.join(self.tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([gh.TSGATE, "--check-config", "--config", path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def config(self, route, top=""):
        return (top + "listeners:\n"
                "  - name: in\n"
                "    listen: \"tcp://127.0.0.1:1\"\n"
                "    accept: plain\n"
                "    routes:\n" + route)

    def test_refusals(self):
        cases = [
            ("      - backend: \"exec:/bin/cat\"\n", "user: root\n",
             "7:18: route 'route-1': backend 'exec:/bin/cat' would run as "
             "root: set 'user' to a user that is not root"),
            ("      - backend: \"exec:bin/cat\"\n", "user: nobody\n",
             "the program must be an absolute path"),
            ("      - backend: \"exec:/nonexistent/prog\"\n",
             "user: nobody\n", "cannot execute '/nonexistent/prog'"),
            ("      - backend: \"tcp://127.0.0.1:2\"\n"
             "        args: [x]\n", "",
             "'args' is only used with 'backend: exec:...'"),
            ("      - backend: \"exec:/bin/cat\"\n"
             "        identity: knc\n", "user: nobody\n",
             "gets the identity in its environment"),
            ("      - backend: \"exec:/bin/cat\"\n"
             "        health_check: {interval: 5s}\n", "user: nobody\n",
             "'health_check' is not used with an exec backend"),
            ("      - backend: [\"exec:/bin/cat\"]\n", "user: nobody\n",
             "'backend'"),
        ]
        if os.geteuid() == 0:
            cases.append(("      - backend: \"exec:/bin/cat\"\n", "",
                          "would run as root"))
        for route, top, want in cases:
            with self.subTest(route=route):
                code, out = self.check(self.config(route, top))
                self.assertNotEqual(code, 0, out)
                self.assertIn(want, out)
        code, out = self.check(self.config(
            "      - backend: \"exec:/bin/cat\"\n"
            "        args: [\"-u\"]\n        max_connections: 5\n",
            "user: nobody\n"))
        self.assertEqual(code, 0, out)


class Delegation(ExecBase):
    """gssapi listener, exec backend; a second tsgate in client mode."""

    def setUp(self):
        super().setUp()
        self.kdc = gh.Kdc(self.tmp)
        self.addCleanup(self.kdc.stop)
        if not self.kdc.available():
            self.fail("no KDC: krb5-kdc is missing (scripts/deps test)")
        self.env = dict(self.kdc.env)
        kdir = self.env["TT_KDC_DIR"]
        if os.geteuid() == 0:
            # what the daemon reads after dropping to nobody
            os.chmod(kdir, 0o711)
            os.chmod(self.env["KRB5_CONFIG"], 0o644)
            os.chown(self.env["TT_KDC_SERVICE_KEYTAB"], NOBODY.pw_uid,
                     NOBODY.pw_gid)
            os.chown(self.env["KRB5RCACHEDIR"], NOBODY.pw_uid,
                     NOBODY.pw_gid)
        self.fwd = "FILE:" + os.path.join(self.tmp, "alice-fwd.ccache")
        subprocess.run([KINIT, "-f", "-k", "-t",
                        self.env["TT_KDC_ALICE_KEYTAB"], "-c", self.fwd,
                        "alice"], env=dict(os.environ, **self.env),
                       check=True, timeout=30)
        self.near_port = gh.free_port()

    def far(self, program):
        listener = ("    gssapi: {keytab: %s, principal: \"host/localhost\"}\n"
                    % self.env["TT_KDC_SERVICE_KEYTAB"])
        return self.exec_gateway(program, accept="gssapi", listener=listener,
                                 env=self.env)

    def near(self, ccache, delegate=True):
        return self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: to-far\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: gssapi\n"
            "        gssapi: {target: \"host@localhost\", ccache: \"%s\","
            " delegate: %s}\n"
            % (self.near_port, self.port, ccache,
               "true" if delegate else "false"), env=self.env)

    def run_client(self, send=b""):
        c = self.connect("tcp://127.0.0.1:%d" % self.near_port, timeout=30)
        if send:
            c.sendall(send)
        c.shutdown(socket.SHUT_WR)
        out = gh.recv_all(c, timeout=30)
        c.close()
        return out.decode(errors="replace")

    def test_delegated_tgt_reaches_the_program(self):
        prog = self.script("klist.sh",
                           "f=${KRB5CCNAME#FILE:}\n"
                           "echo \"cc=$KRB5CCNAME\"\n"
                           "stat -c 'file %%a %%U' \"$f\"\n"
                           "stat -c 'dir %%a %%U' \"$(dirname \"$f\")\"\n"
                           "%s -c \"$KRB5CCNAME\"\n"
                           "env | grep -E '^(KNC|TSGATE)_' | sort\n"
                           "cat\n" % KLIST)
        far = self.far(prog)
        self.near(self.fwd)
        out = self.run_client(b"payload")
        lines = out.splitlines()
        cc = lines[0][len("cc=FILE:"):]
        self.assertEqual(os.path.dirname(cc), self.ccdir)
        owner = NOBODY.pw_name if os.geteuid() == 0 else \
            pwd.getpwuid(os.geteuid()).pw_name
        self.assertEqual(lines[1], "file 600 %s" % owner)
        self.assertEqual(lines[2], "dir 700 %s" % owner)
        self.assertIn("Default principal: alice@TSGATE.TEST", out)
        self.assertIn("krbtgt/TSGATE.TEST@TSGATE.TEST", out)
        env = dict(l.split("=", 1) for l in lines if "=" in l and
                   l.startswith(("KNC_", "TSGATE_")))
        # exactly knc's variables (an IPv4 client) and tsgate's
        self.assertEqual(sorted(env), [
            "KNC_CREDS", "KNC_EXPORT_NAME", "KNC_MECH", "KNC_REMOTE_ADDR",
            "KNC_REMOTE_IP", "KNC_REMOTE_PORT", "KNC_VERSION",
            "TSGATE_LOCAL_IP", "TSGATE_LOCAL_NAME", "TSGATE_LOCAL_PORT",
            "TSGATE_MECH", "TSGATE_PRINCIPAL"])
        # the default realm's auth_to_local: the first component
        self.assertEqual(env["TSGATE_LOCAL_NAME"], "alice")
        self.assertEqual(env["KNC_REMOTE_ADDR"], "127.0.0.1")
        self.assertEqual(env["KNC_CREDS"], "alice@TSGATE.TEST")
        self.assertEqual(env["KNC_MECH"], "krb5")
        self.assertEqual(env["TSGATE_PRINCIPAL"], "alice@TSGATE.TEST")
        self.assertEqual(env["TSGATE_MECH"], "krb5")
        self.assertTrue(env["KNC_EXPORT_NAME"].startswith(
            "0401000B06092A864886F712010202"))
        self.assertEqual(env["KNC_REMOTE_IP"], "127.0.0.1")
        self.assertEqual(env["TSGATE_LOCAL_PORT"], str(self.port))
        self.assertTrue(out.endswith("payload"))
        # the ccache is gone with the connection
        far.wait_conn_lines(1)
        self.assertTrue(gh.wait_until(lambda: not os.path.exists(cc)))
        self.assertEqual(os.listdir(self.ccdir), [])

    def test_ccache_removed_after_a_killed_program(self):
        prog = self.script("killed.sh",
                           "echo \"$$ ${KRB5CCNAME#FILE:}\"\nexec sleep 60\n")
        far = self.far(prog)
        self.near(self.fwd)
        c = self.connect("tcp://127.0.0.1:%d" % self.near_port, timeout=30)
        line = b""
        while not line.endswith(b"\n"):
            chunk = c.recv(100)
            self.assertTrue(chunk)
            line += chunk
        pid, cc = line.decode().split()
        self.assertTrue(os.path.exists(cc))
        os.kill(int(pid), 9)
        self.assertTrue(gh.wait_until(lambda: self.exec_lines(far)))
        self.assertEqual(self.exec_lines(far)[0]["signal"], 9)
        self.assertEqual(gh.recv_all(c, timeout=10), b"")
        c.close()
        self.assertTrue(gh.wait_until(lambda: not os.path.exists(cc)))
        self.assert_no_children(far)

    def test_no_delegation_no_ccache(self):
        prog = self.script("nocc.sh", "echo \"cc=${KRB5CCNAME-none}\"\n")
        self.far(prog)
        self.near(self.fwd, delegate=False)
        self.assertEqual(self.run_client(), "cc=none\n")

    def test_tgt_not_forwardable_is_a_clear_error(self):
        prog = self.script("never.sh", "echo ran\n")
        far = self.far(prog)
        near = self.near(self.env["TT_KDC_ALICE_CCACHE"])
        self.assertEqual(self.run_client(), "")
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error")
        self.assertIn("delegation requested but not done: the client's "
                      "TGT is not forwardable", line["reason"])
        # refused before the first token went: the far side saw a
        # connection end without one and started no program
        fline = far.wait_conn_lines(1)[0]
        self.assertEqual(fline["result"], "error", fline)
        self.assertEqual(self.exec_lines(far), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
