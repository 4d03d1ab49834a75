#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tsgate against third-party peers, run as unprivileged configs in a temp
dir on free loopback ports (issue 13, "real consumers and peers").

PROXY v2 consumers (tsgate `identity: proxy-v2` in front of them), for
TCP4, TCP6, dual-stack and unix clients of tsgate, plain and TLS, reached
over TCP and over unix sockets:
  - HAProxy (`bind ... accept-proxy`, `http-request return` of %ci/%cp/
    %fi/%fp and fc_pp_authority);
  - nginx (`listen ... proxy_protocol`, `return` of $proxy_protocol_addr,
    $proxy_protocol_port, $proxy_protocol_server_*, and
    $proxy_protocol_tlv_* when this nginx has them, 1.23.2 on).
TLS peers, bytes checked end to end (SHA-256 of MiBs both ways, half-close,
the server side closing first or half-closing first), TLS 1.3 and 1.2:
  - stunnel (client mode) and HAProxy (`server ... ssl verify required`,
    with and without a client certificate) as TLS clients of a tsgate TLS
    listener;
  - stunnel (server mode) and HAProxy (`bind ... ssl crt`, `verify
    required` for mTLS) as TLS servers behind a tsgate `connect: tls`
    route;
  - HAProxy writing 100-byte records, with ALPN.

The peers are Debian's haproxy, nginx-light and stunnel4 (scripts/deps
test installs them); a missing one fails the test rather than skipping.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

HTTP_GET = b"GET / HTTP/1.0\r\nHost: peer.test\r\n\r\n"


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def port_listening(port, pid):
    """Process pid listens on this TCP port: a LISTEN socket of the port
    in /proc/net/tcp* whose inode is one of the process's fds. Checked
    without connecting (a connection to a proxying peer would reach
    tsgate behind it and count there), and only the peer's own socket
    counts (after a port clash another program listens there)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1],
                                        16) == port:
                inodes.add("socket:[%s]" % cols[9])
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                return True
        except OSError:
            pass
    return False


def find(*names):
    """The first of these programs on PATH (or in /usr/sbin, not on a
    user's PATH), else fail: CI installs them (scripts/deps test)."""
    for n in names:
        for p in (shutil.which(n), "/usr/sbin/" + n, "/usr/bin/" + n):
            if p and os.access(p, os.X_OK):
                return p
    raise AssertionError("%s not installed (scripts/deps test installs it)"
                         % " or ".join(names))


class Peer:
    """A third-party program in the foreground, stopped by pid; ready when
    it listens on every TCP port it should."""

    def __init__(self, tmpdir, name, argv, ports, env=None):
        self.name = name
        self.logpath = os.path.join(tmpdir, name + ".log")
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=env)
        ok = gh.wait_until(
            lambda: self.proc.poll() is not None or
            all(port_listening(p, self.proc.pid) for p in ports))
        if not ok or self.proc.poll() is not None:
            text = self.text()
            self.stop()
            raise AssertionError("%s did not start:\n%s" % (name, text))

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class DataServer:
    """A TCP backend on 127.0.0.1 for the byte checks. mode "echo": echo
    everything, half-close at end of stream; "source": send `data` at once
    and close without reading (the server side ends first); "half": send
    `data`, half-close, then read to the end (kept in `received`);
    "digest": send `data` while reading, and after the client's end of
    stream answer the SHA-256 of what came (32 bytes), then close."""

    def __init__(self, mode="echo", data=b""):
        self.mode, self.data = mode, data
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.done = []
        self.received = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.settimeout(60)
        n = 0
        got = []
        try:
            if self.mode == "source":
                c.sendall(self.data)
            elif self.mode == "digest":
                h = hashlib.sha256()
                t = threading.Thread(target=c.sendall, args=(self.data,),
                                     daemon=True)
                t.start()
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    h.update(d)
                t.join(60)
                c.sendall(h.digest())
            elif self.mode == "half":
                c.sendall(self.data)
                c.shutdown(socket.SHUT_WR)
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got.append(d)
                self.received.append(b"".join(got))
            else:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    n += len(d)
                    c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            self.done.append(n)
            c.close()

    def close(self):
        self.sock.close()


def retry_on_port_clash(fn):
    """Run a helper that picks free ports and starts something on them
    again (up to 5 times) when a port was taken between gh.free_port()
    and the bind: other tests run at the same time on this machine."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        for attempt in range(5):
            try:
                return fn(*args, **kw)
            except AssertionError as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
    return wrapper


def sha(b):
    return hashlib.sha256(b).hexdigest()


def http_body(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        raise AssertionError("not an HTTP response: %r" % raw[:200])
    status = int(head.split()[1])
    return status, body.decode(errors="replace")


def fields(body):
    """'a=1 b= c=x' -> {'a': '1', 'b': '', 'c': 'x'}"""
    return dict(kv.split("=", 1) for kv in body.split())


class PeersTestCase(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.peers = []
        self.servers = []
        self.certs = gh.Certs(self.tmp)
        c = self.certs
        # PEM bundles for HAProxy's crt (cert then key)
        self.server_pem = self._bundle("server.pem", c.server, c.server_key)
        self.alice_pem = self._bundle("alice.pem", c.alice, c.alice_key)

    def tearDown(self):
        for p in self.peers:
            p.stop()
        for s in self.servers:
            s.close()
        super().tearDown()

    def _bundle(self, name, crt, key):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as out:
            for f in (crt, key):
                with open(f, "rb") as src:
                    out.write(src.read())
        os.chmod(path, 0o600)
        return path

    def peer(self, name, argv, ports):
        p = Peer(self.tmp, self.next_name(name), argv, ports)
        self.peers.append(p)
        return p

    def data_server(self, **kw):
        s = DataServer(**kw)
        self.servers.append(s)
        return s

    # ---- the peers ----

    def haproxy(self, body, ports):
        cfg = os.path.join(self.tmp, self.next_name("haproxy") + ".cfg")
        with open(cfg, "w") as f:
            f.write("global\n"
                    "    maxconn 100\n"
                    "defaults\n"
                    "    timeout connect 5s\n"
                    "    timeout client 30s\n"
                    "    timeout server 30s\n"
                    "    timeout client-fin 30s\n"
                    "    timeout server-fin 30s\n" + body)
        return self.peer("haproxy", [find("haproxy"), "-f", cfg, "-db"],
                         ports)

    def nginx(self, server_block, ports):
        prefix = os.path.join(self.tmp, self.next_name("nginx"))
        os.mkdir(prefix)
        conf = os.path.join(prefix, "nginx.conf")
        temp = ["%s_temp_path %s/%s;" % (t, prefix, t)
                for t in ("client_body", "proxy", "fastcgi", "uwsgi",
                          "scgi")]
        with open(conf, "w") as f:
            f.write("events { worker_connections 64; }\n"
                    "http {\n    access_log off;\n    " +
                    "\n    ".join(temp) + "\n" + server_block + "\n}\n")
        return self.peer("nginx", [
            find("nginx"), "-p", prefix, "-c", conf,
            "-e", os.path.join(prefix, "error.log"),
            "-g", "daemon off; master_process off; pid %s/nginx.pid; "
                  "error_log %s/error.log info;" % (prefix, prefix)],
            ports)

    def stunnel(self, service):
        conf = os.path.join(self.tmp, self.next_name("stunnel") + ".conf")
        ports = [int(m) for m in
                 re.findall(r"accept = 127\.0\.0\.1:(\d+)", service)]
        with open(conf, "w") as f:
            # TSGATE_STUNNEL_DEBUG=7 logs each step of stunnel's
            # transfer loop (how its tail-loss defect was found)
            debug = os.environ.get("TSGATE_STUNNEL_DEBUG", "5")
            f.write("foreground = yes\n"
                    "pid =\n"
                    "debug = " + debug + "\n"
                    "[svc]\n" + service)
        return self.peer("stunnel", [find("stunnel4", "stunnel"), conf],
                         ports)


class ProxyV2Consumers(PeersTestCase):
    """HAProxy and nginx read the PROXY v2 header tsgate writes."""

    @retry_on_port_clash
    def start_consumers(self):
        """An HAProxy and an nginx, each answering one HTTP request with
        what it learnt from the PROXY v2 header; returns their ports."""
        hp, np_ = gh.free_port(), gh.free_port()
        self.haproxy(
            "frontend pp\n"
            "    mode http\n"
            "    bind 127.0.0.1:%d accept-proxy\n"
            "    http-request return status 200 content-type text/plain "
            "lf-string \"ci=%%ci cp=%%cp fi=%%fi fp=%%fp "
            "auth=%%[fc_pp_authority]\\n\"\n" % hp, [hp])
        tlv = ""
        if self.nginx_has_tlv_vars():
            tlv = (" auth=$proxy_protocol_tlv_authority"
                   " ssl=$proxy_protocol_tlv_ssl_version")
        self.nginx(
            "server {\n"
            "    listen 127.0.0.1:%d proxy_protocol;\n"
            "    location / {\n"
            "        default_type text/plain;\n"
            "        return 200 \"addr=$proxy_protocol_addr "
            "port=$proxy_protocol_port saddr=$proxy_protocol_server_addr "
            "sport=$proxy_protocol_server_port remote=$remote_addr%s\\n\";\n"
            "    }\n"
            "}" % (np_, tlv), [np_])
        return {"haproxy": hp, "nginx": np_}

    @staticmethod
    def nginx_has_tlv_vars():
        """$proxy_protocol_tlv_* came with nginx 1.23.2."""
        p = subprocess.run([find("nginx"), "-v"], capture_output=True,
                           timeout=10)
        m = re.search(rb"nginx/(\d+)\.(\d+)\.(\d+)", p.stderr)
        return m is not None and tuple(map(int, m.groups())) >= (1, 23, 2)

    @retry_on_port_clash
    def gateway_for(self, family, backend_port, tls=False):
        """tsgate with one listener of this client family, identity
        proxy-v2 to 127.0.0.1:backend_port; returns (gateway, listen)."""
        if family == "tcp4":
            listen = "tcp://127.0.0.1:%d" % gh.free_port()
        elif family == "tcp6":
            listen = "tcp://[::1]:%d" % gh.free_port()
        elif family.startswith("dual"):
            # a dual-stack listener: IPv4 clients appear as ::ffff:a.b.c.d
            listen = "tcp://[::]:%d" % gh.free_port()
        else:
            listen = "unix:" + os.path.join(self.tmp,
                                            self.next_name("in") + ".sock")
        lines = ["log: {level: info, format: json}",
                 "listeners:",
                 "  - name: in",
                 "    listen: \"%s\"" % listen]
        if tls:
            lines += ["    accept: tls",
                      "    tls: {cert: %s, key: %s}" % (self.certs.server,
                                                        self.certs.server_key)]
        else:
            lines.append("    accept: plain")
            if family.startswith("dual"):
                # [::] is a public address: plain needs the opt-in
                lines.append("    allow_plain_public: true")
        lines += ["    routes:",
                  "      - name: pp",
                  "        backend: \"tcp://127.0.0.1:%d\"" % backend_port,
                  "        identity: proxy-v2"]
        return self.gateway("\n".join(lines) + "\n"), listen

    def ask(self, listen, tls=False, host=None):
        """One HTTP request through tsgate (to host instead of the
        listener's address if given); returns (status, body, the client's
        own port or None)."""
        if host:
            c = socket.create_connection(
                (host, int(listen.rsplit(":", 1)[1])), timeout=10)
        else:
            c = self.connect(listen)
        cport = None
        if c.family in (socket.AF_INET, socket.AF_INET6):
            cport = c.getsockname()[1]
        try:
            if tls:
                ctx = self.certs.client_context()
                c = ctx.wrap_socket(c, server_hostname="localhost")
                c.sendall(HTTP_GET)
                raw = gh.recv_all(c, 15)
            else:
                raw = gh.exchange(c, HTTP_GET, 15)
        finally:
            c.close()
        status, body = http_body(raw)
        return status, body, cport

    def test_client_families(self):
        """TCP4, TCP6 and unix clients, plain: what each consumer sees.
        dual4/dual6: IPv4 and IPv6 clients of a [::] listener (the IPv4
        one must arrive as TCP4 127.0.0.1, not ::ffff:127.0.0.1)."""
        ports = self.start_consumers()
        families = ["tcp4", "unix"]
        if have_ipv6():
            families += ["tcp6", "dual4", "dual6"]
        for family in families:
            for consumer in ("haproxy", "nginx"):
                with self.subTest(family=family, consumer=consumer):
                    g, listen = self.gateway_for(family, ports[consumer])
                    client = {"tcp4": "127.0.0.1", "dual4": "127.0.0.1",
                              "tcp6": "::1", "dual6": "::1"}.get(family)
                    status, body, cport = self.ask(
                        listen, host=client if "dual" in family else None)
                    self.assertEqual(status, 200, body)
                    f = fields(body)
                    lport = listen.rsplit(":", 1)[1]
                    if consumer == "haproxy":
                        if client:
                            self.assertEqual(f["ci"], client, body)
                            self.assertEqual(f["cp"], str(cport), body)
                            self.assertEqual(f["fi"], client, body)
                            self.assertEqual(f["fp"], lport, body)
                        else:
                            # LOCAL: HAProxy keeps the connection's own
                            # addresses (tsgate's socket to it)
                            self.assertEqual(f["ci"], "127.0.0.1", body)
                            self.assertEqual(f["fp"],
                                             str(ports["haproxy"]), body)
                    else:
                        self.assertEqual(f["remote"], "127.0.0.1", body)
                        if client:
                            self.assertEqual(f["addr"], client, body)
                            self.assertEqual(f["port"], str(cport), body)
                            self.assertEqual(f["saddr"], client, body)
                            self.assertEqual(f["sport"], lport, body)
                        else:
                            # nginx skips a LOCAL header: no address
                            self.assertEqual(f["addr"], "", body)
                            self.assertEqual(f["port"], "", body)
                    line = g.wait_conn_lines(1)[0]
                    self.assertEqual(line["result"], "ok", line)
                    self.reset_gateways()

    def test_tls_clients(self):
        """TLS clients of tsgate: the SNI reaches HAProxy as the
        AUTHORITY TLV (fc_pp_authority) for TCP clients; for a unix
        client the LOCAL header is accepted by both consumers."""
        ports = self.start_consumers()
        tlv_vars = self.nginx_has_tlv_vars()
        for family in ("tcp4", "unix"):
            for consumer in ("haproxy", "nginx"):
                with self.subTest(family=family, consumer=consumer):
                    g, listen = self.gateway_for(family, ports[consumer],
                                                 tls=True)
                    status, body, cport = self.ask(listen, tls=True)
                    self.assertEqual(status, 200, body)
                    f = fields(body)
                    if consumer == "haproxy" and family == "tcp4":
                        self.assertEqual(f["ci"], "127.0.0.1", body)
                        self.assertEqual(f["cp"], str(cport), body)
                        self.assertEqual(f["auth"], "localhost", body)
                    elif consumer == "haproxy":
                        # HAProxy reads the TLVs of a LOCAL header from
                        # 3.0 on; 2.6 skips them
                        self.assertIn(f["auth"], ("", "-", "localhost"),
                                      body)
                    elif family == "tcp4":
                        self.assertEqual(f["addr"], "127.0.0.1", body)
                        self.assertEqual(f["port"], str(cport), body)
                        if tlv_vars:
                            self.assertEqual(f["auth"], "localhost", body)
                            self.assertEqual(f["ssl"], "TLSv1.3", body)
                    else:
                        self.assertEqual(f["addr"], "", body)
                    line = g.wait_conn_lines(1)[0]
                    self.assertEqual(line["result"], "ok", line)
                    self.reset_gateways()

    @retry_on_port_clash
    def plain_gateway_to(self, family, path):
        """tsgate, listening for this client family, identity proxy-v2 to
        a unix socket path; returns the listen address."""
        if family == "tcp4":
            listen = "tcp://127.0.0.1:%d" % gh.free_port()
        else:
            listen = "unix:" + os.path.join(
                self.tmp, self.next_name("in") + ".sock")
        self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: in\n"
            "    listen: \"%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: pp\n"
            "        backend: \"unix:%s\"\n"
            "        identity: proxy-v2\n" % (listen, path))
        return listen

    def test_unix_backends(self):
        """tsgate reaching HAProxy (`bind unix@… accept-proxy`) and nginx
        (`listen unix:… proxy_protocol`) over unix sockets: the header
        still carries the client's TCP address, and a unix client's LOCAL
        header is accepted there too."""
        hsock = os.path.join(self.tmp, "haproxy-pp.sock")
        nsock = os.path.join(self.tmp, "nginx-pp.sock")

        @retry_on_port_clash
        def start_consumers():
            # a retry after a port clash must find the paths free
            for path in (hsock, nsock):
                if os.path.exists(path):
                    os.unlink(path)
            # a TCP port each, only so that readiness can be seen
            hp, np_ = gh.free_port(), gh.free_port()
            self.haproxy(
                "frontend pp\n"
                "    mode http\n"
                "    bind unix@%s accept-proxy\n"
                "    bind 127.0.0.1:%d\n"
                "    http-request return status 200 content-type text/plain "
                "lf-string \"ci=%%ci cp=%%cp\\n\"\n" % (hsock, hp), [hp])
            self.nginx(
                "server {\n"
                "    listen unix:%s proxy_protocol;\n"
                "    listen 127.0.0.1:%d;\n"
                "    location / {\n"
                "        default_type text/plain;\n"
                "        return 200 \"addr=$proxy_protocol_addr "
                "port=$proxy_protocol_port remote=$remote_addr\\n\";\n"
                "    }\n"
                "}" % (nsock, np_), [np_])

        start_consumers()
        for family in ("tcp4", "unix"):
            for consumer, path in (("haproxy", hsock), ("nginx", nsock)):
                with self.subTest(family=family, consumer=consumer):
                    listen = self.plain_gateway_to(family, path)
                    status, body, cport = self.ask(listen)
                    self.assertEqual(status, 200, body)
                    f = fields(body)
                    if consumer == "haproxy" and family == "tcp4":
                        self.assertEqual(f["ci"], "127.0.0.1", body)
                        self.assertEqual(f["cp"], str(cport), body)
                    elif consumer == "haproxy":
                        # LOCAL: HAProxy's own view, a unix socket
                        self.assertEqual(f["ci"], "unix", body)
                    elif family == "tcp4":
                        self.assertEqual(f["addr"], "127.0.0.1", body)
                        self.assertEqual(f["port"], str(cport), body)
                    else:
                        self.assertEqual(f["addr"], "", body)
                        self.assertEqual(f["remote"], "unix:", body)
                    self.reset_gateways()

    def reset_gateways(self):
        """Stop the gateways of one sub-test (each must exit 0)."""
        gws, self.gateways = self.gateways, []
        bad = []
        for g in gws:
            code = g.stop()
            if code != 0:
                bad.append("%s exited %s" % (g.config, code))
        if bad:
            raise AssertionError("\n".join(bad))


MIB = 1024 * 1024


class TlsPeers(PeersTestCase):
    """stunnel and HAProxy as TLS clients and servers of tsgate."""

    def check_echo(self, port, size=4 * MIB):
        """size random bytes both ways through 127.0.0.1:port: the client
        sends everything, half-closes, and must read the same bytes back
        and then end of stream."""
        data = os.urandom(size)
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            got = gh.exchange(c, data, timeout=60)
        finally:
            c.close()
        self.assertEqual(len(got), len(data))
        self.assertEqual(sha(got), sha(data))

    def check_digest(self, port, server, size=4 * MIB):
        """size random bytes up while server.data comes down at the same
        time; the client half-closes once both are done, and the server
        answers with the SHA-256 of what it got, then closes.

        For stunnel in server mode, in place of check_echo: stunnel 5.68
        (and 5.75) drops the tail of a reply when its backend closes
        after stunnel half-closed it while stunnel's buffer toward TLS is
        full (it takes the POLLHUP as end of stream without reading what
        is still queued). A slow TLS reader (tsgate under ASan, or
        gnutls-cli alone) meets it; here the backend's last bytes before
        its close are only the 32-byte digest."""
        data = os.urandom(size)
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            t = threading.Thread(target=c.sendall, args=(data,),
                                 daemon=True)
            t.start()
            down = gh.recv_exact(c, len(server.data), 60)
            t.join(60)
            self.assertFalse(t.is_alive())
            c.shutdown(socket.SHUT_WR)
            answer = gh.recv_all(c, 60)
        finally:
            c.close()
        self.assertEqual(sha(down), sha(server.data))
        self.assertEqual(answer, hashlib.sha256(data).digest())

    def check_server_first(self, port, source):
        """The server side sends its bytes and closes first; the client
        (which sends nothing) gets all of them, then end of stream."""
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            got = gh.recv_all(c, 60)
        finally:
            c.close()
        self.assertEqual(len(got), len(source.data))
        self.assertEqual(sha(got), sha(source.data))

    def check_server_half_first(self, port, half):
        """The server side sends its bytes and half-closes first; the
        client reads them to end of stream, and only then sends its own,
        which must all reach the server (the direction stays open)."""
        data = os.urandom(2 * MIB)
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            got = gh.recv_all(c, 60)
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            self.assertTrue(gh.wait_until(lambda: half.received, 60))
        finally:
            c.close()
        self.assertEqual(sha(got), sha(half.data))
        self.assertEqual(len(half.received[0]), len(data))
        self.assertEqual(sha(half.received[0]), sha(data))

    def check_refused(self, port):
        """The TLS handshake fails: the client's bytes go nowhere and it
        sees its connection end without a byte."""
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            got = gh.exchange(c, b"must not arrive", timeout=20)
        finally:
            c.close()
        self.assertEqual(got, b"")

    # ---- tsgate terminates TLS, the peer is the client ----

    @retry_on_port_clash
    def tls_gateway(self, backend_port, mtls=False):
        c = self.certs
        port = gh.free_port()
        lines = ["log: {level: info, format: json}",
                 "listeners:",
                 "  - name: tls-in",
                 "    listen: \"tcp://127.0.0.1:%d\"" % port,
                 "    accept: tls",
                 "    tls:",
                 "      cert: %s" % c.server,
                 "      key: %s" % c.server_key]
        if mtls:
            lines += ["      client_ca: %s" % c.ca,
                      "      verify_client: require"]
        lines += ["    routes:",
                  "      - name: r",
                  "        backend: \"tcp://127.0.0.1:%d\"" % backend_port]
        if mtls:
            lines.append(
                "        match: {client_san: \"DNS:alice.corp.test\"}")
        return self.gateway("\n".join(lines) + "\n"), port

    @retry_on_port_clash
    def stunnel_client(self, tsgate_port, cert=False, tls12=False):
        c = self.certs
        port = gh.free_port()
        service = ("client = yes\n"
                   "accept = 127.0.0.1:%d\n"
                   "connect = 127.0.0.1:%d\n"
                   "CAfile = %s\n"
                   "verifyChain = yes\n"
                   "checkHost = localhost\n"
                   "sni = localhost\n" % (port, tsgate_port, c.ca))
        if cert:
            service += "cert = %s\nkey = %s\n" % (c.alice, c.alice_key)
        if tls12:
            service += "sslVersionMax = TLSv1.2\n"
        self.stunnel(service)
        return port

    @retry_on_port_clash
    def haproxy_client(self, tsgate_port, cert=False, tls12=False):
        port = gh.free_port()
        self.haproxy(
            "frontend f\n"
            "    mode tcp\n"
            "    bind 127.0.0.1:%d\n"
            "    default_backend b\n"
            "backend b\n"
            "    mode tcp\n"
            "    server tsgate 127.0.0.1:%d ssl verify required ca-file %s "
            "sni str(localhost) verifyhost localhost%s%s\n"
            % (port, tsgate_port, self.certs.ca,
               " crt %s" % self.alice_pem if cert else "",
               " ssl-max-ver TLSv1.2" if tls12 else ""), [port])
        return port

    def test_tls_clients_of_tsgate(self):
        for client, mtls, tls12 in [(c, m, v) for c in ("stunnel", "haproxy")
                                    for m in (False, True)
                                    for v in (False, True)]:
            with self.subTest(client=client, mtls=mtls, tls12=tls12):
                try:
                    self.one_tls_client(client, mtls, tls12)
                finally:
                    self.reset_peers()

    def one_tls_client(self, client, mtls, tls12):
        echo = self.data_server()
        g, tport = self.tls_gateway(echo.port, mtls=mtls)
        make = (self.stunnel_client if client == "stunnel"
                else self.haproxy_client)
        port = make(tport, cert=mtls, tls12=tls12)
        self.check_echo(port)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["sni"], "localhost", line)
        self.assertEqual(line["tls_version"],
                         "TLS1.2" if tls12 else "TLS1.3", line)
        self.assertEqual(line["bytes_in"], 4 * MIB, line)
        self.assertEqual(line["bytes_out"], 4 * MIB, line)

        source = self.data_server(mode="source",
                                  data=os.urandom(3 * MIB))
        g, tport = self.tls_gateway(source.port, mtls=mtls)
        port = make(tport, cert=mtls, tls12=tls12)
        self.check_server_first(port, source)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)

        half = self.data_server(mode="half", data=os.urandom(MIB))
        g, tport = self.tls_gateway(half.port, mtls=mtls)
        port = make(tport, cert=mtls, tls12=tls12)
        self.check_server_half_first(port, half)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)

    def test_haproxy_client_without_certificate_refused(self):
        echo = self.data_server()
        g, tport = self.tls_gateway(echo.port, mtls=True)
        port = self.haproxy_client(tport, cert=False)
        self.check_refused(port)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertEqual(echo.done, [])

    def test_haproxy_small_records_and_alpn(self):
        """HAProxy writing 100-byte TLS records (tune.ssl.maxrecord) as a
        client that asks for ALPN h2 (routed on it) and as a server;
        1 MiB echoed both ways through both."""
        c = self.certs
        echo = self.data_server()

        @retry_on_port_clash
        def start():
            tport = gh.free_port()
            g = self.gateway(
                "log: {level: info, format: json}\n"
                "listeners:\n"
                "  - name: tls-in\n"
                "    listen: \"tcp://127.0.0.1:%d\"\n"
                "    accept: tls\n"
                "    tls: {cert: %s, key: %s, alpn: [h2, http/1.1]}\n"
                "    routes:\n"
                "      - name: h2\n"
                "        match: {alpn: h2}\n"
                "        backend: \"tcp://127.0.0.1:%d\"\n"
                % (tport, c.server, c.server_key, echo.port))
            front, back = gh.free_port(), gh.free_port()
            self.haproxy(
                "global\n"
                "    tune.ssl.maxrecord 100\n"
                "frontend f\n"
                "    mode tcp\n"
                "    bind 127.0.0.1:%d\n"
                "    default_backend to_tsgate\n"
                "backend to_tsgate\n"
                "    mode tcp\n"
                "    server t 127.0.0.1:%d ssl verify required ca-file %s "
                "sni str(localhost) alpn h2\n"
                "frontend tls_server\n"
                "    mode tcp\n"
                "    bind 127.0.0.1:%d ssl crt %s\n"
                "    default_backend echo\n"
                "backend echo\n"
                "    mode tcp\n"
                "    server e 127.0.0.1:%d\n"
                % (front, tport, c.ca, back, self.server_pem, echo.port),
                [front, back])
            return g, front, back

        g, front, back = start()
        self.check_echo(front, size=MIB)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["alpn"], "h2", line)
        self.assertEqual(line["route"], "h2", line)
        near, port = self.client_gateway(back)
        self.check_echo(port, size=MIB)
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)

    # ---- the peer terminates TLS, tsgate is the client ----

    @retry_on_port_clash
    def client_gateway(self, tls_port, cert=False):
        c = self.certs
        port = gh.free_port()
        tls = "{ca: %s, sni: localhost" % c.ca
        if cert:
            tls += ", cert: %s, key: %s" % (c.alice, c.alice_key)
        tls += "}"
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: plain-in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: out\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls: %s\n" % (port, tls_port, tls))
        return g, port

    @retry_on_port_clash
    def stunnel_server(self, backend_port, mtls=False, tls12=False):
        c = self.certs
        port = gh.free_port()
        service = ("accept = 127.0.0.1:%d\n"
                   "connect = 127.0.0.1:%d\n"
                   "cert = %s\n"
                   "key = %s\n" % (port, backend_port, c.server,
                                   c.server_key))
        if mtls:
            service += ("CAfile = %s\nverifyChain = yes\n"
                        "requireCert = yes\n" % c.ca)
        if tls12:
            service += "sslVersionMax = TLSv1.2\n"
        self.stunnel(service)
        return port

    @retry_on_port_clash
    def haproxy_server(self, backend_port, mtls=False, tls12=False):
        port = gh.free_port()
        verify = " verify required ca-file %s" % self.certs.ca if mtls else ""
        if tls12:
            verify += " ssl-max-ver TLSv1.2"
        self.haproxy(
            "frontend f\n"
            "    mode tcp\n"
            "    bind 127.0.0.1:%d ssl crt %s%s\n"
            "    default_backend b\n"
            "backend b\n"
            "    mode tcp\n"
            "    server app 127.0.0.1:%d\n"
            % (port, self.server_pem, verify, backend_port), [port])
        return port

    def test_tls_servers_behind_tsgate(self):
        for server, mtls, tls12 in [(c, m, v) for c in ("stunnel", "haproxy")
                                    for m in (False, True)
                                    for v in (False, True)]:
            with self.subTest(server=server, mtls=mtls, tls12=tls12):
                try:
                    self.one_tls_server(server, mtls, tls12)
                finally:
                    self.reset_peers()

    def one_tls_server(self, server, mtls, tls12):
        make = (self.stunnel_server if server == "stunnel"
                else self.haproxy_server)
        if server == "stunnel":
            # see check_digest: stunnel's own defect with check_echo
            backend = self.data_server(mode="digest",
                                       data=os.urandom(3 * MIB))
            g, port = self.client_gateway(
                make(backend.port, mtls, tls12), cert=mtls)
            self.check_digest(port, backend)
            down = 3 * MIB + 32
        else:
            backend = self.data_server()
            g, port = self.client_gateway(
                make(backend.port, mtls, tls12), cert=mtls)
            self.check_echo(port)
            down = 4 * MIB
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["bytes_in"], 4 * MIB, line)
        self.assertEqual(line["bytes_out"], down, line)

        source = self.data_server(mode="source",
                                  data=os.urandom(3 * MIB))
        g, port = self.client_gateway(
            make(source.port, mtls, tls12), cert=mtls)
        self.check_server_first(port, source)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)

        half = self.data_server(mode="half", data=os.urandom(MIB))
        g, port = self.client_gateway(
            make(half.port, mtls, tls12), cert=mtls)
        self.check_server_half_first(port, half)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)

    def test_tls_servers_require_client_certificate(self):
        for server in ("stunnel", "haproxy"):
            with self.subTest(server=server):
                make = (self.stunnel_server if server == "stunnel"
                        else self.haproxy_server)
                echo = self.data_server()
                g, port = self.client_gateway(make(echo.port, True),
                                              cert=False)
                self.check_refused(port)
                line = g.wait_conn_lines(1)[0]
                self.assertEqual(line["result"], "error", line)
                self.assertEqual(echo.done, [])
                self.reset_peers()

    def reset_peers(self):
        """Stop what one sub-test started (each daemon must exit 0)."""
        for p in self.peers:
            p.stop()
        for s in self.servers:
            s.close()
        self.peers, self.servers = [], []
        self.reset()


if __name__ == "__main__":
    gh.require_binary()
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is needed to make the test certificates")
    unittest.main(verbosity=2)
