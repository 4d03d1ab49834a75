#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A slow KDC must not stall a worker (issue 19, item 2).

One tsgate worker originates GSSAPI tunnels (connect: gssapi) to a second
tsgate (accept: gssapi) in front of an echo backend. The worker's Kerberos
library talks to the real MIT KDC through a relay in this test that can
hold the KDC's replies until the test releases them. While bob's first
connection waits for its service ticket (the reply held), alice's
established tunnel in the same worker must keep answering: 20 round trips
complete before the reply is released. That is an ordering, not a timing,
assertion: with the GSSAPI calls on the event loop (limits.gssapi_threads:
0, which TSGATE_TEST_GSSAPI_THREADS=0 selects to show it) the worker
waits inside gss_init_sec_context for the held reply and the first round
trip cannot come back.
"""

import os
import re
import shutil
import socket
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


class HoldingKdcRelay:
    """TCP relay to the KDC; once armed, KDC replies wait for release()."""

    def __init__(self, kdc_addr, kdc_port):
        self.kdc = (kdc_addr, kdc_port)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.armed = False
        self.released = False
        self.held_now = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self):
        with self.lock:
            self.armed, self.released = True, False

    def release(self):
        with self.lock:
            self.released = True
            self.cond.notify_all()

    def close(self):
        self.release()
        self.sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _message(sock):
        """One Kerberos-over-TCP message: 4-byte length, then that many
        bytes; None at the end of stream."""
        head = gh.recv_exact(sock, 4, timeout=30)
        if len(head) < 4:
            return None
        n = int.from_bytes(head, "big")
        body = gh.recv_exact(sock, n, timeout=30)
        return head + body if len(body) == n else None

    def _serve(self, c):
        k = socket.create_connection(self.kdc, timeout=30)
        c.settimeout(30)
        try:
            while True:
                req = self._message(c)
                if req is None:
                    return
                k.sendall(req)
                rep = self._message(k)
                if rep is None:
                    return
                with self.lock:
                    if self.armed:
                        self.held_now += 1
                        # bounded: a broken test must not hang forever
                        self.cond.wait_for(lambda: self.released, 60)
                        self.held_now -= 1
                c.sendall(rep)
        except OSError:
            return
        finally:
            k.close()
            c.close()

    def krb5_conf(self, original, path):
        """The KDC's krb5.conf with the relay as the realm's only KDC,
        over TCP."""
        with open(original) as f:
            text = f.read()
        text = re.sub(r"(?m)^\s*kdc = .*\n", "", text)
        text = text.replace("[libdefaults]\n",
                            "[libdefaults]\n\tudp_preference_limit = 1\n", 1)
        text = re.sub(r"(?m)^(\s*)(TSGATE\.TEST = \{\n)",
                      r"\1\2\t\tkdc = 127.0.0.1:%d\n" % self.port, text)
        with open(path, "w") as f:
            f.write(text)


class KdcStall(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.kdc = gh.Kdc(self.tmp)
        # scripts/deps test installs krb5-kdc: a missing KDC is an error
        self.assertTrue(self.kdc.available(), "no KDC (krb5-kdc missing?)")
        self.env = self.kdc.env
        self.relay = HoldingKdcRelay(self.env["TT_KDC_ADDR"],
                                     int(self.env["TT_KDC_PORT"]))

    def tearDown(self):
        self.relay.close()
        super().tearDown()
        self.kdc.stop()

    def ccache_copy(self, name):
        src = self.env["TT_KDC_%s_CCACHE" % name.upper()]
        dst = os.path.join(self.tmp, name + ".ccache")
        shutil.copyfile(src[len("FILE:"):], dst)
        return "FILE:" + dst

    def test_established_tunnel_answers_while_kdc_holds_a_reply(self):
        echo = self.backend(mode="echo")
        far_port = gh.free_port()
        self.gateway(
            "listeners:\n"
            "  - name: krb-in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: gssapi\n"
            "    gssapi: {keytab: %s, principal: \"host/localhost\"}\n"
            "    routes:\n"
            "      - {name: echo, backend: \"%s\"}\n"
            % (far_port, self.env["TT_KDC_SERVICE_KEYTAB"], echo.address),
            name="far", env=self.env)

        env = dict(self.env)
        env["KRB5_CONFIG"] = os.path.join(self.tmp, "relay-krb5.conf")
        self.relay.krb5_conf(self.env["KRB5_CONFIG"], env["KRB5_CONFIG"])
        threads = os.environ.get("TSGATE_TEST_GSSAPI_THREADS", "4")
        listeners = ""
        for who in ("alice", "bob"):
            listeners += (
                "  - name: near-%s\n"
                "    listen: \"unix:%s/%s.sock\"\n"
                "    accept: plain\n"
                "    routes:\n"
                "      - name: to-far\n"
                "        backend: \"tcp://127.0.0.1:%d\"\n"
                "        connect: gssapi\n"
                "        gssapi: {target: \"host@localhost\", "
                "ccache: \"%s\"}\n"
                % (who, self.tmp, who, far_port, self.ccache_copy(who)))
        near = self.gateway(
            "log: {level: info, format: json}\n"
            "workers: 1\n"
            "limits: {gssapi_threads: %s}\n"
            "listeners:\n%s" % (threads, listeners), name="near", env=env)

        # alice's tunnel, set up while the KDC answers at once
        a = self.connect("unix:%s/alice.sock" % self.tmp, timeout=20)
        a.sendall(b"hello")
        self.assertEqual(gh.recv_exact(a, 5, timeout=20), b"hello",
                         near.log_bytes())

        # bob's first connection needs a service ticket: the KDC's reply
        # is held until this test releases it
        self.relay.arm()
        b = self.connect("unix:%s/bob.sock" % self.tmp, timeout=30)
        b.sendall(b"bob")
        self.assertTrue(gh.wait_until(lambda: self.relay.held_now >= 1),
                        "bob's ticket request never reached the KDC")

        done = 0
        try:
            for i in range(20):
                msg = b"round trip %02d" % i
                a.sendall(msg)
                got = gh.recv_exact(a, len(msg), timeout=5)
                self.assertEqual(got, msg)
                done += 1
        except socket.timeout:
            pass
        still_held = self.relay.held_now
        self.relay.release()
        self.assertEqual(
            done, 20, "the worker stalled on the KDC: %d of 20 round trips "
            "came back while bob's ticket was pending" % done)
        self.assertGreaterEqual(still_held, 1)

        # bob's connection completes once the KDC answers
        self.assertEqual(gh.recv_exact(b, 3, timeout=30), b"bob")
        a.close()
        b.close()
        lines = near.wait_conn_lines(2)
        self.assertTrue(all(l["result"] == "ok" for l in lines), lines)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
