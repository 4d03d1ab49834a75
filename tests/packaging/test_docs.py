#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The documentation is self-contained (issue 17): README.md and every
file under docs/ name no file outside the repository (`../shared`, the
design and style notes DESIGN.md / STYLE.md the project started from), and
every relative link in them points at a file or directory that exists in
the repository (anchors are not checked here).

usage: test_docs.py SRCDIR
"""
import os
import re
import sys

FORBIDDEN = re.compile(r"\.\./shared|/work/shared|DESIGN\.md|STYLE\.md")
# [text](target) and <a href="target">, not inside code spans
LINK = re.compile(r"\]\(([^)\s]+)\)|href=\"([^\"]+)\"")


def doc_files(src):
    yield os.path.join(src, "README.md")
    for root, _, files in os.walk(os.path.join(src, "docs")):
        for f in sorted(files):
            yield os.path.join(root, f)


def main():
    src = sys.argv[1]
    failures = 0
    checked = 0
    for path in doc_files(src):
        rel = os.path.relpath(path, src)
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            m = FORBIDDEN.search(line)
            if m:
                print(f"not ok - {rel}:{n}: refers to {m.group(0)}, "
                      "which is not in the repository")
                failures += 1
        if not path.endswith(".md"):
            continue
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        prose = re.sub(r"`[^`\n]*`", "", prose)
        for m in LINK.finditer(prose):
            target = m.group(1) or m.group(2)
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0]
            dest = os.path.normpath(
                os.path.join(os.path.dirname(path), file_part))
            checked += 1
            if not dest.startswith(os.path.abspath(src) + os.sep):
                print(f"not ok - {rel}: link {target} leaves the repository")
                failures += 1
            elif not os.path.exists(dest):
                print(f"not ok - {rel}: link {target}: no such file")
                failures += 1
    print(f"{'ok' if failures == 0 else 'not ok'} - {checked} relative "
          f"links checked, {failures} problem(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
