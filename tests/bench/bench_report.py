# SPDX-License-Identifier: MIT
"""The gateway benchmarks' table and raw files (bench_gateway.py).

Results are kept per round: rounds[figure][server] is a list with one
dict per round (None where that round failed or was not run). A metric
is one value of those dicts; its row shows, per server, the median and
the min-max over the rounds, then tsgate's lead over the best peer of
each round (the peer with the best value in that round): best peer /
tsgate for costs, tsgate / best peer for rates, so a lead above 1 means
tsgate is better and "1.2x better than the best peer in every run" is a
worst-round lead of 1.20 or more.
"""

import csv
import json
import statistics

from bench_servers import is_tsgate


class Metric:
    def __init__(self, label, figure, key, spec, lower_better=True,
                 lead=True):
        self.label = label
        self.figure = figure
        self.key = key
        self.spec = spec
        self.lower_better = lower_better
        self.lead = lead

    def values(self, rounds, server):
        per = rounds.get(self.figure, {}).get(server, [])
        return [None if r is None else r.get(self.key) for r in per]


def spread(xs, spec):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    med = format(statistics.median(xs), spec)
    if len(xs) == 1:
        return med
    return "%s (%s-%s)" % (med, format(min(xs), spec),
                           format(max(xs), spec))


def leads(metric, rounds, peers, ours_name="tsgate"):
    """A tsgate build's lead over the best peer, one per round where both
    ran (the other tsgate builds are not peers)."""
    ours = metric.values(rounds, ours_name)
    others = [metric.values(rounds, p) for p in peers
              if not is_tsgate(p)]
    out = []
    for i, t in enumerate(ours):
        theirs = [o[i] for o in others if i < len(o) and o[i] is not None]
        if t is None or not theirs or t == 0:
            continue
        if metric.lower_better:
            out.append(min(theirs) / t)
        else:
            best = max(theirs)
            if best:
                out.append(t / best)
    return out


def count_cell(rounds, figure, server):
    per = [r for r in rounds.get(figure, {}).get(server, []) if r]
    if not per:
        return "-"
    got = sum(r["resumed"] for r in per)
    of = sum(r.get("offered", r.get("n", 0)) for r in per)
    return "%d/%d" % (got, of)


def table(metrics, counts, rounds, peers):
    """Markdown lines: one row per metric, then the resumption counts."""
    ours = [p for p in peers if is_tsgate(p)]
    head = "| figure | " + " | ".join(peers) + " |" + "".join(
        " %s lead over best peer: worst round | median round |" % t
        for t in ours)
    lines = [head, "|" + "---|" * (len(peers) + 1 + 2 * len(ours))]
    for m in metrics:
        if not any(x is not None for p in peers
                   for x in m.values(rounds, p)):
            continue
        cells = [spread(m.values(rounds, p), m.spec) for p in peers]
        for t in ours:
            ld = leads(m, rounds, peers, t) if m.lead else []
            cells += ["%.2f" % min(ld) if ld else "-",
                      "%.2f" % statistics.median(ld) if ld else "-"]
        lines.append("| %s | %s |" % (m.label, " | ".join(cells)))
    for label, figure in counts:
        if figure not in rounds:
            continue
        lines.append("| %s | %s |" % (
            label, " | ".join([count_cell(rounds, figure, p) for p in peers]
                              + ["-", "-"] * len(ours))))
    return lines


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def write_csv(path, rounds):
    """figure, server, round, key, value: one line per raw number."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "server", "round", "key", "value"])
        for figure in sorted(rounds):
            for server, per in sorted(rounds[figure].items()):
                for i, r in enumerate(per):
                    for k, v in sorted((r or {}).items()):
                        w.writerow([figure, server, i + 1, k, v])
