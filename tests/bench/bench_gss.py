# SPDX-License-Identifier: MIT
"""tsgate's GSSAPI tunnel against the raw gss_wrap+gss_unwrap rate
(bench_gateway.py's GSSAPI part, unchanged since run 2): a throw-away KDC
(tt-kdc), tsgate (accept: plain, connect: gssapi) -> tsgate (accept:
gssapi) -> sink, and bench_gateway_gss for the raw figures."""

import os
import signal
import subprocess
import time
from statistics import median

from bench_servers import Server, cpu_seconds, free_port, run


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            if line.startswith("export "):
                k, v = line[len("export "):].rstrip("\n").split("=", 1)
                env[k] = v.strip("'")
    return env


def bench_gss(tsgate, gss, tt_kdc, runs, nbytes, gss_ctx, workdir, sink_port):
    envf = os.path.join(workdir, "kdc.env")
    kdc = subprocess.Popen([tt_kdc], stdout=open(envf, "w"),
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
        for _ in range(runs):
            out = run([gss, "raw", target, str(nbytes)], env=env).split()
            raw.append(nbytes / float(out[0]) / 1e6)
            res["gss_chunk"] = int(out[1])
            rawcpu.append(float(out[2]) / (nbytes / (1 << 30)))
        res["raw_mb_per_s"] = median(raw)
        res["raw_cpu_s_per_gib"] = median(rawcpu)
        ctx = []
        for _ in range(runs):
            out = run([gss, "ctx", target, str(gss_ctx)], env=env)
            ctx.append(gss_ctx / float(out.split()[0]))
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
            srv = Server("tsgate-gss-server", [tsgate, "--config", scfg],
                         sport, workdir)
            servers.append(srv)
            cli = Server("tsgate-gss-client", [tsgate, "--config", ccfg],
                         cport, workdir)
            servers.append(cli)
        finally:
            os.environ.clear()
            os.environ.update(old)
        tun, cpu_s, cpu_c = [], [], []
        for _ in range(runs):
            ps, pc = srv.pids(), cli.pids()
            s0, k0 = cpu_seconds(ps), cpu_seconds(pc)
            out = run([gss, "plain", str(cport), str(nbytes)], env=env)
            time.sleep(0.1)
            tun.append(nbytes / float(out.split()[0]) / 1e6)
            gib = nbytes / (1 << 30)
            cpu_s.append((cpu_seconds(ps) - s0) / gib)
            cpu_c.append((cpu_seconds(pc) - k0) / gib)
        res["tunnel_mb_per_s"] = median(tun)
        res["tunnel_server_cpu_s_per_gib"] = median(cpu_s)
        res["tunnel_client_cpu_s_per_gib"] = median(cpu_c)
        est, est_cpu = [], []
        run([gss, "connect", str(sport), target, "10"], env=env)
        for _ in range(runs):
            ps = srv.pids()
            s0 = cpu_seconds(ps)
            out = run([gss, "connect", str(sport), target, str(gss_ctx)],
                      env=env)
            time.sleep(0.2)
            est.append(gss_ctx / float(out.split()[0]))
            est_cpu.append((cpu_seconds(ps) - s0) / gss_ctx * 1e6)
        res["tsgate_ctx_per_s"] = median(est)
        res["tsgate_ctx_cpu_us"] = median(est_cpu)
    finally:
        for s in servers:
            s.stop()
        os.kill(kdc.pid, signal.SIGTERM)
        kdc.wait(20)
    return res
