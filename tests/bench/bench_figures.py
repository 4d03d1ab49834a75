# SPDX-License-Identifier: MIT
"""One round of one figure on one server (bench_gateway.py interleaves
the rounds: tsgate, peer 1, peer 2, peer 3, tsgate, ...). Each function
takes the ServerSet and returns a dict of the round's figures; the CPU
figures are the server's own utime+stime over the work."""

import math
import statistics
import subprocess
import time

from bench_servers import cpu_seconds, pss_kib, run, socket_fds, wait_for


class Figures:
    def __init__(self, client, pki, cfg):
        self.client = client
        self.pki = pki
        self.cfg = cfg  # the BENCH_* settings (bench_gateway.Settings)

    def _cpu_over(self, srv, argv, settle):
        pids = srv.pids()
        c0 = cpu_seconds(pids)
        out = run(argv)
        time.sleep(settle)
        return cpu_seconds(pids) - c0, out

    def bulk(self, srv):
        n = self.cfg.bytes
        cpu, out = self._cpu_over(
            srv, [self.client, "bulk", str(srv.port), str(n)], 0.1)
        gib = n / (1 << 30)
        return {"cpu_s_per_gib": cpu / gib,
                "mb_per_s": n / float(out.split()[0]) / 1e6}

    def handshake(self, srv, mtls=False):
        n = self.cfg.handshakes
        extra = [self.pki.client_crt, self.pki.client_key] if mtls else []
        cpu, out = self._cpu_over(
            srv, [self.client, "handshake", str(srv.port), str(n)] + extra,
            0.2)
        return {"cpu_us": cpu / n * 1e6,
                "per_s": n / float(out.split()[0])}

    def resume(self, srv, version):
        """Full and resumed handshakes (echo backend), one after the
        other on the same server: CPU per handshake of each, their ratio
        and how many reconnections resumed."""
        n = self.cfg.resume_handshakes
        res = {}
        for mode in ("full", "resumed"):
            cpu, out = self._cpu_over(
                srv, [self.client, "resume", str(srv.port), str(n),
                      version, mode], 0.2)
            secs, resumed, offered = out.split()
            res[mode + "_cpu_us"] = cpu / n * 1e6
            res[mode + "_per_s"] = n / float(secs)
            if mode == "resumed":
                res["resumed"] = int(resumed)
                res["offered"] = int(offered)
        res["resumed_over_full"] = (res["resumed_cpu_us"] / res["full_cpu_us"]
                                    if res["full_cpu_us"] else None)
        return res

    def firstbyte(self, srv, version, mode):
        """Nagle-on client: handshake's end -> first reply byte, and
        connect -> first reply byte, in ms."""
        n = self.cfg.firstbyte
        out = run([self.client, "firstbyte", str(srv.port), str(n), version,
                   mode, str(self.cfg.firstbyte_req)])
        rows = [line.split() for line in out.splitlines() if line.strip()]
        after = sorted(float(r[0]) / 1000 for r in rows)
        total = sorted(float(r[1]) / 1000 for r in rows)
        return {"after_hs_ms_p50": statistics.median(after),
                "after_hs_ms_p99": pct(after, 99),
                "connect_ms_p50": statistics.median(total),
                "connect_ms_p99": pct(total, 99),
                "resumed": sum(int(r[2]) for r in rows), "n": len(rows)}

    def idle(self, srv, n, version=None):
        """PSS per idle connection of all the server's processes; version
        set: every connection resumes (a session per process)."""
        # measured when the sockets say the server is where it should be,
        # not after a pause: its listeners only, then two sockets per
        # idle connection (client and backend), then its listeners again
        quiet = socket_fds(srv.pids())
        run([self.client, "handshake", str(srv.port), "20"])  # warm up
        wait_for(lambda: socket_fds(srv.pids()) <= quiet, 60)
        base = pss_kib(srv.pids())
        argv = [self.client, "idle", ",".join(map(str, srv.ports)), str(n)]
        if version:
            argv += ["resume", version]
        cl = subprocess.Popen(argv, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            line = cl.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError("idle client: %s" %
                                   cl.stderr.read()[-500:])
            connected = wait_for(
                lambda: socket_fds(srv.pids()) >= quiet + 2 * n, 120)
            loaded = pss_kib(srv.pids())
        finally:
            cl.stdin.close()
            try:
                cl.wait(120)
            except subprocess.TimeoutExpired:
                cl.kill()
                cl.wait()
        wait_for(lambda: socket_fds(srv.pids()) <= quiet, 60)
        return {"pss_kib_per_conn": (loaded - base) / n, "base_kib": base,
                "loaded_kib": loaded, "resumed": int(line[1]), "n": n,
                "processes": len(srv.ports),
                "all_backends_connected": connected}


def pct(sorted_xs, p):
    """The p-th percentile by nearest rank."""
    if not sorted_xs:
        return None
    k = max(0, min(len(sorted_xs) - 1,
                   math.ceil(p / 100.0 * len(sorted_xs)) - 1))
    return sorted_xs[k]
