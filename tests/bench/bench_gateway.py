#!/usr/bin/env python3
"""Side-by-side gateway benchmarks: tsgate against stunnel, HAProxy and
hitch (Debian packages), configured for the same job, plus tsgate's
GSSAPI tunnel against the raw gss_wrap+gss_unwrap rate. Issue 8.

    bench_gateway.py BUILDDIR

Every peer terminates TLS 1.3 (TLS_AES_128_GCM_SHA256, X25519) with the
same ECDSA P-256 certificate and forwards to the same sink on loopback;
one process/thread each (tsgate workers: 1, haproxy nbthread 1, hitch
workers 1; stunnel makes a thread per connection). The primary figure is
the server's own CPU (utime+stime of all its processes, from
/proc/PID/stat) per unit of work; wall figures are beside it, because the
load client, the sink and the server share the machine's cores.

Environment (all optional):
  BENCH_BYTES      bulk upload size (default 1073741824 = 1 GiB)
  BENCH_RUNS       runs per figure, median reported (default 3)
  BENCH_HANDSHAKES handshakes per run (default 2000)
  BENCH_IDLE       idle connection counts (default "1000 9000": the
                   container's hard RLIMIT_NOFILE is 20000 and a proxy
                   with 10,000 connections needs 20,000 fds plus its own)
  BENCH_IDLE_W2    idle counts measured once more on tsgate with
                   `workers: 2` (two processes, each under the fd limit:
                   how tsgate holds 10,000 here; default "10000" when the
                   hard limit is below 20,100, else none; "" for none)
  BENCH_GSS_CTX    GSSAPI context establishments per run (default 500)
  BENCH_PEERS      subset, e.g. "tsgate haproxy" (default all found)
  BENCH_SKIP       figures to skip: any of bulk handshake mtls idle gss
  BENCH_JSON       write the raw results there too
Benchmarks are never part of meson test / scripts/test.
"""

import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-bench")
TSGATE = os.path.join(BUILDDIR, "gateway", "tsgate")
CLIENT = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_client")
GSS = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_gss")
TT_KDC = os.path.join(BUILDDIR, "tests", "tt-kdc")

BYTES = int(os.environ.get("BENCH_BYTES", str(1 << 30)))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "2000"))
IDLE = [int(x) for x in os.environ.get("BENCH_IDLE", "1000 9000").split()]
GSS_CTX = int(os.environ.get("BENCH_GSS_CTX", "500"))
SKIP = set(os.environ.get("BENCH_SKIP", "").split())
_HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
IDLE_W2 = [int(x) for x in os.environ.get(
    "BENCH_IDLE_W2", "10000" if 0 <= _HARD_NOFILE < 20100 else "").split()]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TIMEOUT = 600


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
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
    """One TLS terminator: started on a config file, stopped by pid."""

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


def start_peer(name, pki, sink_port, workdir, mtls=False, workers=1):
    port = free_port()
    cfg = os.path.join(workdir, "%s%s-w%d.conf" % (name, "-mtls" if mtls
                                                    else "", workers))
    if name == "tsgate":
        with open(cfg, "w") as f:
            f.write("log: {level: error}\nworkers: %d\n"
                    "limits: {max_connections: 10500, idle_timeout: 600s}\n"
                    % workers +
                    "listeners:\n"
                    "  - name: bench\n"
                    "    listen: \"tcp://127.0.0.1:%d\"\n"
                    "    accept: tls\n"
                    "    tls:\n"
                    "      cert: %s\n      key: %s\n"
                    "      priority: \"NONE:+VERS-TLS1.3:+AES-128-GCM:+AEAD:"
                    "+GROUP-X25519:+SIGN-ECDSA-SECP256R1-SHA256:+COMP-NULL\"\n"
                    % (port, pki.crt, pki.key))
            if mtls:
                f.write("      client_ca: %s\n      verify_client: require\n"
                        % pki.ca)
            f.write("    routes:\n      - backend: \"tcp://127.0.0.1:%d\"\n"
                    % sink_port)
        argv = [TSGATE, "--config", cfg]
    elif name == "stunnel":
        with open(cfg, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\nsyslog = no\n"
                    "[bench]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "cert = %s\nkey = %s\nsslVersionMin = TLSv1.3\n"
                    "ciphersuites = TLS_AES_128_GCM_SHA256\ncurves = X25519\n"
                    "options = NO_TICKET\nsessionCacheSize = 1\n"
                    "TIMEOUTidle = 600\n"
                    % (port, sink_port, pki.crt, pki.key))
            if mtls:
                f.write("verifyChain = yes\nCAfile = %s\n" % pki.ca)
        argv = ["stunnel4", cfg]
    elif name == "haproxy":
        verify = " ca-file %s verify required" % pki.ca if mtls else ""
        with open(cfg, "w") as f:
            f.write("global\n  maxconn 9500\n  nbthread 1\n"
                    "  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256\n"
                    "defaults\n  mode tcp\n  timeout connect 5s\n"
                    "  timeout client 600s\n  timeout server 600s\n"
                    "frontend bench\n"
                    "  bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.3 "
                    "curves X25519 no-tls-tickets%s\n"
                    "  default_backend sink\nbackend sink\n"
                    "  server s 127.0.0.1:%d\n"
                    % (port, pki.pem, verify, sink_port))
        argv = ["haproxy", "-db", "-f", cfg]
    elif name == "hitch":
        with open(cfg, "w") as f:
            f.write('frontend = "[127.0.0.1]:%d"\nbackend = "[127.0.0.1]:%d"\n'
                    'pem-file = "%s"\ntls-protos = TLSv1.3\n'
                    'ciphersuites = "TLS_AES_128_GCM_SHA256"\n'
                    'ecdh-curve = "X25519"\nworkers = 1\ndaemon = off\n'
                    'user = "root"\nbacklog = 4096\n'
                    % (port, sink_port, pki.pem))
            if mtls:
                f.write('client-verify = required\n'
                        'client-verify-ca = "%s"\n' % pki.ca)
        argv = ["hitch", "--config", cfg]
    else:
        raise ValueError(name)
    return Server(name, argv, port, workdir)


def median(xs):
    return statistics.median(xs) if xs else None


def bench_bulk(srv):
    cpu, wall = [], []
    for _ in range(RUNS):
        pids = srv.pids()
        c0 = cpu_seconds(pids)
        out = run([CLIENT, "bulk", str(srv.port), str(BYTES)])
        time.sleep(0.1)
        c1 = cpu_seconds(pids)
        secs = float(out.split()[0])
        gib = BYTES / (1 << 30)
        cpu.append((c1 - c0) / gib)
        wall.append(BYTES / secs / 1e6)
    return {"cpu_s_per_gib": median(cpu), "mb_per_s": median(wall),
            "runs_cpu": cpu}


def bench_handshakes(srv, pki, mtls):
    extra = [pki.client_crt, pki.client_key] if mtls else []
    cpu, rate = [], []
    run([CLIENT, "handshake", str(srv.port), "20"] + extra)  # warm up
    for _ in range(RUNS):
        pids = srv.pids()
        c0 = cpu_seconds(pids)
        out = run([CLIENT, "handshake", str(srv.port), str(HANDSHAKES)] +
                  extra)
        time.sleep(0.2)
        c1 = cpu_seconds(pids)
        secs = float(out.split()[0])
        cpu.append((c1 - c0) / HANDSHAKES * 1e6)
        rate.append(HANDSHAKES / secs)
    return {"cpu_us": median(cpu), "per_s": median(rate), "runs_cpu": cpu}


def bench_idle(srv, n):
    run([CLIENT, "handshake", str(srv.port), "20"])  # warm up
    time.sleep(0.3)
    base = pss_kib(srv.pids())
    cl = subprocess.Popen([CLIENT, "idle", str(srv.port), str(n)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        line = cl.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("idle client: %s" % cl.stderr.read()[-500:])
        time.sleep(1.0)
        loaded = pss_kib(srv.pids())
    finally:
        cl.stdin.close()
        try:
            cl.wait(60)
        except subprocess.TimeoutExpired:
            cl.kill()
            cl.wait()
    time.sleep(1.0)
    return {"pss_kib_per_conn": (loaded - base) / n, "base_kib": base,
            "loaded_kib": loaded}


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            if line.startswith("export "):
                k, v = line[len("export "):].rstrip("\n").split("=", 1)
                env[k] = v.strip("'")
    return env


def bench_gss(workdir, sink_port):
    envf = os.path.join(workdir, "kdc.env")
    kdc = subprocess.Popen([TT_KDC], stdout=open(envf, "w"),
                           stderr=subprocess.DEVNULL, start_new_session=True)
    res = {}
    servers = []
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            with open(envf) as f:
                if "# ready" in f.read():
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("tt-kdc did not start")
        kenv = read_env_file(envf)
        env = dict(os.environ)
        env.update(kenv)
        env["KRB5CCNAME"] = kenv["TT_KDC_ALICE_CCACHE"]
        env["KRB5_KTNAME"] = kenv["TT_KDC_SERVICE_KEYTAB"]
        target = "host@localhost"
        # raw: both ends in one thread, the same enctype as the tunnel
        raw, rawcpu = [], []
        for _ in range(RUNS):
            out = run([GSS, "raw", target, str(BYTES)], env=env).split()
            raw.append(BYTES / float(out[0]) / 1e6)
            res["gss_chunk"] = int(out[1])
            rawcpu.append(float(out[2]) / (BYTES / (1 << 30)))
        res["raw_mb_per_s"] = median(raw)
        res["raw_cpu_s_per_gib"] = median(rawcpu)
        ctx = []
        for _ in range(RUNS):
            out = run([GSS, "ctx", target, str(GSS_CTX)], env=env)
            ctx.append(GSS_CTX / float(out.split()[0]))
        res["raw_ctx_per_s"] = median(ctx)
        # tsgate(client) -> GSSAPI -> tsgate(server) -> sink
        sport, cport = free_port(), free_port()
        scfg = os.path.join(workdir, "gss-server.yaml")
        with open(scfg, "w") as f:
            f.write("log: {level: error}\nlisteners:\n  - name: gss\n"
                    "    listen: \"tcp://127.0.0.1:%d\"\n    accept: gssapi\n"
                    "    gssapi: {keytab: \"%s\"}\n    routes:\n"
                    "      - backend: \"tcp://127.0.0.1:%d\"\n"
                    % (sport, kenv["TT_KDC_SERVICE_KEYTAB"], sink_port))
        ccfg = os.path.join(workdir, "gss-client.yaml")
        with open(ccfg, "w") as f:
            f.write("log: {level: error}\nlisteners:\n  - name: plain\n"
                    "    listen: \"tcp://127.0.0.1:%d\"\n    accept: plain\n"
                    "    routes:\n      - backend: \"tcp://127.0.0.1:%d\"\n"
                    "        connect: gssapi\n"
                    "        gssapi: {target: \"%s\", ccache: \"%s\"}\n"
                    % (cport, sport, target, kenv["TT_KDC_ALICE_CCACHE"]))
        old = dict(os.environ)
        os.environ.update(kenv)
        try:
            srv = Server("tsgate-gss-server", [TSGATE, "--config", scfg],
                         sport, workdir)
            servers.append(srv)
            cli = Server("tsgate-gss-client", [TSGATE, "--config", ccfg],
                         cport, workdir)
            servers.append(cli)
        finally:
            os.environ.clear()
            os.environ.update(old)
        tun, cpu_s, cpu_c = [], [], []
        for _ in range(RUNS):
            ps, pc = srv.pids(), cli.pids()
            s0, k0 = cpu_seconds(ps), cpu_seconds(pc)
            out = run([GSS, "plain", str(cport), str(BYTES)], env=env)
            time.sleep(0.1)
            tun.append(BYTES / float(out.split()[0]) / 1e6)
            gib = BYTES / (1 << 30)
            cpu_s.append((cpu_seconds(ps) - s0) / gib)
            cpu_c.append((cpu_seconds(pc) - k0) / gib)
        res["tunnel_mb_per_s"] = median(tun)
        res["tunnel_server_cpu_s_per_gib"] = median(cpu_s)
        res["tunnel_client_cpu_s_per_gib"] = median(cpu_c)
        est, est_cpu = [], []
        run([GSS, "connect", str(sport), target, "10"], env=env)
        for _ in range(RUNS):
            ps = srv.pids()
            s0 = cpu_seconds(ps)
            out = run([GSS, "connect", str(sport), target, str(GSS_CTX)],
                      env=env)
            time.sleep(0.2)
            est.append(GSS_CTX / float(out.split()[0]))
            est_cpu.append((cpu_seconds(ps) - s0) / GSS_CTX * 1e6)
        res["tsgate_ctx_per_s"] = median(est)
        res["tsgate_ctx_cpu_us"] = median(est_cpu)
    finally:
        for s in servers:
            s.stop()
        os.kill(kdc.pid, signal.SIGTERM)
        kdc.wait(20)
    return res


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def ratio(ours, theirs, lower_better=True):
    """ours/peer; below 1 is better for costs (CPU, memory)."""
    if ours is None or theirs in (None, 0):
        return "-"
    return "%.2f" % (ours / theirs)


def main():
    for p in (TSGATE, CLIENT):
        if not os.access(p, os.X_OK):
            log("bench_gateway: %s not built" % p)
            return 1
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    peers = os.environ.get("BENCH_PEERS",
                           "tsgate stunnel haproxy hitch").split()
    exe = {"tsgate": TSGATE, "stunnel": "stunnel4", "haproxy": "haproxy",
           "hitch": "hitch"}
    peers = [p for p in peers if shutil.which(exe[p])]
    workdir = tempfile.mkdtemp(prefix="tsgate-bench-")
    results = {p: {} for p in peers}
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[:3]
    sink_port = free_port()
    sink = subprocess.Popen([CLIENT, "sink", str(sink_port)],
                            stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("sink did not start")
        pki = PKI(workdir)
        for peer in peers:
            log("== %s" % peer)
            r = results[peer]
            srv = start_peer(peer, pki, sink_port, workdir)
            try:
                if "bulk" not in SKIP:
                    r["bulk"] = bench_bulk(srv)
                    log("   bulk %s" % r["bulk"])
                if "handshake" not in SKIP:
                    r["hs"] = bench_handshakes(srv, pki, False)
                    log("   handshake %s" % r["hs"])
                if "idle" not in SKIP:
                    for n in IDLE:
                        r["idle%d" % n] = bench_idle(srv, n)
                        log("   idle %d %s" % (n, r["idle%d" % n]))
            finally:
                srv.stop()
            if peer == "tsgate" and "idle" not in SKIP and IDLE_W2:
                srv = start_peer(peer, pki, sink_port, workdir, workers=2)
                try:
                    for n in IDLE_W2:
                        r["idle%dw2" % n] = bench_idle(srv, n)
                        log("   idle %d (workers: 2) %s" %
                            (n, r["idle%dw2" % n]))
                finally:
                    srv.stop()
            if "mtls" not in SKIP and "handshake" not in SKIP:
                srv = start_peer(peer, pki, sink_port, workdir, mtls=True)
                try:
                    r["mtls"] = bench_handshakes(srv, pki, True)
                    log("   mtls %s" % r["mtls"])
                finally:
                    srv.stop()
        gss = None
        if "gss" not in SKIP and os.access(GSS, os.X_OK) and os.access(
                TT_KDC, os.X_OK):
            log("== gssapi")
            gss = bench_gss(workdir, sink_port)
            log("   %s" % gss)
    finally:
        os.kill(sink.pid, signal.SIGTERM)
        sink.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[:3]

    rows = [
        ("TLS bulk: server CPU s/GiB", lambda r: r.get("bulk", {}).get(
            "cpu_s_per_gib"), ".3f"),
        ("TLS bulk: wall MB/s", lambda r: r.get("bulk", {}).get("mb_per_s"),
         ".0f"),
        ("handshake: server CPU us", lambda r: r.get("hs", {}).get("cpu_us"),
         ".0f"),
        ("handshake: per s (wall)", lambda r: r.get("hs", {}).get("per_s"),
         ".0f"),
        ("mTLS handshake: server CPU us", lambda r: r.get("mtls", {}).get(
            "cpu_us"), ".0f"),
        ("mTLS handshake: per s (wall)", lambda r: r.get("mtls", {}).get(
            "per_s"), ".0f"),
    ]
    for n in IDLE:
        rows.append(("PSS KiB per idle conn (%d)" % n,
                     lambda r, n=n: r.get("idle%d" % n, {}).get(
                         "pss_kib_per_conn"), ".1f"))
    for n in IDLE_W2:
        rows.append(("PSS KiB per idle conn (%d; tsgate workers: 2)" % n,
                     lambda r, n=n: r.get("idle%dw2" % n, {}).get(
                         "pss_kib_per_conn"), ".1f"))
    others = [p for p in peers if p != "tsgate"]
    ours = results.get("tsgate", {})
    head = "| figure | " + " | ".join(
        peers + ["tsgate/%s" % p for p in others]) + " | knc |"
    print()
    print("Gateway benchmarks: %s B bulk, %d handshakes, %d runs (medians);"
          " load average before %s, after %s" % (BYTES, HANDSHAKES, RUNS,
                                                 " ".join(load0),
                                                 " ".join(load1)))
    print("Ratios are tsgate/peer: below 1 is better for CPU and memory,"
          " above 1 for rates and MB/s.")
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, get, spec in rows:
        cells = [fmt(get(results[p]), spec) for p in peers]
        rat = [ratio(get(ours), get(results[p])) for p in others]
        print("| %s | %s | not in Debian |" % (label,
                                              " | ".join(cells + rat)))
    if gss:
        print()
        print("| GSSAPI (enctype of the test KDC: aes256-cts-hmac-sha1-96,"
              " chunk %d) | tsgate | raw | tsgate/raw | knc |"
              % gss["gss_chunk"])
        print("|---|---|---|---|---|")
        print("| tunnel MB/s (client tsgate -> server tsgate -> sink) |"
              " %.0f | %.0f | %.2f | not in Debian |"
              % (gss["tunnel_mb_per_s"], gss["raw_mb_per_s"],
                 gss["tunnel_mb_per_s"] / gss["raw_mb_per_s"]))
        both = (gss["tunnel_server_cpu_s_per_gib"] +
                gss["tunnel_client_cpu_s_per_gib"])
        print("| CPU s/GiB (tunnel: server + client tsgate = %.2f + %.2f;"
              " raw: wrap+unwrap thread) | %.2f | %.2f | %.2f (raw/tunnel)"
              " | not in Debian |"
              % (gss["tunnel_server_cpu_s_per_gib"],
                 gss["tunnel_client_cpu_s_per_gib"], both,
                 gss["raw_cpu_s_per_gib"],
                 gss["raw_cpu_s_per_gib"] / both))
        print("| contexts/s (cached service ticket; raw = both ends in one "
              "thread) | %.0f | %.0f | %.2f | not in Debian |"
              % (gss["tsgate_ctx_per_s"], gss["raw_ctx_per_s"],
                 gss["tsgate_ctx_per_s"] / gss["raw_ctx_per_s"]))
        print("| acceptor CPU us per context (tsgate server) | %.0f | - | - |"
              " - |" % gss["tsgate_ctx_cpu_us"])
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"peers": results, "gss": gss, "bytes": BYTES,
                       "runs": RUNS, "load": [load0, load1]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
