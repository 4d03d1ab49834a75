#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a tsgate worker's CPU goes per full and per resumed TLS handshake
(issue 15), counted by callgrind: exact where CPU time on a shared machine
is not.

    tests/bench/callgrind_resume.py [BUILDDIR] [N] [VERSIONS]

For each TLS version (default "1.3 1.2") and each kind (full, resumed) it
runs one tsgate (workers: 1, the benchmark's "resume" listener: tickets on,
an echo backend) under valgrind --tool=callgrind --collect-systime=nsec
twice, once for N and once for 2N handshakes made by bench_gateway_client
resume (handshake, one byte echoed, close), and prints the difference / N:
start-up, the first (full) handshake of a resumed run and shutdown cancel
out. Tables: instructions per handshake by object (self cost), by the
functions that make up a handshake (inclusive cost), and the system calls.

BENCH_CALLGRIND_TOP=K also prints the K functions with the largest
inclusive cost per handshake (to find new names for the groups).
BENCH_CALLGRIND_NATIVE=M first runs tsgate natively for M handshakes of
each kind and prints its user and system CPU per handshake (noisy on a
busy machine; the split between the two is the point).
BENCH_CALLGRIND_KEEP=DIR keeps the callgrind.out files there.
The callgrind.out files name GnuTLS's internal functions only by address
(Debian ships no symbols in libgnutls30): the groups use its exported
functions and nettle's.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_servers import PKI, Peers, free_port, wait_port  # noqa: E402

# Inclusive groups: a label and the functions whose inclusive cost it sums
# (chosen so that no function of a group calls another of the same group).
GROUPS = [
    ("X25519 (key share, both sides of ECDH)",
     ["nettle_curve25519_mul_g", "nettle_curve25519_mul"]),
    ("ECDSA P-256 sign (CertificateVerify / ServerKeyExchange)",
     ["gnutls_privkey_sign_hash2", "gnutls_privkey_sign_data2",
      "_gnutls_privkey_sign_raw_data", "privkey_sign_and_hash_data",
      "_gnutls_pk_sign"]),
    ("HKDF (nettle_hkdf_*: TLS 1.3 key schedule, binder, tickets)",
     ["nettle_hkdf_expand", "nettle_hkdf_extract"]),
    ("TLS 1.2 PRF (master secret, keys, Finished)",
     ["_gnutls_prf_raw", "_gnutls_PRF"]),
    ("all SHA-256 (nettle_sha256_digest, _update)",
     ["nettle_sha256_digest", "nettle_sha256_update"]),
    ("GnuTLS wiping its MAC and hash contexts (gnutls_memset, "
     "explicit_bzero)", ["gnutls_memset", "__explicit_bzero_chk"]),
    ("TLS 1.3 tickets sent (gnutls_session_ticket_send)",
     ["gnutls_session_ticket_send"]),
    ("our ticket key per SNI entry (tsgate)",
     ["tstream_tls_resume_server_cred"]),
    ("gnutls_init", ["gnutls_init"]),
    ("gnutls_deinit", ["gnutls_deinit"]),
    ("gnutls_priority_set", ["gnutls_priority_set"]),
    ("gnutls_credentials_set", ["gnutls_credentials_set"]),
    ("gnutls_handshake (all of it)", ["gnutls_handshake"]),
    ("gnutls_bye", ["gnutls_bye"]),
    ("record layer after the handshake (gnutls_record_*)",
     ["gnutls_record_recv", "gnutls_record_send2", "gnutls_record_send"]),
    ("logging (tsgate_conn_log, tsgate_log_*)",
     ["tsgate_conn_log", "tsgate_conn_debug", "tsgate_log_msg",
      "tsgate_log_kv_emit"]),
    ("metrics (tsgate_metrics*, self)", []),  # prefix match below
    ("everything run from fd events (tevent_common_invoke_fd_handler)",
     ["tevent_common_invoke_fd_handler"]),
]
PREFIX_GROUPS = {"metrics (tsgate_metrics*, self)": "tsgate_metrics"}

OBJECTS = [("libgnutls", "GnuTLS"), ("libnettle", "nettle (hashes, AES)"),
           ("libhogweed", "hogweed (X25519, ECDSA)"), ("libgmp", "GMP"),
           ("libc.so", "libc (malloc, memcpy, syscall wrappers)"),
           ("libtalloc", "talloc"), ("libtevent", "tevent"),
           ("libtasn1", "libtasn1"), ("libp11-kit", "p11-kit"),
           ("ld-linux", "ld.so"), ("libtsocket", "tsocket (ours)"),
           ("libtstream", "tstream_tls (ours)"),
           ("tsgate", "tsgate daemon (ours: gateway/)")]


def parse(path):
    """callgrind.out -> (events, self[(ob, fn)], incl[fn]) of all events."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl",
            "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn"}
    events = []
    selfc = collections.defaultdict(lambda: None)
    incl = {}
    ob = fn = cfn = None
    after_calls = False
    comp = re.compile(r"\((\d+)\)(?: (.*))?")

    def name(k, v):
        m = comp.match(v)
        if not m:
            return v
        if m.group(2) is not None:
            names[kind[k]][m.group(1)] = m.group(2)
            return m.group(2)
        return names[kind[k]][m.group(1)]

    def add(d, key, vals):
        cur = d.get(key)
        if cur is None:
            d[key] = list(vals)
        else:
            for i, v in enumerate(vals):
                cur[i] += v

    selfc = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                vals += [0] * (len(events) - len(vals))
                if after_calls:
                    if cfn != fn:
                        add(incl, fn, vals)
                    after_calls = False
                else:
                    add(selfc, (ob, fn), vals)
                    add(incl, fn, vals)
                continue
            key, _, val = line.partition("=")
            if key == "events":
                pass
            if line.startswith("events:"):
                events = line.split()[1:]
            elif key == "ob":
                ob = name("ob", val)
            elif key == "fn":
                fn = name("fn", val)
            elif key == "cfn":
                cfn = name("cfn", val)
            elif key in ("fl", "fi", "fe", "cfi", "cfl", "cob"):
                name(key, val)
            elif key == "calls":
                after_calls = True
    return events, selfc, incl


def run_tsgate(tsgate, peers, echo_port, client, version, kind, n, out):
    port = free_port()
    cfg = out + ".yaml"
    with open(cfg, "w") as f:
        f.write(peers._tsgate_yaml("resume", port, echo_port, 1, False))
    p = subprocess.Popen(["valgrind", "--tool=callgrind",
                          "--collect-systime=nsec",
                          "--callgrind-out-file=" + out, tsgate,
                          "--config", cfg],
                         stdout=subprocess.DEVNULL,
                         stderr=open(out + ".log", "w"))
    try:
        if not wait_port(port, 60):
            raise RuntimeError("tsgate under callgrind did not listen")
        r = subprocess.run([client, "resume", str(port), str(n), version,
                            kind], stdout=subprocess.PIPE, text=True,
                           check=True, timeout=600)
        secs, resumed, offered = r.stdout.split()
        if kind == "resumed" and int(resumed) != int(offered):
            raise RuntimeError("%s of %s resumed" % (resumed, offered))
    finally:
        p.terminate()
        p.wait(120)
    return parse(out)


def native_cpu(tsgate, peers, echo_port, client, version, kind, n, tmp):
    """User and system CPU µs per handshake of tsgate run natively (one
    warm-up run of n/10 handshakes first)."""
    port = free_port()
    cfg = os.path.join(tmp, "native-%s-%s.yaml" % (version, kind))
    with open(cfg, "w") as f:
        f.write(peers._tsgate_yaml("resume", port, echo_port, 1, False))
    p = subprocess.Popen([tsgate, "--config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port, 30):
            raise RuntimeError("tsgate did not listen")
        argv = [client, "resume", str(port)]
        subprocess.run(argv + [str(max(n // 10, 1)), version, kind],
                       stdout=subprocess.DEVNULL, check=True)
        u0, s0 = user_sys(p.pid)
        subprocess.run(argv + [str(n), version, kind],
                       stdout=subprocess.DEVNULL, check=True, timeout=600)
        u1, s1 = user_sys(p.pid)
    finally:
        p.terminate()
        p.wait(30)
    return (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6


def user_sys(pid):
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) / tick, int(fields[12]) / tick


def diff(a, b, n):
    """(b - a) / n for each key of either."""
    keys = set(a) | set(b)
    res = {}
    for k in keys:
        va = a.get(k) or [0] * len(next(iter(b.values())))
        vb = b.get(k) or [0] * len(va)
        res[k] = [(y - x) / n for x, y in zip(va, vb)]
    return res


def obj_label(ob):
    base = os.path.basename(ob or "")
    for key, label in OBJECTS:
        if base.startswith(key):
            return label
    return "other (%s)" % base


def measure(tsgate, peers, echo_port, client, version, kind, n, tmp):
    keep = os.environ.get("BENCH_CALLGRIND_KEEP") or tmp
    os.makedirs(keep, exist_ok=True)
    base = os.path.join(keep, "callgrind-%s-%s" % (version, kind))
    ev, s1, i1 = run_tsgate(tsgate, peers, echo_port, client, version, kind,
                            n, base + "-n.out")
    _, s2, i2 = run_tsgate(tsgate, peers, echo_port, client, version, kind,
                           2 * n, base + "-2n.out")
    return ev, diff(s1, s2, n), diff(i1, i2, n)


def main():
    builddir = sys.argv[1] if len(sys.argv) > 1 else "build"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    versions = (sys.argv[3] if len(sys.argv) > 3 else "1.3 1.2").split()
    tsgate = os.path.join(builddir, "gateway", "tsgate")
    client = os.path.join(builddir, "tests", "bench", "bench_gateway_client")
    top = int(os.environ.get("BENCH_CALLGRIND_TOP", "0"))
    with tempfile.TemporaryDirectory(prefix="tsgate-cg-resume-") as tmp:
        pki = PKI(tmp)
        peers = Peers({"tsgate": tsgate}, pki, tmp)
        echo_port = free_port()
        echo = subprocess.Popen([client, "echo", str(echo_port)])
        try:
            if not wait_port(echo_port):
                raise RuntimeError("echo backend did not listen")
            results = {}
            native = int(os.environ.get("BENCH_CALLGRIND_NATIVE", "0"))
            for v in versions if native else []:
                for kind in ("full", "resumed"):
                    u, sy = native_cpu(tsgate, peers, echo_port, client, v,
                                       kind, native, tmp)
                    print("native TLS %s %s: user %.0f µs, system %.0f µs "
                          "per handshake (%d handshakes)" %
                          (v, kind, u, sy, native), flush=True)
            for v in versions:
                for kind in ("full", "resumed"):
                    results[(v, kind)] = measure(tsgate, peers, echo_port,
                                                 client, v, kind, n, tmp)
                    print("measured TLS %s %s" % (v, kind), file=sys.stderr,
                          flush=True)
        finally:
            echo.terminate()
            echo.wait(10)
    report(results, versions, n, top)


def report(results, versions, n, top):
    cols = [(v, k) for v in versions for k in ("full", "resumed")]
    head = " | ".join("TLS %s %s" % c for c in cols)
    sep = "|---" * (len(cols) + 1) + "|"
    ev = results[cols[0]][0]
    # sysCpuTime: CPU time in the kernel (sysTime also counts the waits)
    ir, sysn, syst = (ev.index("Ir"), ev.index("sysCount"),
                      ev.index("sysCpuTime"))

    def total(c, i):
        return sum(v[i] for v in results[c][1].values())

    print("callgrind, tsgate worker, per handshake ((2N - N runs) / N, "
          "N = %d)\n" % n)
    print("| | %s |\n%s" % (head, sep))
    print("| instructions (Ir) | %s |" % " | ".join(
        "%.0f" % total(c, ir) for c in cols))
    for v in versions:
        print("| TLS %s resumed / full (Ir) | %s |" % (v, " | ".join(
            ("%.2f" % (total((v, "resumed"), ir) / total((v, "full"), ir))
             if c == (v, "resumed") else "") for c in cols)))
    print("| system calls | %s |" % " | ".join(
        "%.1f" % total(c, sysn) for c in cols))
    print("| CPU µs in system calls (under valgrind: noisy) | %s |" % " | ".join(
        "%.1f" % (total(c, syst) / 1000) for c in cols))

    print("\nSelf instructions by object, per handshake\n")
    print("| object | %s |\n%s" % (head, sep))
    by_obj = {c: collections.Counter() for c in cols}
    for c in cols:
        for (ob, fn), v in results[c][1].items():
            by_obj[c][obj_label(ob)] += v[ir]
    labels = sorted(set().union(*by_obj.values()),
                    key=lambda lab: -by_obj[cols[0]][lab])
    for lab in labels:
        if max(abs(by_obj[c][lab]) for c in cols) < 50:
            continue
        print("| %s | %s |" % (lab, " | ".join(
            "%.0f" % by_obj[c][lab] for c in cols)))

    print("\nInclusive instructions by function group, per handshake "
          "(groups overlap: gnutls_handshake holds most of the others)\n")
    print("| group | %s |\n%s" % (head, sep))
    for label, fns in GROUPS:
        vals = []
        for c in cols:
            incl = results[c][2]
            pre = PREFIX_GROUPS.get(label)
            if pre:
                # self cost: these call one another
                s = sum(v[ir] for (ob, f), v in results[c][1].items()
                        if f.startswith(pre))
            else:
                s = sum(incl[f][ir] for f in fns if f in incl)
            vals.append(s)
        print("| %s | %s |" % (label, " | ".join("%.0f" % x for x in vals)))

    print("\nSystem calls per handshake (count; CPU µs in the kernel). "
          "Under valgrind the vDSO clock calls (gettimeofday, time, "
          "clock_gettime) are system calls too.\n")
    print("| call | %s |\n%s" % (head, sep))
    sc = {c: collections.defaultdict(lambda: [0.0, 0.0]) for c in cols}
    for c in cols:
        for (ob, fn), v in results[c][1].items():
            if abs(v[sysn]) > 0.001:
                sc[c][fn][0] += v[sysn]
                sc[c][fn][1] += v[syst] / 1000
    names = sorted(set().union(*[set(sc[c]) for c in cols]),
                   key=lambda f: -sc[cols[0]][f][0])
    for f in names:
        if max(abs(sc[c][f][0]) for c in cols) < 0.05:
            continue
        print("| %s | %s |" % (f, " | ".join(
            "%.2f; %.1f" % tuple(sc[c][f]) for c in cols)))

    for c in cols[:] if top else []:
        print("\nTop %d inclusive, TLS %s %s\n" % (top, c[0], c[1]))
        incl = results[c][2]
        for f in sorted(incl, key=lambda f: -incl[f][ir])[:top]:
            print("%12.0f  %s" % (incl[f][ir], f))


if __name__ == "__main__":
    main()
