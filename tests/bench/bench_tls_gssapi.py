#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tls-gssapi against the gssapi tunnel and against plain TLS, in one run
(issue 19, item 3). Run by scripts/bench (BENCH_TLS_GSSAPI=0 skips it).

    bench_tls_gssapi.py BUILDDIR

For each mode (tls, gssapi, tls-gssapi) a pair of tsgates on loopback:
a client-mode tsgate (accept: plain, connect: MODE) and a server-mode
tsgate (accept: MODE) forwarding to a sink, with a throw-away MIT KDC
(tests/tt-kdc, aes256-cts-hmac-sha1-96) and the ECDSA P-256 PKI of
bench_gateway.py (TLS 1.3, the default priority). Figures, medians of
BENCH_RUNS:

  bulk      BENCH_BYTES uploaded through the pair (plain TCP into the
            client tsgate, half-close, wait for the end): wall MB/s and
            CPU seconds per GiB of each tsgate
  set-ups   BENCH_TG_SETUPS connections one after the other, each a full
            tunnel set-up (TCP, the mode's handshakes, the sink's
            connect) and an empty exchange: per second, and the server
            tsgate's CPU per set-up

Environment: BENCH_BYTES (default 1 GiB), BENCH_RUNS (3),
BENCH_TG_SETUPS (500), BENCH_TG_MODES (a subset of "tls gssapi
tls-gssapi"), BENCH_JSON (also write the results there).
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gss  # noqa: E402
import bench_servers as bs  # noqa: E402


class _Bench:
    """The build's programs and the knobs (names as bench_gateway.py)."""
    BUILDDIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                               else "build-bench")
    TSGATE = os.path.join(BUILDDIR, "gateway", "tsgate")
    CLIENT = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_client")
    GSS = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_gss")
    TT_KDC = os.path.join(BUILDDIR, "tests", "tt-kdc")
    BYTES = int(os.environ.get("BENCH_BYTES", str(1 << 30)))
    RUNS = int(os.environ.get("BENCH_RUNS", "3"))
    free_port = staticmethod(bs.free_port)
    cpu_seconds = staticmethod(bs.cpu_seconds)
    run = staticmethod(bs.run)
    PKI = bs.PKI
    Server = bs.Server
    read_env_file = staticmethod(bench_gss.read_env_file)

    @staticmethod
    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    @staticmethod
    def median(xs):
        return statistics.median(xs) if xs else None

    @staticmethod
    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    @staticmethod
    def ratio(ours, theirs):
        if ours is None or theirs in (None, 0):
            return "-"
        return "%.2f" % (ours / theirs)


bg = _Bench

SETUPS = int(os.environ.get("BENCH_TG_SETUPS", "500"))
MODES = tuple(os.environ.get("BENCH_TG_MODES",
                             "tls gssapi tls-gssapi").split())


def server_cfg(mode, port, sink_port, pki, kenv):
    blocks = ""
    if mode in ("tls", "tls-gssapi"):
        blocks += "    tls: {cert: \"%s\", key: \"%s\"}\n" % (pki.crt, pki.key)
    if mode in ("gssapi", "tls-gssapi"):
        blocks += "    gssapi: {keytab: \"%s\"}\n" % kenv[
            "TT_KDC_SERVICE_KEYTAB"]
    return ("log: {level: error}\nlisteners:\n  - name: in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n    accept: %s\n%s"
            "    routes:\n      - backend: \"tcp://127.0.0.1:%d\"\n"
            % (port, mode, blocks, sink_port))


def client_cfg(mode, port, server_port, pki, kenv):
    blocks = ""
    if mode in ("tls", "tls-gssapi"):
        blocks += ("        tls: {ca: \"%s\", verify_name: localhost}\n"
                   % pki.ca)
    if mode in ("gssapi", "tls-gssapi"):
        blocks += ("        gssapi: {target: \"host@localhost\", "
                   "ccache: \"%s\"}\n" % kenv["TT_KDC_ALICE_CCACHE"])
    return ("log: {level: error}\nlisteners:\n  - name: plain\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n    accept: plain\n"
            "    routes:\n      - backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: %s\n%s" % (port, server_port, mode, blocks))


def start_pair(mode, workdir, sink_port, pki, kenv):
    sport, cport = bg.free_port(), bg.free_port()
    cfgs = {}
    for side, text in (("server", server_cfg(mode, sport, sink_port, pki,
                                             kenv)),
                       ("client", client_cfg(mode, cport, sport, pki,
                                             kenv))):
        cfgs[side] = os.path.join(workdir, "%s-%s.yaml" % (mode, side))
        with open(cfgs[side], "w") as f:
            f.write(text)
    old = dict(os.environ)
    os.environ.update(kenv)
    try:
        srv = bg.Server("%s-server" % mode,
                        [bg.TSGATE, "--config", cfgs["server"]], sport,
                        workdir)
        try:
            cli = bg.Server("%s-client" % mode,
                            [bg.TSGATE, "--config", cfgs["client"]], cport,
                            workdir)
        except Exception:
            srv.stop()
            raise
    finally:
        os.environ.clear()
        os.environ.update(old)
    return srv, cli


def one_setup(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    s.close()


def bench_mode(mode, workdir, sink_port, pki, kenv, env):
    srv, cli = start_pair(mode, workdir, sink_port, pki, kenv)
    res = {}
    try:
        mbs, cpu_s, cpu_c = [], [], []
        for _ in range(bg.RUNS):
            ps, pc = srv.pids(), cli.pids()
            s0, c0 = bg.cpu_seconds(ps), bg.cpu_seconds(pc)
            out = bg.run([bg.GSS, "plain", str(cli.port), str(bg.BYTES)],
                         env=env)
            time.sleep(0.1)
            gib = bg.BYTES / (1 << 30)
            mbs.append(bg.BYTES / float(out.split()[0]) / 1e6)
            cpu_s.append((bg.cpu_seconds(ps) - s0) / gib)
            cpu_c.append((bg.cpu_seconds(pc) - c0) / gib)
        res["mb_per_s"] = bg.median(mbs)
        res["server_cpu_s_per_gib"] = bg.median(cpu_s)
        res["client_cpu_s_per_gib"] = bg.median(cpu_c)
        for _ in range(10):
            one_setup(cli.port)  # warm up (service ticket cached)
        rate, cpu = [], []
        for _ in range(bg.RUNS):
            ps = srv.pids()
            s0 = bg.cpu_seconds(ps)
            t0 = time.monotonic()
            for _ in range(SETUPS):
                one_setup(cli.port)
            secs = time.monotonic() - t0
            time.sleep(0.2)
            rate.append(SETUPS / secs)
            cpu.append((bg.cpu_seconds(ps) - s0) / SETUPS * 1e6)
        res["setups_per_s"] = bg.median(rate)
        res["server_cpu_us_per_setup"] = bg.median(cpu)
    finally:
        cli.stop()
        srv.stop()
    return res


def main():
    for p in (bg.TSGATE, bg.CLIENT, bg.GSS, bg.TT_KDC):
        if not os.access(p, os.X_OK):
            bg.log("bench_tls_gssapi: %s not built" % p)
            return 1
    workdir = tempfile.mkdtemp(prefix="tsgate-bench-tg-")
    envf = os.path.join(workdir, "kdc.env")
    kdc = subprocess.Popen([bg.TT_KDC], stdout=open(envf, "w"),
                           stderr=subprocess.DEVNULL, start_new_session=True)
    sink_port = bg.free_port()
    sink = subprocess.Popen([bg.CLIENT, "sink", str(sink_port)],
                            stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    results = {}
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[:3]
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("sink did not start")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            with open(envf) as f:
                if "# ready" in f.read():
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("tt-kdc did not start")
        kenv = bg.read_env_file(envf)
        env = dict(os.environ)
        env.update(kenv)
        pki = bg.PKI(workdir)
        for mode in MODES:
            bg.log("== %s" % mode)
            results[mode] = bench_mode(mode, workdir, sink_port, pki, kenv,
                                       env)
            bg.log("   %s" % results[mode])
    finally:
        os.kill(sink.pid, signal.SIGTERM)
        sink.wait(10)
        os.kill(kdc.pid, signal.SIGTERM)
        kdc.wait(20)
        shutil.rmtree(workdir, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[:3]

    tg = results.get("tls-gssapi", {})
    gss = results.get("gssapi", {})
    tls = results.get("tls", {})
    print()
    print("tls-gssapi benchmark: %d B bulk, %d set-ups, %d runs (medians);"
          " load average before %s, after %s"
          % (bg.BYTES, SETUPS, bg.RUNS, " ".join(load0), " ".join(load1)))
    print()
    print("| figure | " + " | ".join(MODES) +
          " | tls-gssapi/gssapi | tls-gssapi/tls |")
    print("|---|---|---|---|---|---|")
    rows = [("bulk MB/s (client tsgate -> server tsgate -> sink)",
             "mb_per_s", ".0f"),
            ("server tsgate CPU s/GiB", "server_cpu_s_per_gib", ".2f"),
            ("client tsgate CPU s/GiB", "client_cpu_s_per_gib", ".2f"),
            ("set-ups/s (one after the other)", "setups_per_s", ".0f"),
            ("server tsgate CPU us per set-up", "server_cpu_us_per_setup",
             ".0f")]
    for label, key, spec in rows:
        cells = [bg.fmt(results[m].get(key), spec) for m in MODES]
        print("| %s | %s | %s | %s |" % (
            label, " | ".join(cells), bg.ratio(tg.get(key), gss.get(key)),
            bg.ratio(tg.get(key), tls.get(key))))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"results": results, "bytes": bg.BYTES,
                       "setups": SETUPS, "runs": bg.RUNS,
                       "load": [load0, load1]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
