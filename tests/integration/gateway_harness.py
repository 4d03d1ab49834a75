# SPDX-License-Identifier: MIT
"""Shared helpers of the tsgate integration tests (test_gateway_*.py).

They start the real `tsgate` binary on YAML files written by the test,
with backends the test runs (threads in this process: echo, sink,
recorder, line), and certificates made with the openssl CLI in a
temporary directory. Every wait is bounded; the daemon is stopped by pid.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

BUILDDIR = os.environ.get("TSGATE_BUILDDIR", "")
SRCDIR = os.environ.get("TSGATE_SRCDIR", "")
TSGATE = os.path.join(BUILDDIR, "gateway", "tsgate")

SKIP = 77


def require_binary():
    """Exit 77 (skip) when the daemon was not built."""
    if not os.access(TSGATE, os.X_OK):
        print("tsgate binary not found at %r: skipping" % TSGATE)
        raise SystemExit(SKIP)


_ports_given = set()


# Ports handed out come from below the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default): a port
# a bind(0) returned is ephemeral, and between our close and the daemon's
# bind any outgoing connection of a parallel test may take it as its local
# port ("Address already in use" seen under load).
_PORT_LOW, _PORT_HIGH = 20000, 32767


def free_port():
    """A port nobody uses now, below the ephemeral range, never one this
    process was given before (two listeners of one test must not
    clash)."""
    import random
    while True:
        port = random.randint(_PORT_LOW, _PORT_HIGH)
        if port in _ports_given:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _ports_given.add(port)
        return port


def _slow_daemon():
    """An ASan build or a wrapper (valgrind): every step takes longer."""
    return bool(os.environ.get("TSGATE_IT_WRAPPER", "").strip()) or \
        asan_build()


# The one deadline of a wait for something that must happen. CI runs the
# suite two tests at a time on two shared cores, once under ASan + UBSan
# (and a daemon may run under valgrind, TSGATE_IT_WRAPPER), so a step that
# takes milliseconds here can take seconds there; a wait ends as soon as
# its condition holds, so a long deadline costs a passing test nothing.
# Waits for what must NOT happen use run_for() with the time they mean.
def _deadline():
    return 60.0 if _slow_daemon() else 30.0


def wait_until(pred, timeout=None, step=0.02):
    """The shared bounded wait: poll pred until it is true or timeout
    seconds (DEADLINE by default) pass; returns its last value. Tests
    wait on a condition with this, never "sleep, then assert"
    (docs/testing.md)."""
    if timeout is None:
        timeout = DEADLINE
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def run_for(seconds, pred=None, step=0.02):
    """Let time pass on purpose (a timeout to expire, a slow peer), for
    seconds; returns early with True once pred (when given) is true."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred is not None and pred():
            return True
        time.sleep(min(step, max(0.0, end - time.monotonic())))
    return pred() if pred is not None else False


def tcp_listening(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port now."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_sent(sock, timeout=None):
    """Wait until the kernel has no unacknowledged bytes of sock left to
    send (the peer's kernel has them all): a condition, where a test
    used to sleep before resetting a connection."""
    import fcntl
    import struct
    import termios

    def empty():
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        return struct.unpack("i", buf)[0] == 0
    return wait_until(empty, timeout)


def wait_for_value(fetch, pred, timeout=None, step=0.05):
    """Poll fetch() until pred(value) holds or the deadline passes, and
    return the last value: the test then asserts on that value exactly as
    strictly as before (a metric scraped right after a client-side event
    may not count the server's side of it yet)."""
    box = [None]

    def check():
        box[0] = fetch()
        return pred(box[0])
    wait_until(check, timeout, step)
    return box[0]


def wait_for_log(g, pred, n=1, timeout=None):
    """Wait until at least n complete log lines of g (parsed, see
    Gateway.lines) satisfy pred; return every matching line. Fails with
    the log when they do not come: what a test asserts next is then read
    from lines that are all there (a daemon writes a reload's errors and
    its summary as separate lines)."""
    def matching():
        return [l for l in g.lines() if pred(l)]
    if not wait_until(lambda: len(matching()) >= n, timeout):
        raise AssertionError(
            "%d log line(s) expected, %d came in %.0f s; the log:\n%s" % (
                n, len(matching()), timeout or DEADLINE,
                g.log_bytes().decode(errors="replace")[-4000:]))
    return matching()


def asan_build():
    """True when the daemon is built with AddressSanitizer."""
    try:
        with open(TSGATE, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


DEADLINE = _deadline()


def timing_asserts_enabled():
    """False when the daemon runs under ASan or valgrind (a wrapper), or
    TSGATE_NO_TIMING_ASSERTS=1: assertions on elapsed time, CPU time or
    RSS are skipped there, everything else still runs."""
    if os.environ.get("TSGATE_NO_TIMING_ASSERTS", "") not in ("", "0"):
        return False
    if os.environ.get("TSGATE_IT_WRAPPER", "").strip():
        return False
    return not asan_build()


def recv_all(sock, timeout=None):
    """Read until end of stream (or a reset); returns the bytes."""
    sock.settimeout(timeout or DEADLINE)
    chunks = []
    while True:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not d:
            break
        chunks.append(d)
    return b"".join(chunks)


def exchange(sock, data, timeout=None):
    """Plain sockets: send data (from a thread) while reading, half-close
    after sending, return everything read until the peer's end of stream.
    """
    def writer():
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = recv_all(sock, timeout)
    t.join(timeout or DEADLINE)
    return got


def recv_exact(sock, n, timeout=None):
    sock.settimeout(timeout or DEADLINE)
    chunks, have = [], 0
    while have < n:
        d = sock.recv(min(65536, n - have))
        if not d:
            break
        chunks.append(d)
        have += len(d)
    return b"".join(chunks)


def tls_roundtrip(sock, data, timeout=None):
    """TLS: send data while reading the same number of bytes back, then
    close_notify (unwrap), which tsgate passes on as end of stream and
    answers with its own close_notify once the backend side ended.

    One thread drives both directions with a non-blocking socket: an
    OpenSSL connection must not be read and written from two threads at
    once."""
    import select

    timeout = timeout or DEADLINE
    sock.setblocking(False)
    end = time.monotonic() + timeout
    sent, got = 0, []
    have = 0
    while have < len(data) and time.monotonic() < end:
        progress = False
        if sent < len(data):
            try:
                sent += sock.send(data[sent:sent + 16384])
                progress = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError,
                    BlockingIOError):
                pass
        try:
            d = sock.recv(65536)
            if not d:
                break
            got.append(d)
            have += len(d)
            progress = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError,
                BlockingIOError):
            pass
        if not progress:
            select.select([sock], [sock] if sent < len(data) else [], [],
                          0.05)
    sock.settimeout(timeout)
    clean = True
    try:
        sock.unwrap()
    except (OSError, ssl.SSLError, ValueError):
        clean = False
    sock.close()
    return b"".join(got), clean


class Backend:
    """A test backend on a unix path or a TCP port, served by threads.

    mode: "echo" (echo everything, half-close at EOF), "sink" (read and
    drop), "recorder" (keep every connection's bytes; echo too when
    echo=True), "line" (echo one line, then close), "greet" (send a
    banner then echo), "count" (after the client's end of stream, answer
    how many bytes came). script: a function that serves each connection
    instead (the mode is then unused); records gets what it returns.
    """

    def __init__(self, tmpdir, mode="echo", kind="unix", name="backend",
                 echo=False, banner=b"hello from backend\n", script=None):
        self.mode = mode
        self.script = script
        self.banner = banner
        self.echo = echo or mode == "echo"
        self.records = []
        self.lock = threading.Lock()
        self.conns = []
        self.accepted = 0
        if kind == "unix":
            self.path = os.path.join(tmpdir, name + ".sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.path)
            self.address = "unix:" + self.path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.address = "tcp://127.0.0.1:%d" % self.port
        self.sock.listen(256)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        if self.script is not None:
            result = None
            try:
                result = self.script(c)
            finally:
                with self.lock:
                    self.records.append(result)
                c.close()
            return
        got = []
        c.settimeout(60)
        try:
            if self.mode == "greet":
                c.sendall(self.banner)
            if self.mode == "line":
                buf = b""
                while b"\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                got.append(buf)
                c.sendall(buf)
            else:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got.append(d)
                    if self.echo or self.mode == "greet":
                        c.sendall(d)
                if self.mode == "count":
                    # answers only after the client's end of stream
                    c.sendall(b"got %d bytes\n" % sum(map(len, got)))
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            with self.lock:
                self.records.append(b"".join(got))
            c.close()

    def wait_records(self, n, timeout=None):
        return wait_until(lambda: len(self.records) >= n, timeout)

    def close(self):
        # Stop the accept thread before the fd is closed: shutdown() wakes
        # a blocked accept() (Linux: EINVAL). A thread left behind could
        # call accept() again on the fd number after close() gave it to a
        # new socket, and steal the next test's connections (seen: a
        # backend of the previous test served a connection tsgate logged
        # as routed to this test's backend).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Gateway:
    """The real tsgate daemon on a YAML text, logging JSON to a file."""

    def __init__(self, tmpdir, yaml_text, name="tsgate", env=None,
                 nofile=None):
        self.tmpdir = tmpdir
        self.config = os.path.join(tmpdir, name + ".yaml")
        self.logpath = os.path.join(tmpdir, name + ".log")
        with open(self.config, "w") as f:
            f.write(yaml_text)
        self.logfile = open(self.logpath, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        # e.g. TSGATE_IT_WRAPPER="valgrind --error-exitcode=1
        # --leak-check=full --errors-for-leak-kinds=definite" to run every
        # daemon of the tests under valgrind (by hand: timing-based tests
        # get slow)
        wrapper = os.environ.get("TSGATE_IT_WRAPPER", "").split()

        def limit_fds():
            if nofile is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(wrapper + [TSGATE, "--config",
                                                self.config],
                                     env=full_env, preexec_fn=limit_fds,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.logfile)
        # with workers, every worker says it is ready: a test that acts
        # on the first line raced the others' start (e.g. armed the
        # allocation-failure shim while worker 0 was still starting)
        m = re.search(rb"^workers:\s*(\d+)", yaml_text.encode(), re.M)
        workers = int(m.group(1)) if m else 1
        ok = wait_until(lambda: self.proc.poll() is not None or
                        self.log_bytes().count(b"tsgate ready") >= workers)
        if not ok or self.proc.poll() is not None:
            log = self.log_bytes().decode(errors="replace")
            self.stop()
            raise AssertionError("tsgate did not start:\n" + log)

    def log_bytes(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def lines(self):
        """Every complete log line, parsed (JSON format), or raw text
        lines. A last line without its line feed is one the daemon is
        still writing: left for the next read, never half parsed."""
        out = []
        text = self.log_bytes().decode(errors="replace")
        for raw in text[:text.rfind("\n") + 1].splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"raw": raw})
        return out

    def conn_lines(self):
        return [l for l in self.lines() if l.get("event") == "conn"]

    def wait_conn_lines(self, n, timeout=None):
        """Every conn line once there are at least n; fails loudly when
        they do not come (a test never reads fewer than it waited for)."""
        return wait_for_log(self, lambda l: l.get("event") == "conn", n,
                            timeout)

    def cpu_seconds(self):
        """User + system CPU time the daemon used so far (Linux /proc)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf(
            "SC_CLK_TCK")

    def stop(self, timeout=None):
        """SIGTERM by pid, SIGKILL after timeout (DEADLINE); returns the
        exit code."""
        timeout = timeout or DEADLINE
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logfile.close()
        return self.proc.returncode


class Certs:
    """A throw-away CA with a server certificate and client certificates."""

    def __init__(self, tmpdir):
        self.dir = os.path.join(tmpdir, "pki")
        os.mkdir(self.dir)
        self.ca_key, self.ca = self._path("ca.key"), self._path("ca.crt")
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                   self.ca_key, "-out", self.ca, "-days", "2",
                   "-subj", "/CN=tsgate test CA"])
        self.server_key, self.server = self.issue(
            "server", "/CN=localhost",
            "DNS:localhost,DNS:a.test,DNS:b.test,IP:127.0.0.1")
        self.alice_key, self.alice = self.issue(
            "alice", "/O=Example/CN=alice", "DNS:alice.corp.test")
        self.mallory_key, self.mallory = self.issue(
            "mallory", "/O=Example/CN=mallory", "DNS:mallory.evil.test")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def stranger(self):
        """A client certificate from another CA (not trusted by tsgate)."""
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        ca_key, ca = (os.path.join(other, "ca.key"),
                      os.path.join(other, "ca.crt"))
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                   ca_key, "-out", ca, "-days", "2",
                   "-subj", "/CN=some other CA"])
        key, csr, crt = (os.path.join(other, "s.key"),
                         os.path.join(other, "s.csr"),
                         os.path.join(other, "s.crt"))
        self._run(["req", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                   "-out", csr, "-subj", "/CN=stranger"])
        self._run(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                   "-CAcreateserial", "-out", crt, "-days", "2"])
        return key, crt

    def _run(self, args):
        subprocess.run(["openssl"] + args, check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def issue(self, name, subj, san):
        key, csr, crt = (self._path(name + ".key"), self._path(name + ".csr"),
                         self._path(name + ".crt"))
        ext = self._path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % san)
        self._run(["req", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                   "-out", csr, "-subj", subj])
        self._run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                   self.ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
                   "-extfile", ext])
        os.chmod(key, 0o600)
        return key, crt

    def client_context(self, cert=None, key=None, alpn=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


class SoftToken:
    """A SoftHSM2 token in a temp dir (softhsm2-util, p11tool): tsgate
    finds it through p11-kit's softhsm2 module with SOFTHSM2_CONF set."""

    def __init__(self, tmpdir, label):
        import random
        self.label = label
        self.dir = os.path.join(tmpdir, "softhsm-" + label)
        os.makedirs(os.path.join(self.dir, "tokens"))
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\n"
                    "objectstore.backend = file\nlog.level = ERROR\n"
                    % self.dir)
        self.env = {"SOFTHSM2_CONF": self.conf}
        # digits only, long enough that finding it in a log is no accident
        self.pin = "".join(random.choice("0123456789") for _ in range(12))
        self.pin_file = os.path.join(self.dir, "pin")
        self.write_pin(self.pin_file)
        self.run(["softhsm2-util", "--init-token", "--free", "--label",
                  label, "--pin", self.pin, "--so-pin", "87654321"])

    def write_pin(self, path):
        with open(path, "w") as f:
            f.write(self.pin)
        os.chmod(path, 0o600)

    def run(self, argv):
        env = dict(os.environ)
        env.update(self.env)
        r = subprocess.run(argv, env=env, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("%s failed: %s %s" % (
                argv[0], r.stdout.decode(), r.stderr.decode()))
        return r.stdout.decode()

    def import_key(self, key_pem, label, ident):
        pk8 = os.path.join(self.dir, label + ".p8")
        subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in",
                        key_pem, "-out", pk8], check=True, timeout=30)
        self.run(["softhsm2-util", "--import", pk8, "--token", self.label,
                  "--label", label, "--id", ident, "--pin", self.pin])
        os.unlink(pk8)

    def import_cert(self, cert_pem, label, ident):
        self.run(["p11tool", "--login", "--set-pin", self.pin, "--write",
                  "--load-certificate", cert_pem, "--label", label,
                  "--id", ident, "pkcs11:token=" + self.label])

    def url(self, label, kind, pin=None):
        u = "pkcs11:token=%s;object=%s;type=%s" % (self.label, label, kind)
        if pin == "source":
            u += "?pin-source=file:" + self.pin_file
        elif pin is not None:
            u += "?pin-value=" + pin
        return u


class Kdc:
    """A throw-away MIT KDC (build/tests/tt-kdc), stopped by pid."""

    def __init__(self, tmpdir):
        self.exe = os.path.join(BUILDDIR, "tests", "tt-kdc")
        self.envfile = os.path.join(tmpdir, "kdc.env")
        self.env = {}
        self.proc = None
        if not os.access(self.exe, os.X_OK):
            return
        self.out = open(self.envfile, "wb")
        self.proc = subprocess.Popen([self.exe], stdout=self.out,
                                     stdin=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is not None or
                   b"# ready" in self._read())
        if self.proc.poll() is not None:
            self.proc = None
            return
        for line in self._read().decode().splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                self.env[k] = v.strip("'")

    def _read(self):
        with open(self.envfile, "rb") as f:
            return f.read()

    def available(self):
        return self.proc is not None and "KRB5_CONFIG" in self.env

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            self.out.close()


class GatewayTestCase(unittest.TestCase):
    """A temp dir, cleaned up with every backend and daemon started."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tsgate-it-")
        self.backends = []
        self.gateways = []
        self.serial = 0

    def reset(self):
        """Stop every daemon and backend started so far (for subTests).

        A daemon must exit 0 on SIGTERM: a crash, or a leak report of a
        sanitizer build, fails the test."""
        bad = []
        for g in self.gateways:
            code = g.stop()
            if code != 0:
                bad.append("%s exited %s:\n%s" % (
                    g.config, code,
                    g.log_bytes().decode(errors="replace")[-3000:]))
        for b in self.backends:
            b.close()
        self.gateways = []
        self.backends = []
        if bad:
            raise AssertionError("\n".join(bad))

    def tearDown(self):
        try:
            self.reset()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def next_name(self, prefix):
        self.serial += 1
        return "%s%d" % (prefix, self.serial)

    def backend(self, **kw):
        kw.setdefault("name", self.next_name("backend"))
        b = Backend(self.tmp, **kw)
        self.backends.append(b)
        return b

    def gateway(self, yaml_text, name=None, env=None, nofile=None):
        g = Gateway(self.tmp, yaml_text, name or self.next_name("tsgate"),
                    env=env, nofile=nofile)
        self.gateways.append(g)
        return g

    def connect(self, address, timeout=None):
        timeout = timeout or DEADLINE
        if address.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(address[len("unix:"):])
            return s
        host, port = address[len("tcp://"):].rsplit(":", 1)
        return socket.create_connection((host.strip("[]"), int(port)),
                                        timeout=timeout)
