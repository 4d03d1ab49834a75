#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The deployment examples and the documentation's commands, for real.

- Every tsgate configuration embedded in etc/examples/docker-compose.yml
  (its `configs`) and in etc/examples/kubernetes/*.yaml (ConfigMaps with a
  `tsgate.yaml` key) passes `tsgate --check-config`, with the
  certificates and keytabs it names made here (openssl, ktutil) and its
  /etc/tsgate/ paths moved into a temp dir; without those files it fails.
- The TLS sidecar configurations also run: the real daemon in front of a
  plaintext backend, a TLS client through it, /healthz and /readyz with
  curl as the probes ask them.
- The manifests are valid YAML and have what a pod needs: the tsgate
  container, probes on /healthz and /readyz at the metrics port of its
  own config, runAsNonRoot and readOnlyRootFilesystem, every volume
  mounted and defined, Secrets read-only with mode 0400, every file the
  config names provided by a mount (with the Secret's key names), the
  listener ports declared; the compose file shares the app's network
  namespace and mounts the config at /etc/tsgate/tsgate.yaml.
- etc/tsgate.service passes `systemd-analyze verify` (when installed) with
  no warning and has the directives docs/operations.md promises; its
  ExecStartPre/ExecStart/ExecReload command lines run: check, start,
  checked reload by SIGHUP to $MAINPID, then SIGTERM exits 0.
- Every command line in a ```sh block of docs/*.md (and every line that
  starts like a command in a block without a language) is either run
  here or listed below with the test that runs it (or why it is run by
  hand only); a new command without one fails this test. Relative links
  of docs/*.md reach their file, and their heading when they name one.
- Every ```yaml block of docs/*.md is valid YAML; a tsgate configuration
  or fragment of one (top-level keys, a listener's `tls`/`gssapi` block, a
  `routes` list) passes `tsgate --check-config`, completed into a whole
  file where it is a fragment, with the files it names made here;
  Kubernetes fragments (probes) agree with the manifests.
"""

import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402
from test_gateway_ocsp import index_line  # noqa: E402

try:
    import yaml
except ImportError:  # scripts/deps installs python3-yaml
    yaml = None

SRC = gh.SRCDIR
EXAMPLES = os.path.join(SRC, "etc", "examples")
K8S = os.path.join(EXAMPLES, "kubernetes")
COMPOSE = os.path.join(EXAMPLES, "docker-compose.yml")
UNIT = os.path.join(SRC, "etc", "tsgate.service")


def project_version():
    with open(os.path.join(SRC, "meson.build")) as f:
        return re.search(r"version: '([^']+)'", f.read()).group(1)


# The examples pin the image to the release they were written for.
IMAGE = "tsgate:" + project_version()

# Commands shown in docs/ that this test does not run, and what runs them
# (or, for a by-hand run too long for CI, why not).
COVERED_ELSEWHERE = {
    "smbclient //127.0.0.1/share -U alice -c 'put big.iso'":
        "test_samba.py runs smbclient so through the etc/examples pair "
        "(its namespace's addresses, its throw-away user)",
    "rpcclient -U alice -c 'srvinfo; netshareenumall' "
    "ncacn_ip_tcp:127.0.0.1":
        "test_samba.py runs rpcclient so through the etc/examples pair",
    "meson test -C build gateway_faults --print-errorlogs":
        "scripts/test (integration suite, normal and ASan)",
    "TSGATE_BUILDDIR=build python3 tests/integration/test_faults.py -v":
        "the gateway_faults test of scripts/test runs this file",
    "TSGATE_IT_WRAPPER=\"valgrind --error-exitcode=1 --leak-check=full "
    "--errors-for-leak-kinds=definite "
    "--suppressions=$PWD/tests/valgrind.supp\" TSGATE_BUILDDIR=build "
    "python3 tests/integration/test_faults.py -v "
    "FaultMatrix.test_gssapi_bad_frames_after_handshake ...":
        "a by-hand valgrind run of fault cases, too slow for CI "
        "(docs/hardening.md); the same tests run in CI without valgrind",
    "LD_PRELOAD=build/tests/libtalloc_failinject.so "
    "TSGATE_FAILINJECT_RATE=50 TSGATE_FAILINJECT_SEED=1 "
    "TSGATE_FAILINJECT_ARM_FILE=/tmp/arm "
    "TSGATE_FAILINJECT_TRACE=/tmp/failures.txt "
    "build/gateway/tsgate --config my.yaml":
        "gateway_alloc_fail runs the daemon so (test_alloc_fail.py)",
    "touch /tmp/arm":
        "gateway_alloc_fail arms the shim so once the daemon is ready",
    "tests/shake.sh 2":
        "a by-hand shake of the integration suite under load (ASan build, "
        "CPU hogs), too long for CI (docs/testing.md)",
    "meson test -C build --repeat 3 --print-errorlogs gateway_ops":
        "scripts/test runs gateway_ops once; the repeat is by hand",
    "tests/bench/soak.py build 600":
        "a 10-minute soak by hand, too long for CI (docs/hardening.md)",
    "./scripts/run": "test_cli.sh runs etc/tsgate.yaml as scripts/run does",
    "cc prog.c $(pkg-config --cflags --libs tsocket)":
        "test_pkgconfig.sh builds docs/examples/*.c exactly so",
    "cc tsocket_echo.c $(pkg-config --cflags --libs tsocket)":
        "test_pkgconfig.sh builds and runs it",
    "cc tls_echo.c $(pkg-config --cflags --libs tstream-tls)":
        "test_pkgconfig.sh builds and runs it (certificates by openssl)",
    "cc gssapi_echo.c $(pkg-config --cflags --libs tstream-gssapi)":
        "test_pkgconfig.sh builds and runs it (against tt-kdc)",
    "CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=disabled "
    "-Db_sanitize=address,undefined -Db_lundef=false":
        "scripts/test step 4 (the same options)",
    "ninja -C build-fuzz": "scripts/test step 4 (scripts/build)",
    "tests/fuzz/run.sh all 30": "scripts/test step 4",
    "tests/fuzz/run.sh gssapi-data 600": "tests/fuzz/run.sh (one target)",
    "build-fuzz/tests/fuzz/fuzz-framing build-fuzz/fuzz-artifacts/"
    "framing/crash-…": "a crash file only a failing fuzz run makes",
    "FUZZ_VERBOSE=1 build-fuzz/tests/fuzz/fuzz-gssapi "
    "tests/fuzz/corpus/gssapi/*": "tests/fuzz/run.sh replays the corpus",
    "meson test -C build tsocket_oracle --print-errorlogs":
        "scripts/test (integration suite, normal and ASan)",
    "TSOCKET_ORACLE_SEEDS=40 meson test -C build tsocket_oracle":
        "the tsocket_oracle test of scripts/test, with more seeds",
    "build/tests/integration/tsocket_oracle 7 stream":
        "tsocket_oracle.py runs the program with each seed and phase",
    "python3 tests/integration/tsocket_oracle.py "
    "build/tests/integration/tsocket_oracle "
    "build/tests/integration/tsocket_oracle_samba 7 8 9":
        "the tsocket_oracle test of scripts/test runs this driver",
}


# Commands by prefix: the benchmarks are run by hand (scripts/bench), never
# in CI (docs/benchmarks.md says so).
COVERED_BY_PREFIX = (
    ("./scripts/bench", "by hand: benchmarks are not part of scripts/test"),
    ("tests/bench/", "by hand: benchmark tools (docs/benchmarks.md)"),
    ("build-bench/", "by hand: benchmark binaries (docs/benchmarks.md)"),
    ("tsgate --", "test_cli.sh: --config, --check-config, --version, "
     "--help with the real binary"),
    ("tests/fuzz/run.sh ", "scripts/test step 4 runs tests/fuzz/run.sh"),
    ("build-fuzz/", "by hand: replaying a fuzz input (docs/fuzzing.md)"),
    ("FUZZ_VERBOSE=1 build-fuzz/", "by hand: replaying a fuzz input"),
)

# In blocks without a language, lines that start like these are commands.
COMMAND_STARTS = ("tsgate ", "./scripts/", "scripts/", "meson ", "ninja ",
                  "cc ", "openssl ", "gnutls-cli ", "kubectl ", "docker ",
                  "podman ", "buildah ", "tests/", "build/", "build-",
                  "python3 ", "systemctl ", "curl ")


def sh_commands(path):
    """(line number, command) of each command in ```sh blocks of a file,
    and of lines that start like a command in blocks without a language;
    backslash continuations joined, comments and blank lines dropped."""
    out = []
    inside = None
    pending = ""
    start = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.rstrip("\n")
            if s.startswith("```"):
                tag = s[3:].strip()
                if inside is not None:
                    inside = None
                elif tag in ("sh", "bash", "shell", "console"):
                    inside = "sh"
                elif tag == "":
                    inside = "plain"
                else:
                    inside = "other"
                continue
            if inside not in ("sh", "plain"):
                continue
            if inside == "plain" and not pending and \
                    not s.strip().startswith(COMMAND_STARTS):
                continue
            if not pending:
                start = n
            part = s.strip()
            if part.endswith("\\"):
                pending += part[:-1].strip() + " "
                continue
            cmd = (pending + part).strip()
            pending = ""
            cmd = re.sub(r"\s+#.*$", "", cmd) if not cmd.startswith(
                "#") else ""
            if cmd:
                out.append((start, cmd))
    return out


def etc_paths(text):
    """Absolute /etc/tsgate/ files a config names."""
    return sorted(set(re.findall(r"/etc/tsgate/[A-Za-z0-9_./-]+", text)))


class Credentials:
    """Makes, in a temp root, the files a config names under /etc/tsgate/:
    a certificate and its key (same base name), CAs, keytabs with the
    config's principal."""

    def __init__(self, tmp):
        self.certs = gh.Certs(tmp)
        self.tmp = tmp

    def populate(self, root, text):
        for path in etc_paths(text):
            dest = os.path.join(root, path[len("/etc/tsgate/"):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if path.endswith(".keytab"):
                m = re.search(r'principal:\s*"?([^"\s]+)"?', text)
                princ = m.group(1) if m else "tsgate/localhost@EXAMPLE.COM"
                self.keytab(dest, princ)
            elif re.search(r"(^|[./])(key)$", path):
                shutil.copy(self.certs.server_key, dest)
            elif "ca" in os.path.basename(path):
                shutil.copy(self.certs.ca, dest)
            else:
                shutil.copy(self.certs.server, dest)

    @staticmethod
    def keytab(dest, principal):
        script = ("addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\n"
                  "secret\nwkt %s\nquit\n" % (principal, dest))
        subprocess.run(["ktutil"], input=script.encode(), check=True,
                       timeout=30, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def embedded_configs():
    """(where, tsgate.yaml text) of every config in the examples."""
    out = []
    with open(COMPOSE) as f:
        compose = yaml.safe_load(f)
    for name, cfg in (compose.get("configs") or {}).items():
        out.append(("docker-compose.yml configs.%s" % name, cfg["content"]))
    for fname in sorted(os.listdir(K8S)):
        with open(os.path.join(K8S, fname)) as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc.get("kind") == "ConfigMap" and \
                        "tsgate.yaml" in doc.get("data", {}):
                    out.append(("kubernetes/%s ConfigMap %s" % (
                        fname, doc["metadata"]["name"]),
                        doc["data"]["tsgate.yaml"]))
    return out


def check_config(path, env=None):
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([gh.TSGATE, "--check-config", "--config", path],
                          capture_output=True, text=True, timeout=60,
                          env=full)


class ConfigCase(gh.GatewayTestCase):
    """A temp dir with credentials and a krb5.conf that names nothing
    outside, for checking configurations."""

    def setUp(self):
        super().setUp()
        self.creds = Credentials(self.tmp)
        # No DNS and no KDC: a krb5.conf that names nothing outside.
        self.krb5conf = os.path.join(self.tmp, "krb5.conf")
        with open(self.krb5conf, "w") as f:
            f.write("[libdefaults]\n default_realm = EXAMPLE.COM\n"
                    " dns_lookup_kdc = false\n dns_lookup_realm = false\n"
                    " rdns = false\n dns_canonicalize_hostname = false\n")
        self.env = {"KRB5_CONFIG": self.krb5conf,
                    "KRB5RCACHEDIR": self.tmp}

    def rooted(self, text, root):
        return text.replace("/etc/tsgate/", root.rstrip("/") + "/")


class ExampleTest(ConfigCase):

    def test_embedded_configs_pass_check_config(self):
        configs = embedded_configs()
        self.assertGreaterEqual(len(configs), 3, configs)
        for i, (where, text) in enumerate(configs):
            with self.subTest(where):
                root = os.path.join(self.tmp, "root%d" % i)
                os.makedirs(root)
                path = os.path.join(root, "tsgate.yaml")
                with open(path, "w") as f:
                    f.write(self.rooted(text, root))
                # Before its files exist the check must fail on them...
                r = check_config(path, self.env)
                if etc_paths(text):
                    self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                    self.assertIn("No such file", r.stderr)
                # ... and pass once they are there.
                self.creds.populate(root, text)
                r = check_config(path, self.env)
                self.assertEqual(r.returncode, 0, where + ":\n" + r.stderr)
                self.assertIn("configuration OK", r.stdout)

    def serve_tls_config(self, where, text):
        """Run a TLS sidecar config: a plaintext backend on its backend
        port, a TLS client through tsgate, the probes with curl."""
        root = os.path.join(self.tmp, self.next_name("run"))
        os.makedirs(root)
        self.creds.populate(root, text)
        backend = self.backend(mode="echo", kind="tcp")
        port, mport = gh.free_port(), gh.free_port()
        text = self.rooted(text, root)
        text = re.sub(r"tcp://0\.0\.0\.0:8443", "tcp://127.0.0.1:%d" % port,
                      text)
        text = re.sub(r"tcp://0\.0\.0\.0:9100",
                      "tcp://127.0.0.1:%d" % mport, text)
        text = re.sub(r"tcp://127\.0\.0\.1:8080", backend.address, text)
        self.assertIn(str(port), text, where)
        g = self.gateway(text)
        ctx = ssl.create_default_context(cafile=self.creds.certs.ca)
        raw = self.connect("tcp://127.0.0.1:%d" % port)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        got, clean = gh.tls_roundtrip(s, b"through the sidecar\n")
        self.assertEqual(got, b"through the sidecar\n")
        self.assertTrue(clean, "no close_notify from tsgate")
        for path, want in (("/healthz", "ok"), ("/readyz", "ready")):
            r = subprocess.run(["curl", "-sS", "-m", "5",
                                "http://127.0.0.1:%d%s" % (mport, path)],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, want),
                             r.stderr)
        conn = g.wait_conn_lines(1)
        self.assertEqual(conn[0].get("result"), "ok", conn)

    def test_kerberos_sidecar_serves(self):
        """The Kerberos sidecar config with a real KDC: its keytab and
        principal swapped for the test KDC's, a client-mode tsgate with
        alice's tickets in front; the app gets PROXY v2 with alice."""
        kerberos = [t for w, t in embedded_configs() if "accept: gssapi" in t]
        self.assertEqual(len(kerberos), 1)
        kdc = gh.Kdc(self.tmp)
        try:
            if not kdc.available():
                self.skipTest("no KDC (krb5-kdc not installed?)")
            env = dict(kdc.env)
            realm = env["TT_KDC_REALM"]
            app = self.backend(mode="recorder", echo=True)
            port, mport = gh.free_port(), gh.free_port()
            text = kerberos[0]
            for old, new in (
                    ("/etc/tsgate/keytab/tsgate.keytab",
                     env["TT_KDC_SERVICE_KEYTAB"]),
                    ("tsgate/app.example.com@EXAMPLE.COM",
                     "host/localhost@" + realm),
                    ("*@EXAMPLE.COM", "*@" + realm),
                    ("tcp://0.0.0.0:9443", "tcp://127.0.0.1:%d" % port),
                    ("tcp://0.0.0.0:9100", "tcp://127.0.0.1:%d" % mport),
                    ("tcp://127.0.0.1:8080", app.address)):
                self.assertIn(old, text)
                text = text.replace(old, new)
            self.gateway(text, name="sidecar", env=env)
            near_sock = os.path.join(self.tmp, "near.sock")
            self.gateway(
                "listeners:\n  - name: near\n    listen: \"unix:%s\"\n"
                "    accept: plain\n    routes:\n"
                "      - backend: \"tcp://127.0.0.1:%d\"\n"
                "        connect: gssapi\n"
                "        gssapi: {target: \"host@localhost\", "
                "ccache: \"%s\"}\n" % (near_sock, port,
                                        env["TT_KDC_ALICE_CCACHE"]),
                name="near", env=env)
            with self.connect("unix:" + near_sock) as c:
                got = gh.exchange(c, b"kerberised hello\n")
            self.assertTrue(app.wait_records(1))
            record = app.records[0]
            # PROXY v2 signature, then the principal in TLV 0xE0
            self.assertTrue(record.startswith(b"\r\n\r\n\x00\r\nQUIT\n"),
                            record[:32])
            self.assertIn(("alice@" + realm).encode(), record)
            self.assertTrue(record.endswith(b"kerberised hello\n"))
            self.assertTrue(got.endswith(b"kerberised hello\n"), got)
            self.reset()
        finally:
            kdc.stop()

    def test_tls_sidecars_serve(self):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        n = 0
        for where, text in embedded_configs():
            if "accept: tls" in text:
                with self.subTest(where):
                    self.serve_tls_config(where, text)
                    self.reset()
                    n += 1
        self.assertGreaterEqual(n, 2)


def k8s_docs():
    out = []
    for fname in sorted(os.listdir(K8S)):
        with open(os.path.join(K8S, fname)) as f:
            out.append((fname, [d for d in yaml.safe_load_all(f) if d]))
    return out


class ManifestTest(unittest.TestCase):

    def check_pod(self, fname, spec, configmaps):
        psc = spec.get("securityContext", {})
        self.assertIs(psc.get("runAsNonRoot"), True, fname)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        containers = spec["containers"]
        tsgate = [c for c in containers if c["image"].startswith("tsgate")]
        self.assertEqual(len(tsgate), 1, fname)
        c = tsgate[0]
        self.assertEqual(c["image"], IMAGE, fname)
        self.assertFalse(c.get("args"), "the image's CMD names the config")
        self.assertNotIn("command", c, "the image's ENTRYPOINT runs tsgate")
        apps = [a for a in containers if a is not c]
        csc = c.get("securityContext", {})
        self.assertIs(csc.get("readOnlyRootFilesystem"), True, fname)
        self.assertIs(csc.get("allowPrivilegeEscalation"), False, fname)
        self.assertIn("ALL", csc.get("capabilities", {}).get("drop", []))
        ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
        mounts = c["volumeMounts"]
        for m in mounts:
            self.assertIn(m["name"], volumes, fname)
        # The config: a ConfigMap of this file at /etc/tsgate.
        cfg_mount = [m for m in mounts if m["mountPath"] == "/etc/tsgate"]
        self.assertEqual(len(cfg_mount), 1, fname)
        cm_name = volumes[cfg_mount[0]["name"]]["configMap"]["name"]
        self.assertIn(cm_name, configmaps, fname)
        text = configmaps[cm_name]["tsgate.yaml"]
        config = yaml.safe_load(text)
        for a in apps:
            self.check_app(a.get("command"), config)
        # Probes at the metrics listener of that config.
        mport = int(config["metrics"]["listen"].rsplit(":", 1)[1])
        for probe, path in (("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], path, fname)
            port = get["port"]
            self.assertEqual(ports.get(port, port), mport, fname)
        # Every listener port declared; tcp listeners not on loopback.
        for lst in config["listeners"]:
            addr = lst["listen"]
            self.assertTrue(addr.startswith("tcp://0.0.0.0:"), addr)
            self.assertIn(int(addr.rsplit(":", 1)[1]), ports.values())
        # Every file the config names comes from a mount: a ConfigMap
        # key or a Secret key at that path.
        for path in etc_paths(text):
            best = max((m for m in mounts
                        if path.startswith(m["mountPath"].rstrip("/") + "/")),
                       key=lambda m: len(m["mountPath"]), default=None)
            self.assertIsNotNone(best, "%s: nothing mounts %s" % (fname,
                                                                    path))
            key = path[len(best["mountPath"].rstrip("/")) + 1:]
            vol = volumes[best["name"]]
            if "secret" in vol:
                self.assertIs(best.get("readOnly"), True, path)
                self.assertEqual(vol["secret"].get("defaultMode"), 0o400,
                                 path)
                self.assertIn(key, SECRET_KEYS.get(
                    vol["secret"]["secretName"], [key]), path)
            else:
                self.assertIn(key, configmaps[vol["configMap"]["name"]],
                              path)
        # A Kerberos acceptor writes its replay cache: with a read-only
        # root file system that must be an emptyDir.
        if any(lst["accept"] == "gssapi" for lst in config["listeners"]):
            env = {e["name"]: e["value"] for e in c.get("env", [])}
            rc = env.get("KRB5RCACHEDIR")
            self.assertIsNotNone(rc, "%s: no KRB5RCACHEDIR" % fname)
            on = [m for m in mounts if rc == m["mountPath"] or
                  rc.startswith(m["mountPath"].rstrip("/") + "/")]
            self.assertTrue(on and "emptyDir" in volumes[on[-1]["name"]],
                            "%s: KRB5RCACHEDIR %s is not on an emptyDir"
                            % (fname, rc))
        # An environment file named in env must come from the ConfigMap.
        for e in c.get("env", []):
            if e["value"].startswith("/etc/tsgate/"):
                self.assertIn(e["value"][len("/etc/tsgate/"):],
                              configmaps[cm_name], e)
        return config

    def check_app(self, command, config):
        """An app whose command is shown listens where the routes go, on
        loopback only."""
        if not command:
            return
        backends = {r["backend"] for lst in config["listeners"]
                    for r in lst["routes"]}
        self.assertIn("127.0.0.1", command)
        ports = [a for a in command if a.isdigit()]
        self.assertEqual(backends, {"tcp://127.0.0.1:%s" % p for p in ports})

    def test_manifests(self):
        kinds = []
        for fname, docs in k8s_docs():
            configmaps = {d["metadata"]["name"]: d["data"] for d in docs
                          if d["kind"] == "ConfigMap"}
            for d in docs:
                self.assertIn("apiVersion", d, fname)
                self.assertIn("name", d["metadata"], fname)
                kinds.append(d["kind"])
                if d["kind"] == "Pod":
                    self.check_pod(fname, d["spec"], configmaps)
                elif d["kind"] == "Deployment":
                    tpl = d["spec"]["template"]
                    self.assertEqual(
                        d["spec"]["selector"]["matchLabels"].items()
                        - tpl["metadata"]["labels"].items(), set())
                    self.check_pod(fname, tpl["spec"], configmaps)
                elif d["kind"] == "Service":
                    self.assertTrue(d["spec"]["ports"])
        self.assertIn("Pod", kinds)
        self.assertIn("Deployment", kinds)
        # (a) TLS from a kubernetes.io/tls Secret, (b) a keytab Secret.
        text = ""
        for f in os.listdir(K8S):
            with open(os.path.join(K8S, f)) as fh:
                text += fh.read()
        self.assertIn("kubectl create secret tls", text)
        self.assertIn("accept: gssapi", text)
        self.assertIn("accept: tls", text)

    def test_compose(self):
        with open(COMPOSE) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        gw = services["tsgate"]
        self.assertEqual(gw["image"], IMAGE)
        self.assertNotIn("command", gw, "the image's CMD names the config")
        # sidecar: the app's network namespace, so 127.0.0.1 is the app
        app = gw["network_mode"].split(":", 1)[1]
        self.assertEqual(gw["network_mode"], "service:" + app)
        self.assertIn(app, services)
        targets = [c["target"] for c in gw["configs"]]
        self.assertEqual(targets, ["/etc/tsgate/tsgate.yaml"])
        self.assertTrue(gw.get("read_only"))
        self.assertIn("--health", gw["healthcheck"]["test"])
        config = yaml.safe_load(
            compose["configs"][gw["configs"][0]["source"]]["content"])
        published = [str(p).split(":")[-1] for p in services[app]["ports"]]
        for lst in config["listeners"]:
            self.assertIn(lst["listen"].rsplit(":", 1)[1], published)
        self.check_app(services[app].get("command"), config)
        for v in gw["volumes"]:
            host, target, mode = v.split(":")
            self.assertEqual(mode, "ro", v)
            self.assertTrue(target.startswith("/etc/tsgate/"), v)


# The Secrets the manifests expect, by the keys `kubectl create secret`
# gives them (shown in each file's comment).
SECRET_KEYS = {"app-tls": ["tls.crt", "tls.key"],
               "app-keytab": ["tsgate.keytab"]}


class SystemdUnitTest(gh.GatewayTestCase):

    def unit(self):
        sections = {}
        cur = None
        with open(UNIT) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("["):
                    cur = sections.setdefault(line.strip("[]"), {})
                    continue
                k, _, v = line.partition("=")
                cur.setdefault(k, []).append(v)
        return sections

    def test_static(self):
        svc = self.unit()["Service"]
        # READY=1 when listening (test_exec_lines_run, docs/operations.md)
        self.assertEqual(svc["Type"], ["notify"])
        self.assertEqual(svc["NotifyAccess"], ["main"])
        self.assertIn("AF_UNIX", svc["RestrictAddressFamilies"][0].split())
        self.assertEqual(svc["ExecReload"][-1], "/bin/kill -HUP $MAINPID")
        self.assertEqual(svc["CapabilityBoundingSet"],
                         ["CAP_NET_BIND_SERVICE"])
        for k in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
            self.assertEqual(svc[k], ["yes"], k)
        self.assertEqual(svc["ProtectSystem"], ["strict"])
        self.assertTrue("User" in svc or svc.get("DynamicUser") == ["yes"])
        self.assertIn("RuntimeDirectory", svc)
        self.assertEqual(svc["KillSignal"], ["SIGTERM"])
        # Stop timeout above the default shutdown_grace (30 s).
        self.assertGreater(int(svc["TimeoutStopSec"][0]), 30)

    def local_unit(self):
        """The unit with /usr/bin/tsgate and /etc/tsgate moved here."""
        with open(UNIT) as f:
            text = f.read().replace("/usr/bin/tsgate", gh.TSGATE)
        return text.replace("/etc/tsgate/", self.tmp + "/etc/")

    def test_systemd_analyze_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        path = os.path.join(self.tmp, "tsgate.service")
        with open(path, "w") as f:
            f.write(self.local_unit())
        r = subprocess.run(["systemd-analyze", "verify", path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Unknown keys are only warnings: there must be none.
        self.assertEqual(r.stderr.strip(), "")
        # and a misspelt one would have been seen
        with open(path, "w") as f:
            f.write(self.local_unit().replace("PrivateTmp=", "PrivatTmp="))
        r = subprocess.run(["systemd-analyze", "verify", path],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("PrivatTmp", r.stderr)

    def test_exec_lines_run(self):
        """ExecStartPre, ExecStart and ExecReload as systemd runs them."""
        svc = {}
        for line in self.local_unit().splitlines():
            k, _, v = line.partition("=")
            if k.startswith("Exec"):
                svc.setdefault(k, []).append(v)
        os.makedirs(os.path.join(self.tmp, "etc"))
        backend = self.backend(mode="echo", kind="tcp")
        port = gh.free_port()
        config = os.path.join(self.tmp, "etc", "tsgate.yaml")
        good = ('log: {format: json}\nlisteners:\n  - name: in\n'
                '    listen: "tcp://127.0.0.1:%d"\n    accept: plain\n'
                '    routes:\n      - backend: "%s"\n' % (port,
                                                         backend.address))
        with open(config, "w") as f:
            f.write(good)
        for cmd in svc["ExecStartPre"]:
            r = subprocess.run(shlex.split(cmd), capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        start = shlex.split(svc["ExecStart"][0])
        self.assertEqual(start[0], gh.TSGATE)
        self.assertEqual(start[1:], ["--config", config])
        # Type=notify: systemd's datagram socket waits for READY=1
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(self.tmp, "notify"))
        notify.settimeout(20)
        g = self.gateway(good, name="etc/tsgate",  # same file, same args
                         env={"NOTIFY_SOCKET": notify.getsockname()})
        self.assertEqual(g.config, config)
        self.assertIn("READY=1", notify.recv(4096).decode().split("\n"))
        notify.close()

        def reload():
            for cmd in svc["ExecReload"]:
                cmd = cmd.replace("$MAINPID", str(g.proc.pid))
                r = subprocess.run(shlex.split(cmd), capture_output=True,
                                   text=True, timeout=60)
                if r.returncode != 0:
                    return r.returncode
            return 0

        self.assertEqual(reload(), 0)
        self.assertTrue(gh.wait_until(lambda: any(
            l.get("event") == "reload" for l in g.lines())), g.lines())
        # A broken file: the reload fails before any signal is sent.
        with open(config, "w") as f:
            f.write("listeners: [\n")
        self.assertEqual(reload(), 1)
        self.assertEqual(len([l for l in g.lines()
                              if l.get("event") == "reload"]), 1)
        self.assertIsNone(g.proc.poll())
        self.assertEqual(g.stop(), 0)
        self.gateways.remove(g)


def talk(argv, cwd, timeout=20.0):
    """Run an interactive client: send one line, keep stdin open, return
    its output once the line came back (or at the timeout); then end it
    by pid."""
    import select
    import time

    line = b"hello from the docs\n"
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        p.stdin.write(line)
        p.stdin.flush()
        end = time.monotonic() + timeout
        while line not in out and time.monotonic() < end:
            r, _, _ = select.select([p.stdout], [], [], 0.1)
            if r:
                d = os.read(p.stdout.fileno(), 65536)
                if not d:
                    break
                out += d
    finally:
        p.kill()
        p.wait(10)
        p.stdin.close()
        p.stdout.close()
    return out


FILE_KEYS = ("cert", "key", "client_ca", "ca", "crl", "keytab",
             "client_keytab", "ocsp_response")


def yaml_blocks(path):
    """(line, text) of each ```yaml block of a Markdown file."""
    out, cur, start = [], None, 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("```"):
                if cur is not None:
                    out.append((start, "".join(cur)))
                    cur = None
                elif line[3:].strip() == "yaml":
                    cur, start = [], n
                continue
            if cur is not None:
                cur.append(line)
    return out


def named_files(node, out=None, principal=None):
    """(key, path, principal) of every file a config tree names."""
    out = [] if out is None else out
    if isinstance(node, dict):
        principal = node.get("principal", principal)
        for k, v in node.items():
            if k in FILE_KEYS and isinstance(v, str):
                out.append((k, v, principal))
            else:
                named_files(v, out, principal)
    elif isinstance(node, list):
        for v in node:
            named_files(v, out, principal)
    return out


TOP_KEYS = {"log", "workers", "user", "metrics", "limits", "reload",
            "listeners"}
MINIMAL_LISTENER = [{"name": "doc", "listen": "tcp://127.0.0.1:1",
                     "accept": "plain",
                     "routes": [{"backend": "tcp://127.0.0.1:2"}]}]


def complete(fragment):
    """A whole tsgate config around a docs fragment, or None when the
    fragment is not tsgate's."""
    keys = set(fragment)
    if keys <= TOP_KEYS:
        full = dict(fragment)
        full.setdefault("listeners", MINIMAL_LISTENER)
        return full
    if keys == {"tls"}:
        return {"listeners": [{"name": "doc", "listen": "tcp://127.0.0.1:1",
                               "accept": "tls", "tls": fragment["tls"],
                               "routes": [{"backend": "tcp://127.0.0.1:2"}]}]}
    if keys == {"gssapi"}:
        return {"listeners": [{"name": "doc", "listen": "tcp://127.0.0.1:1",
                               "accept": "gssapi",
                               "gssapi": fragment["gssapi"],
                               "routes": [{"backend": "tcp://127.0.0.1:2"}]}]}
    if keys == {"routes"}:
        # a TLS listener that asks for client certificates, so that
        # every match key but principal can apply
        return {"listeners": [{"name": "doc", "listen": "tcp://127.0.0.1:1",
                               "accept": "tls",
                               "tls": {"cert": "server.crt",
                                       "key": "server.key",
                                       "client_ca": "clients-ca.crt",
                                       "verify_client": "require",
                                       "alpn": ["h2", "http/1.1"]},
                               "routes": fragment["routes"]}]}
    return None


class DocsConfigsTest(ConfigCase):

    def make_token_object(self, root, key, url):
        """The token, object and PIN file a docs URL names, made with the
        test certificates; returns the environment that finds it."""
        attrs = dict(a.split("=", 1) for a in
                     url[len("pkcs11:"):].split("?")[0].split(";"))
        query = dict(a.split("=", 1) for a in
                     (url.split("?", 1) + [""])[1].split("&") if a)
        token = self.tokens.get(attrs["token"])
        if token is None:
            token = gh.SoftToken(root, attrs["token"])
            self.tokens[attrs["token"]] = token
        certs = self.creds.certs
        if attrs.get("type") == "cert":
            token.import_cert(certs.server, attrs["object"], "01")
        else:
            token.import_key(certs.server_key, attrs["object"], "01")
        source = query.get("pin-source", "")
        if source.startswith("file:"):
            source = source[len("file:"):]
        if source:
            dest = self.rooted(source, root)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            token.write_pin(dest)
        return token.env

    def make_files(self, root, config):
        certs = self.creds.certs
        self.tokens = {}
        env = {}
        for key, path, principal in named_files(config):
            if path.startswith("pkcs11:"):
                env.update(self.make_token_object(root, key, path))
                continue
            dest = (os.path.join(root, path[len("/etc/tsgate/"):])
                    if path.startswith("/etc/tsgate/")
                    else os.path.join(root, path))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if key in ("keytab", "client_keytab"):
                Credentials.keytab(dest, principal or "app@EXAMPLE.COM")
            elif key == "key":
                shutil.copy(certs.server_key, dest)
            elif key in ("client_ca", "ca"):
                shutil.copy(certs.ca, dest)
            elif key == "ocsp_response":
                self.ocsp_response(dest)
            elif key == "crl":
                tmpl = os.path.join(self.tmp, "crl.tmpl")
                with open(tmpl, "w") as f:
                    f.write("crl_next_update = 2\ncrl_number = 1\n")
                subprocess.run(["certtool", "--generate-crl",
                                "--load-ca-privkey", certs.ca_key,
                                "--load-ca-certificate", certs.ca,
                                "--template", tmpl, "--outfile", dest],
                               check=True, timeout=30,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            else:
                shutil.copy(certs.server, dest)
        return env

    def ocsp_response(self, dest):
        """A real OCSP response (openssl ocsp as the CA's responder) for
        the server certificate every cert of a docs fragment is."""
        certs = self.creds.certs
        index = os.path.join(self.tmp, "ocsp-index.txt")
        with open(index, "w") as f:
            f.write(index_line(certs.server))
        req = dest + ".req"
        for args in (["-issuer", certs.ca, "-cert", certs.server,
                      "-reqout", req, "-no_nonce"],
                     ["-index", index, "-CA", certs.ca, "-rsigner",
                      certs.ca, "-rkey", certs.ca_key, "-reqin", req,
                      "-respout", dest, "-ndays", "1"]):
            subprocess.run(["openssl", "ocsp"] + args, check=True,
                           timeout=30, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def test_yaml_blocks(self):
        if shutil.which("certtool") is None:
            self.skipTest("certtool not installed")
        docs = os.path.join(SRC, "docs")
        checked = probes = 0
        for name in sorted(os.listdir(docs)):
            if not name.endswith(".md"):
                continue
            for line, text in yaml_blocks(os.path.join(docs, name)):
                where = "docs/%s:%d" % (name, line)
                with self.subTest(where):
                    fragment = yaml.safe_load(text)
                    self.assertIsInstance(fragment, dict, where)
                    if "livenessProbe" in fragment:
                        self.check_probes(fragment)
                        probes += 1
                        continue
                    config = complete(fragment)
                    if config is None:
                        continue  # another program's YAML: parsed only
                    root = os.path.join(self.tmp, self.next_name("doc"))
                    os.makedirs(root)
                    env = dict(self.env)
                    env.update(self.make_files(root, config))
                    path = os.path.join(root, "tsgate.yaml")
                    with open(path, "w") as f:
                        f.write(self.rooted(yaml.safe_dump(config), root))
                    r = check_config(path, env)
                    self.assertEqual(r.returncode, 0, "%s:\n%s\n%s" % (
                        where, text, r.stderr))
                    checked += 1
        self.assertGreaterEqual(checked, 7)
        self.assertGreaterEqual(probes, 1)

    def check_probes(self, fragment):
        """The probes shown in docs are those of the manifests."""
        want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
        for probe, path in want.items():
            self.assertEqual(fragment[probe]["httpGet"]["path"], path)
            self.assertEqual(fragment[probe]["httpGet"]["port"], 9100)
        for fname, docs in k8s_docs():
            for d in docs:
                spec = d.get("spec", {})
                spec = spec.get("template", {}).get("spec", spec)
                for c in spec.get("containers", []):
                    for probe, path in want.items():
                        if probe in c:
                            self.assertEqual(c[probe]["httpGet"]["path"],
                                             path, fname)


class DocsCommandsTest(gh.GatewayTestCase):

    def commands(self):
        out = []
        docs = os.path.join(SRC, "docs")
        for name in sorted(os.listdir(docs)):
            if name.endswith(".md"):
                for line, cmd in sh_commands(os.path.join(docs, name)):
                    out.append(("docs/%s:%d" % (name, line), cmd))
        return out

    def test_every_command_is_tested(self):
        run_here = {
            "openssl s_client -connect 127.0.0.1:8443 -CAfile "
            "etc/run/demo-ca.crt -quiet",
            "gnutls-cli --port 8443 --x509cafile etc/run/demo-ca.crt "
            "localhost",
        }
        unknown = [(where, cmd) for where, cmd in self.commands()
                   if cmd not in run_here and cmd not in COVERED_ELSEWHERE
                   and not cmd.startswith(
                       tuple(p for p, _ in COVERED_BY_PREFIX))]
        self.assertEqual(unknown, [], "commands in docs/ that no test "
                         "runs: add them to tests/integration/"
                         "test_examples.py")

    def test_links(self):
        """Relative links of docs/*.md reach a file, and a heading when
        they name one (GitHub's anchors)."""
        docs = os.path.join(SRC, "docs")

        def slug(heading):
            h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
            return h.replace(" ", "-")

        def anchors(path):
            with open(path, encoding="utf-8") as f:
                text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
            return {slug(m) for m in re.findall(r"(?m)^#+\s+(.*)$", text)}

        n = 0
        for name in sorted(os.listdir(docs)):
            if not name.endswith(".md"):
                continue
            path = os.path.join(docs, name)
            with open(path, encoding="utf-8") as f:
                text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(docs, file)) \
                    if file else path
                self.assertTrue(os.path.exists(dest),
                                "docs/%s: link to %s" % (name, target))
                if anchor and dest.endswith(".md"):
                    self.assertIn(anchor, anchors(dest),
                                  "docs/%s: link to %s" % (name, target))
                n += 1
        self.assertGreater(n, 10)

    def test_quick_start_clients(self):
        """operations.md's two clients against etc/tsgate.yaml as
        scripts/run starts it (port moved to a free one)."""
        for tool in ("openssl", "gnutls-cli"):
            if shutil.which(tool) is None:
                self.skipTest(tool + " not installed")
        etc = os.path.join(self.tmp, "etc")
        run = os.path.join(etc, "run")
        os.makedirs(run)
        certs = gh.Certs(self.tmp)
        shutil.copy(certs.ca, os.path.join(run, "demo-ca.crt"))
        shutil.copy(certs.server, os.path.join(run, "server.crt"))
        shutil.copy(certs.server_key, os.path.join(run, "server.key"))
        echo = gh.Backend(run, mode="echo", kind="unix", name="echo")
        self.backends.append(echo)
        self.assertEqual(echo.address, "unix:" + os.path.join(
            run, "echo.sock"))
        port = gh.free_port()
        with open(os.path.join(SRC, "etc", "tsgate.yaml")) as f:
            text = f.read().replace("tcp://127.0.0.1:8443",
                                    "tcp://127.0.0.1:%d" % port)
        self.gateway(text, name="etc/tsgate")
        ran = 0
        for where, cmd in self.commands():
            if not cmd.startswith(("openssl s_client", "gnutls-cli")):
                continue
            with self.subTest(where):
                argv = [a.replace("8443", str(port))
                        for a in shlex.split(cmd)]
                self.assertIn(b"hello from the docs", talk(argv, self.tmp),
                              cmd)
                ran += 1
        self.assertEqual(ran, 2)


if __name__ == "__main__":
    gh.require_binary()
    if yaml is None:
        print("python3-yaml is not installed: skipping")
        raise SystemExit(gh.SKIP)
    for tool in ("openssl", "ktutil"):
        if shutil.which(tool) is None:
            print(tool + " is not installed: skipping")
            raise SystemExit(gh.SKIP)
    unittest.main(verbosity=2)
