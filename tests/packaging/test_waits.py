#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tests wait on what they assert (docs/testing.md, "Waits").

Two shapes in the Python tests and one in the shell tests are flagged
mechanically, because each has failed CI under load:

  - `time.sleep(...)` directly followed by an assertion: a guess at how
    long the other side needs (pacing a load, where no assertion follows,
    is fine);
  - a wait for what must happen with a deadline under 10 s written as a
    number (wait_until, wait_records, wait_conn_lines, wait_for_log,
    wait_for_value, wait_sent): those take the harness's DEADLINE, which
    is long enough for ASan and valgrind on a loaded machine and costs a
    passing test nothing;
  - `wait_for N ...` with N under 10 in a shell test (wait.sh's DEADLINE).

What it cannot see (waiting for one log line, then reading another) is
the reviewer's; the helpers wait_for_log/wait_for_value make the right
shape the short one. The checker tests itself on examples first, so a
rule that stops firing fails here too.

usage: test_waits.py SRCDIR
"""
import ast
import os
import re
import sys

WAITS = {"wait_until": 1, "wait_records": 1, "wait_conn_lines": 1,
         "wait_sent": 1, "wait_for_log": 3, "wait_for_value": 2}
SHORT_S = 10
SHELL_WAIT = re.compile(r"(?:^|[\s;&|(!])wait_for\s+([0-9.]+)\s")


def _name(call):
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    return getattr(f, "id", None)


def _is_sleep(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Attribute)
            and stmt.value.func.attr == "sleep"
            and getattr(stmt.value.func.value, "id", None) == "time")


def _is_assert(stmt):
    if isinstance(stmt, ast.Assert):
        return True
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and (_name(stmt.value) or "").startswith("assert"))


def _timeout_arg(call, index):
    for k in call.keywords:
        if k.arg == "timeout":
            return k.value
    if len(call.args) > index:
        return call.args[index]
    return None


def check_python(source, where):
    """Problems of one Python file, as 'where:line: text' strings."""
    out = []
    tree = ast.parse(source, where)
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for a, b in zip(block, block[1:]):
                if _is_sleep(a) and _is_assert(b):
                    out.append("%s:%d: time.sleep() then an assertion: "
                               "wait on the asserted condition instead"
                               % (where, a.lineno))
        if isinstance(node, ast.Call) and _name(node) in WAITS:
            t = _timeout_arg(node, WAITS[_name(node)])
            if (isinstance(t, ast.Constant) and
                    isinstance(t.value, (int, float)) and
                    not isinstance(t.value, bool) and t.value < SHORT_S):
                out.append("%s:%d: %s() with a %g s deadline: leave it to "
                           "DEADLINE" % (where, node.lineno, _name(node),
                                         t.value))
    return out


def check_shell(source, where):
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for m in SHELL_WAIT.finditer(line):
            if float(m.group(1)) < SHORT_S:
                out.append("%s:%d: wait_for %s: use \"$DEADLINE\""
                           % (where, n, m.group(1)))
    return out


def self_test():
    """Each rule fires on its example and stays quiet on the right shape."""
    bad = {
        "sleep_assert": "import time\ntime.sleep(0.5)\n"
                        "self.assertEqual(a, b)\n",
        "sleep_bare_assert": "def f():\n    time.sleep(1)\n    assert x\n",
        "short_wait": "gh.wait_until(lambda: x, 5)\n",
        "short_kw": "g.wait_conn_lines(2, timeout=2.5)\n",
        "short_log": "gh.wait_for_log(g, p, 1, 3)\n",
        "in_else": "if a:\n    pass\nelse:\n    time.sleep(1)\n"
                   "    self.assertTrue(x)\n",
    }
    good = {
        "pacing": "for i in r:\n    s.sendall(d)\n    time.sleep(0.005)\n"
                  "self.assertEqual(a, b)\n",
        "deadline": "self.assertTrue(gh.wait_until(lambda: x))\n"
                    "gh.wait_until(p, gh.DEADLINE, 0.1)\n"
                    "g.wait_conn_lines(3, timeout=60)\n",
        "run_for": "gh.run_for(2.0)\nself.assertEqual(a, b)\n",
        "sleep_then_other": "time.sleep(0.1)\nx = 1\n",
    }
    errors = []
    for name, src in bad.items():
        if not check_python(src, name):
            errors.append("self-test: %s not flagged" % name)
    for name, src in good.items():
        got = check_python(src, name)
        if got:
            errors.append("self-test: false alarm: %s" % got)
    if not check_shell("wait_for 5 test -S x\n", "sh"):
        errors.append("self-test: shell wait_for 5 not flagged")
    if check_shell('wait_for "$DEADLINE" grep -q x f\n'
                   "# wait_for 5 in a comment\n", "sh"):
        errors.append("self-test: shell false alarm")
    return errors


def test_files(src):
    for root, _, files in os.walk(os.path.join(src, "tests")):
        for f in sorted(files):
            if f.endswith((".py", ".sh")):
                yield os.path.join(root, f)


def main():
    src = sys.argv[1]
    problems = self_test()
    checked = 0
    for path in test_files(src):
        rel = os.path.relpath(path, src)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        checked += 1
        if path.endswith(".py"):
            problems += check_python(text, rel)
        else:
            problems += check_shell(text, rel)
    for p in problems:
        print("not ok - " + p)
    print("%d test files checked, %d problem(s)" % (checked, len(problems)))
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
