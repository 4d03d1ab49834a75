# SPDX-License-Identifier: MIT
"""The servers of the gateway benchmarks (bench_gateway.py): the PKI they
share, and tsgate, stunnel, HAProxy and hitch configured for the same job
in one of three modes:

  plain   TLS 1.3 only, no session tickets or cache where the server has
          a switch for it (the bulk and full-handshake figures, as in
          runs 1-6)
  mtls    plain, and the client must present a certificate
  resume  TLS 1.2 and 1.3, resumption as the server does it by default
          (tickets; stunnel and HAProxy also keep a session cache): the
          resumption, first-byte and idle figures

Each server process is started on its own port; a ServerSet is the
processes one figure needs of one server (several when one process
cannot hold all the connections under the file-descriptor limit).
"""

import os
import signal
import socket
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")
TIMEOUT = 600

# TLS 1.3: TLS_AES_128_GCM_SHA256; TLS 1.2: ECDHE-ECDSA-AES128-GCM-SHA256;
# X25519 and ECDSA P-256 in both.
TSGATE_PRIO13 = ("NONE:+VERS-TLS1.3:+AES-128-GCM:+AEAD:+GROUP-X25519:"
                 "+SIGN-ECDSA-SECP256R1-SHA256:+COMP-NULL")
TSGATE_PRIO12 = ("NONE:+VERS-TLS1.3:+VERS-TLS1.2:+AES-128-GCM:+AEAD:"
                 "+ECDHE-ECDSA:+GROUP-X25519:+GROUP-SECP256R1:"
                 "+SIGN-ECDSA-SECP256R1-SHA256:"
                 "+SIGN-ECDSA-SHA256:+COMP-NULL")
EXE = {"tsgate": None, "stunnel": "stunnel4", "haproxy": "haproxy",
       "hitch": "hitch"}


_used_ports = set()


def free_port():
    """A free loopback port, never the same twice in one run."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def descendants(pid):
    """pid and all its descendants (by PPid), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def socket_fds(pids):
    """Sockets the server's processes hold (listeners and connections)."""
    n = 0
    for p in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % p)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (p, fd)).startswith(
                        "socket:"):
                    n += 1
            except OSError:
                pass
    return n


def wait_for(pred, timeout):
    """Poll pred until true or timeout seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def run(argv, env=None, timeout=TIMEOUT):
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv[:2], r.returncode,
                                                   r.stderr.strip()[-2000:]))
    return r.stdout


class PKI:
    """ECDSA P-256 CA, server and client certificates (openssl CLI)."""

    def __init__(self, d):
        self.d = d
        ossl = lambda *a: run(["openssl"] + list(a))
        p = lambda n: os.path.join(d, n)
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("ca.key"),
             "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=bench CA")
        for name, cn in (("server", "localhost"), ("client", "bench client")):
            ossl("req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 p(name + ".key"), "-out", p(name + ".csr"), "-subj",
                 "/CN=" + cn)
            ext = p(name + ".ext")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                        if name == "server" else
                        "extendedKeyUsage=clientAuth\n")
            ossl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"),
                 "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
                 "-out", p(name + ".crt"), "-extfile", ext)
        # key + certificate in one file (HAProxy, hitch)
        with open(p("server.pem"), "w") as f:
            for n in ("server.crt", "server.key"):
                with open(p(n)) as g:
                    f.write(g.read())
        self.ca, self.crt, self.key = p("ca.crt"), p("server.crt"), p(
            "server.key")
        self.pem = p("server.pem")
        self.client_crt, self.client_key = p("client.crt"), p("client.key")


class Server:
    """One server process: started on a config file, stopped by pid."""

    def __init__(self, name, argv, port, workdir):
        self.name = name
        self.port = port
        self.logf = open(os.path.join(workdir, name + ".log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     cwd=workdir, start_new_session=True)
        if not wait_port(port):
            self.stop()
            raise RuntimeError("%s did not listen on %d (see %s.log)" %
                               (name, port, name))
        time.sleep(0.2)  # worker processes

    def pids(self):
        return descendants(self.proc.pid)

    def stop(self):
        pids = self.pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait(5)
        self.logf.close()


class ServerSet:
    """The processes of one server for one figure, each on its own port."""

    def __init__(self, servers):
        self.servers = servers
        self.ports = [s.port for s in servers]
        self.port = self.ports[0]

    def pids(self):
        return [p for s in self.servers for p in s.pids()]

    def stop(self):
        for s in self.servers:
            s.stop()


def is_tsgate(name):
    """tsgate, or another tsgate build measured beside it (tsgate-NAME)."""
    return name == "tsgate" or name.startswith("tsgate-")


class Peers:
    """Starts the servers; knows the tsgate binaries (name -> path: "tsgate"
    and any other build compared with it) and what they support."""

    def __init__(self, tsgates, pki, workdir):
        self.tsgates = tsgates
        self.pki = pki
        self.workdir = workdir
        self._switch = {}

    def tsgate_has_resumption_switch(self, name="tsgate"):
        """Whether this tsgate build knows tls.session_resumption (issue
        15): then the plain mode turns resumption off as the peers' plain
        configs do; older builds never resume."""
        if name not in self._switch:
            cfg = os.path.join(self.workdir, "probe-resumption.yaml")
            with open(cfg, "w") as f:
                f.write(self._tsgate_yaml("plain", free_port(), 1, 1, True))
            r = subprocess.run([self.tsgates[name], "--check-config",
                                "--config", cfg], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            self._switch[name] = r.returncode == 0
        return self._switch[name]

    def _tsgate_yaml(self, mode, port, backend, workers, no_resume):
        pki = self.pki
        y = ("log: {level: error}\nworkers: %d\n"
             "limits: {max_connections: 10500, idle_timeout: 600s}\n"
             "listeners:\n"
             "  - name: bench\n"
             "    listen: \"tcp://127.0.0.1:%d\"\n"
             "    accept: tls\n"
             "    tls:\n"
             "      cert: %s\n      key: %s\n"
             "      priority: \"%s\"\n"
             % (workers, port, pki.crt, pki.key,
                TSGATE_PRIO12 if mode == "resume" else TSGATE_PRIO13))
        if no_resume:
            y += "      session_resumption: false\n"
        if mode == "mtls":
            y += "      client_ca: %s\n      verify_client: require\n" % (
                pki.ca)
        y += "    routes:\n      - backend: \"tcp://127.0.0.1:%d\"\n" % (
            backend)
        return y

    def start(self, name, mode, backend, tag="", workers=1):
        """One process of server name in mode, forwarding to backend."""
        pki = self.pki
        port = free_port()
        cfg = os.path.join(self.workdir, "%s-%s%s-w%d.conf" %
                           (name, mode, tag, workers))
        tls12 = mode == "resume"
        if is_tsgate(name):
            no_resume = (mode != "resume" and
                         self.tsgate_has_resumption_switch(name))
            with open(cfg, "w") as f:
                f.write(self._tsgate_yaml(mode, port, backend, workers,
                                          no_resume))
            argv = [self.tsgates[name], "--config", cfg]
        elif name == "stunnel":
            with open(cfg, "w") as f:
                f.write("foreground = yes\npid =\ndebug = 3\nsyslog = no\n"
                        "[bench]\naccept = 127.0.0.1:%d\n"
                        "connect = 127.0.0.1:%d\ncert = %s\nkey = %s\n"
                        "sslVersionMin = %s\n"
                        "ciphersuites = TLS_AES_128_GCM_SHA256\n"
                        "ciphers = ECDHE-ECDSA-AES128-GCM-SHA256\n"
                        "curves = X25519\nTIMEOUTidle = 600\n"
                        % (port, backend, pki.crt, pki.key,
                           "TLSv1.2" if tls12 else "TLSv1.3"))
                if not tls12:
                    f.write("options = NO_TICKET\nsessionCacheSize = 1\n")
                if mode == "mtls":
                    f.write("verifyChain = yes\nCAfile = %s\n" % pki.ca)
            argv = ["stunnel4", cfg]
        elif name == "haproxy":
            bind = ("ssl-min-ver TLSv1.2 ciphers ECDHE-ECDSA-AES128-GCM-SHA256"
                    if tls12 else "ssl-min-ver TLSv1.3 no-tls-tickets")
            if mode == "mtls":
                bind += " ca-file %s verify required" % pki.ca
            with open(cfg, "w") as f:
                f.write("global\n  maxconn 9500\n  nbthread 1\n"
                        "  ssl-default-bind-ciphersuites "
                        "TLS_AES_128_GCM_SHA256\n"
                        "defaults\n  mode tcp\n  timeout connect 5s\n"
                        "  timeout client 600s\n  timeout server 600s\n"
                        "frontend bench\n"
                        "  bind 127.0.0.1:%d ssl crt %s curves X25519 %s\n"
                        "  default_backend sink\nbackend sink\n"
                        "  server s 127.0.0.1:%d\n"
                        % (port, pki.pem, bind, backend))
            argv = ["haproxy", "-db", "-f", cfg]
        elif name == "hitch":
            with open(cfg, "w") as f:
                f.write('frontend = "[127.0.0.1]:%d"\n'
                        'backend = "[127.0.0.1]:%d"\n'
                        'pem-file = "%s"\ntls-protos = %s\n'
                        'ciphersuites = "TLS_AES_128_GCM_SHA256"\n'
                        'ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"\n'
                        'ecdh-curve = "X25519"\nworkers = 1\ndaemon = off\n'
                        'user = "root"\nbacklog = 4096\n'
                        % (port, backend, pki.pem,
                           "TLSv1.2 TLSv1.3" if tls12 else "TLSv1.3"))
                if mode == "mtls":
                    f.write('client-verify = required\n'
                            'client-verify-ca = "%s"\n' % pki.ca)
            argv = ["hitch", "--config", cfg]
        else:
            raise ValueError(name)
        return Server(name, argv, port, self.workdir)

    def start_set(self, name, mode, backend, processes=1, workers=1):
        servers = []
        try:
            for i in range(processes):
                servers.append(self.start(name, mode, backend,
                                          tag="-%d" % i, workers=workers))
        except Exception:
            for s in servers:
                s.stop()
            raise
        return ServerSet(servers)
