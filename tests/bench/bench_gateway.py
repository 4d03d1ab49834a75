#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Side-by-side gateway benchmarks: tsgate against stunnel, HAProxy and
hitch (Debian packages), configured for the same job, plus tsgate's
GSSAPI tunnel against the raw gss_wrap+gss_unwrap rate. Issues 8 and 15.

    bench_gateway.py BUILDDIR

Every server terminates TLS with the same ECDSA P-256 certificate (TLS 1.3
TLS_AES_128_GCM_SHA256 or TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256, X25519)
and forwards to the same backend on loopback (a sink, or an echo for the
figures that need a reply); one process/thread each (tsgate workers: 1,
haproxy nbthread 1, hitch workers 1; stunnel makes a thread per
connection). The primary figures are the server's own CPU (utime+stime
of all its processes, from /proc/PID/stat) per unit of work and its PSS;
wall figures are beside them, because the load client, the backend and
the server share the machine's cores.

Each figure is measured in rounds that interleave the servers (tsgate,
stunnel, haproxy, hitch, tsgate, ...; all of a figure's servers run for
all its rounds), and the table gives per server the median and min-max
over the rounds and tsgate's lead over the best peer of each round (its
worst round and the median): see bench_report.py. The raw numbers of
every round go to a JSON and a CSV file beside the table.

Environment (all optional):
  BENCH_BYTES      bulk upload size (default 1073741824 = 1 GiB)
  BENCH_RUNS       rounds per figure (default 3)
  BENCH_HANDSHAKES full handshakes per round (default 2000)
  BENCH_RESUME_HANDSHAKES
                   connections per round of the resumption figure, once
                   without and once with a session (default
                   BENCH_HANDSHAKES)
  BENCH_RESUME_VERSIONS
                   TLS versions of the resumption figure (default "1.3 1.2")
  BENCH_FIRSTBYTE  connections per round of the first-byte figure (Nagle
                   on; default 200)
  BENCH_FIRSTBYTE_REQ
                   request size written right after the handshake (64)
  BENCH_FIRSTBYTE_VERSIONS
                   TLS versions of the first-byte figure (default "1.3")
  BENCH_IDLE       idle connection counts (default "1000 10000"); a count
                   whose descriptors (two per connection) do not fit one
                   process under the hard RLIMIT_NOFILE is spread over
                   several processes of every server, each on its own port
  BENCH_IDLE_RUNS  rounds of the idle figures (default BENCH_RUNS)
  BENCH_IDLE_RESUMED
                   the counts of BENCH_IDLE also measured with resumed
                   connections (default all of them)
  BENCH_IDLE_W2    idle counts measured once more on tsgate alone with
                   `workers: 2` (default none)
  BENCH_GSS_CTX    GSSAPI context establishments per run (default 500)
  BENCH_PEERS      subset, e.g. "tsgate haproxy" (default all found)
  BENCH_TSGATE_ALT other tsgate builds measured in the same rounds, each
                   NAME=PATH (NAME starts with "tsgate-"), e.g.
                   "tsgate-resume=../wt/build-bench/gateway/tsgate"; each
                   gets its own lead over the best peer
  BENCH_SKIP       figures to skip: any of bulk handshake mtls resume
                   firstbyte idle idle-resumed gss
  BENCH_JSON       the raw results (default BUILDDIR/bench-gateway.json)
  BENCH_CSV        the raw per-round numbers (default
                   BUILDDIR/bench-gateway.csv)
  BENCH_SMOKE=1    tiny sizes and 2 rounds, for the bench_smoke test: every
                   part runs, no figure means anything
Benchmarks are never part of meson test / scripts/test (bench_smoke only
checks that this program still runs).
"""

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_figures import Figures  # noqa: E402
from bench_gss import bench_gss  # noqa: E402
from bench_report import Metric, table, write_csv, write_json  # noqa: E402
from bench_servers import EXE, PKI, Peers, free_port, is_tsgate  # noqa: E402

BUILDDIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-bench")
TSGATE = os.path.join(BUILDDIR, "gateway", "tsgate")
CLIENT = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_client")
GSS = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_gss")
TT_KDC = os.path.join(BUILDDIR, "tests", "tt-kdc")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Settings:
    """The BENCH_* knobs; BENCH_SMOKE changes the defaults only."""

    def __init__(self, env):
        smoke = env.get("BENCH_SMOKE", "") not in ("", "0")
        d = (lambda big, small: small if smoke else big)
        g = (lambda k, dflt: env.get(k, dflt))
        self.smoke = smoke
        self.bytes = int(g("BENCH_BYTES", d(str(1 << 30), str(1 << 22))))
        self.runs = int(g("BENCH_RUNS", d("3", "2")))
        self.handshakes = int(g("BENCH_HANDSHAKES", d("2000", "20")))
        self.resume_handshakes = int(g("BENCH_RESUME_HANDSHAKES",
                                       str(self.handshakes)))
        self.resume_versions = g("BENCH_RESUME_VERSIONS", "1.3 1.2").split()
        self.firstbyte = int(g("BENCH_FIRSTBYTE", d("200", "5")))
        self.firstbyte_req = int(g("BENCH_FIRSTBYTE_REQ", "64"))
        self.firstbyte_versions = g("BENCH_FIRSTBYTE_VERSIONS",
                                    "1.3").split()
        self.idle = [int(x) for x in g("BENCH_IDLE",
                                       d("1000 10000", "20")).split()]
        self.idle_runs = int(g("BENCH_IDLE_RUNS", str(self.runs)))
        self.idle_resumed = [int(x) for x in g(
            "BENCH_IDLE_RESUMED", " ".join(map(str, self.idle))).split()]
        self.idle_w2 = [int(x) for x in g("BENCH_IDLE_W2", "").split()]
        self.gss_ctx = int(g("BENCH_GSS_CTX", d("500", "10")))
        self.skip = set(g("BENCH_SKIP", "").split())
        self.peers = g("BENCH_PEERS", "tsgate stunnel haproxy hitch").split()
        self.tsgate_alt = g("BENCH_TSGATE_ALT", "").split()
        self.json = g("BENCH_JSON", os.path.join(BUILDDIR,
                                                 "bench-gateway.json"))
        self.csv = g("BENCH_CSV", os.path.join(BUILDDIR, "bench-gateway.csv"))

    def doc(self):
        return {k: sorted(v) if isinstance(v, set) else v
                for k, v in vars(self).items()}


def raise_nofile():
    """Soft limit up to the hard one; returns the hard limit."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def processes_for(n, hard):
    """Server processes needed for n idle connections: each holds a client
    and a backend descriptor per connection, and ~200 of its own."""
    if hard == resource.RLIM_INFINITY:
        return 1
    return max(1, math.ceil((2 * n + 200) / hard))


class Bench:
    def __init__(self, cfg, peers, figures, servers):
        self.cfg = cfg
        self.peers = peers
        self.fig = figures
        self.servers = servers
        self.rounds = {}
        self.errors = []

    def group(self, mode, backend, jobs, processes=1, runs=None,
              peers=None, workers=1, fresh=False):
        """Starts mode's servers for every peer, then runs each job
        (figure name, function of the ServerSet) in interleaved rounds.
        fresh: a new server for every measurement instead (memory: a
        process keeps the heap its last connections freed)."""
        peers = peers or self.peers
        sets = {}

        def measure(fn, p):
            if not fresh:
                return fn(sets[p])
            s = self.servers.start_set(p, mode, backend, processes, workers)
            try:
                return fn(s)
            finally:
                s.stop()

        try:
            for p in peers if not fresh else []:
                sets[p] = self.servers.start_set(p, mode, backend,
                                                 processes, workers)
            for figure, fn in jobs:
                log("== %s" % figure)
                per = self.rounds.setdefault(figure, {})
                for r in range(runs or self.cfg.runs):
                    for p in peers:
                        try:
                            res = measure(fn, p)
                        except Exception as e:  # keep the other figures
                            res = None
                            self.errors.append("%s round %d %s: %s" %
                                               (figure, r + 1, p, e))
                            log("   %s round %d: ERROR %s" % (p, r + 1, e))
                        per.setdefault(p, []).append(res)
                        if res is not None:
                            log("   %s round %d: %s" % (p, r + 1, short(res)))
        finally:
            for s in sets.values():
                s.stop()


def short(res):
    return " ".join("%s=%.4g" % (k, v) if isinstance(v, float) else
                    "%s=%s" % (k, v) for k, v in res.items())


def run_all(b, cfg, sink_port, echo_port, hard):
    f, skip = b.fig, cfg.skip
    if "bulk" not in skip:
        b.group("plain", sink_port, [("bulk", f.bulk)])
    if "handshake" not in skip:
        b.group("plain", sink_port, [("handshake", f.handshake)])
        if "mtls" not in skip:
            b.group("mtls", sink_port,
                    [("mtls", lambda s: f.handshake(s, mtls=True))])
    jobs = []
    if "resume" not in skip:
        jobs += [("resume" + v, lambda s, v=v: f.resume(s, v))
                 for v in cfg.resume_versions]
    if "firstbyte" not in skip:
        jobs += [("firstbyte%s-%s" % (v, m),
                  lambda s, v=v, m=m: f.firstbyte(s, v, m))
                 for v in cfg.firstbyte_versions
                 for m in ("full", "resumed")]
    if jobs:
        b.group("resume", echo_port, jobs)
    if "idle" not in skip:
        for n in cfg.idle:
            jobs = [("idle%d" % n, lambda s, n=n: f.idle(s, n))]
            if "idle-resumed" not in skip and n in cfg.idle_resumed:
                jobs.append(("idle%d-resumed" % n,
                             lambda s, n=n: f.idle(s, n, "1.3")))
            b.group("resume", sink_port, jobs,
                    processes=processes_for(n, hard), runs=cfg.idle_runs,
                    fresh=True)
        for n in cfg.idle_w2:
            if "tsgate" in b.peers:
                b.group("resume", sink_port,
                        [("idle%dw2" % n, lambda s, n=n: f.idle(s, n))],
                        runs=cfg.idle_runs, peers=["tsgate"], workers=2,
                        fresh=True)


def metrics(cfg, hard):
    m = [
        Metric("TLS bulk: server CPU s/GiB", "bulk", "cpu_s_per_gib", ".3f"),
        Metric("TLS bulk: wall MB/s", "bulk", "mb_per_s", ".0f", False),
        Metric("full handshake (TLS 1.3, plain mode): server CPU us",
               "handshake", "cpu_us", ".0f"),
        Metric("full handshake: per s (wall)", "handshake", "per_s", ".0f",
               False),
        Metric("mTLS handshake: server CPU us", "mtls", "cpu_us", ".0f"),
        Metric("mTLS handshake: per s (wall)", "mtls", "per_s", ".0f",
               False),
    ]
    for v in cfg.resume_versions:
        fig = "resume" + v
        m += [Metric("TLS %s full handshake, echo: server CPU us" % v, fig,
                     "full_cpu_us", ".0f"),
              Metric("TLS %s resumed handshake, echo: server CPU us" % v,
                     fig, "resumed_cpu_us", ".0f"),
              Metric("TLS %s resumed / full server CPU" % v, fig,
                     "resumed_over_full", ".2f")]
    for v in cfg.firstbyte_versions:
        for mode in ("full", "resumed"):
            fig = "firstbyte%s-%s" % (v, mode)
            what = "TLS %s %s, Nagle-on client" % (v, mode)
            m += [Metric("%s: handshake end -> first reply, median ms" % what,
                         fig, "after_hs_ms_p50", ".2f"),
                  Metric("%s: handshake end -> first reply, p99 ms" % what,
                         fig, "after_hs_ms_p99", ".2f"),
                  Metric("%s: connect -> first reply, median ms" % what,
                         fig, "connect_ms_p50", ".2f"),
                  Metric("%s: connect -> first reply, p99 ms" % what,
                         fig, "connect_ms_p99", ".2f")]
    for n in cfg.idle:
        k = processes_for(n, hard)
        procs = "" if k == 1 else "; %d processes per server" % k
        m += [Metric("PSS KiB per idle conn (%d, full%s)" % (n, procs),
                     "idle%d" % n, "pss_kib_per_conn", ".1f"),
              Metric("PSS KiB per idle conn (%d, resumed TLS 1.3%s)" %
                     (n, procs), "idle%d-resumed" % n, "pss_kib_per_conn",
                     ".1f")]
    for n in cfg.idle_w2:
        m.append(Metric("PSS KiB per idle conn (%d; tsgate workers: 2)" % n,
                        "idle%dw2" % n, "pss_kib_per_conn", ".1f",
                        lead=False))
    counts = [("TLS %s reconnections resumed" % v, "resume" + v)
              for v in cfg.resume_versions]
    counts += [("TLS %s first-byte connections resumed" % v,
                "firstbyte%s-resumed" % v) for v in cfg.firstbyte_versions]
    counts += [("idle connections resumed (%d)" % n, "idle%d-resumed" % n)
               for n in cfg.idle]
    return m, counts


def print_gss(gss):
    print()
    print("| GSSAPI (enctype of the test KDC: aes256-cts-hmac-sha1-96,"
          " chunk %d) | tsgate | raw | tsgate/raw | knc |" % gss["gss_chunk"])
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
             gss["raw_cpu_s_per_gib"], gss["raw_cpu_s_per_gib"] / both))
    print("| contexts/s (cached service ticket; raw = both ends in one "
          "thread) | %.0f | %.0f | %.2f | not in Debian |"
          % (gss["tsgate_ctx_per_s"], gss["raw_ctx_per_s"],
             gss["tsgate_ctx_per_s"] / gss["raw_ctx_per_s"]))
    print("| acceptor CPU us per context (tsgate server) | %.0f | - | - |"
          " - |" % gss["tsgate_ctx_cpu_us"])


def start_backend(mode):
    port = free_port()
    p = subprocess.Popen([CLIENT, mode, str(port)], stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    if p.stdout.readline().strip() != "ready":
        p.kill()
        raise RuntimeError("%s backend did not start" % mode)
    return p, port


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def main():
    for p in (TSGATE, CLIENT):
        if not os.access(p, os.X_OK):
            log("bench_gateway: %s not built" % p)
            return 1
    cfg = Settings(os.environ)
    hard = raise_nofile()
    tsgates = {"tsgate": TSGATE}
    for alt in cfg.tsgate_alt:
        name, _, path = alt.partition("=")
        if not is_tsgate(name) or not os.access(path, os.X_OK):
            log("bench_gateway: BENCH_TSGATE_ALT: %s?" % alt)
            return 1
        tsgates[name] = os.path.abspath(path)
    peers = [p for p in cfg.peers if p in tsgates or shutil.which(EXE[p])]
    if "tsgate" in peers:
        i = peers.index("tsgate") + 1
        peers[i:i] = [t for t in tsgates if t != "tsgate"]
    workdir = tempfile.mkdtemp(prefix="tsgate-bench-")
    load0 = loadavg()
    backends = []
    gss = None
    try:
        sink, sink_port = start_backend("sink")
        backends.append(sink)
        echo, echo_port = start_backend("echo")
        backends.append(echo)
        pki = PKI(workdir)
        b = Bench(cfg, peers, Figures(CLIENT, pki, cfg),
                  Peers(tsgates, pki, workdir))
        resumption_key = {t: b.servers.tsgate_has_resumption_switch(t)
                          for t in tsgates}
        run_all(b, cfg, sink_port, echo_port, hard)
        if "gss" not in cfg.skip and os.access(GSS, os.X_OK) and os.access(
                TT_KDC, os.X_OK):
            log("== gssapi")
            gss = bench_gss(TSGATE, GSS, TT_KDC, cfg.runs, cfg.bytes,
                            cfg.gss_ctx, workdir, sink_port)
            log("   %s" % gss)
    finally:
        for p in backends:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    load1 = loadavg()

    ms, counts = metrics(cfg, hard)
    print()
    print("Gateway benchmarks: %d rounds (idle: %d) interleaving %s; %s B"
          " bulk, %d full and %d resumable handshakes, %d first-byte"
          " connections per round; load average before %s, after %s"
          % (cfg.runs, cfg.idle_runs, ", ".join(peers), cfg.bytes,
             cfg.handshakes, cfg.resume_handshakes, cfg.firstbyte,
             " ".join(load0), " ".join(load1)))
    print("Cells: median (min-max) over the rounds. Lead: best peer / "
          "tsgate for costs, tsgate / best peer for rates, per round (> 1:"
          " tsgate better).")
    print()
    for line in table(ms, counts, b.rounds, peers):
        print(line)
    if gss:
        print_gss(gss)
    write_json(cfg.json, {"settings": cfg.doc(), "peers": peers,
                          "rounds": b.rounds, "errors": b.errors,
                          "gss": gss, "load": [load0, load1],
                          "nofile_hard": hard,
                          "tsgate_session_resumption_key": resumption_key})
    write_csv(cfg.csv, b.rounds)
    print()
    print("Raw rounds: %s, %s" % (cfg.json, cfg.csv))
    for e in b.errors:
        print("ERROR: %s" % e)
    return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
