"""Many draws of the quick start's demo visitors, summed: recall and best view that one draw cannot show.

`python benchmarks/demo_draws.py [--tune 100-139] [--held-out 140-159,160-179,180-199] [--cache benchmarks/out/corpus/cache]
[--methods default naive]`

One draw has 23-33 visitors, and a rule change moves one or two of them either way: finding 21's eight
draws could not tell a better rule from luck. Here each seed is a fresh draw of the demo camera (other
visitors, speeds, pauses and camera nuisance, as corpus_bench.demo_corpus), run with the default, the
finding 36 default (b2379b1, from git; finding 36 ran finding 35's, 6588b49) and the naive filter, and summed
per split: rules are chosen on the tuning seeds, and the held-out seeds are run once, after, to report
(finding 22 tuned on 100-119 and held out 120-139; finding 23 traced all of 100-139 and held out 140-159;
finding 24 tuned on 100-139, reports 140-159, whose misses were listed before its rule was made, and holds
out 160-179, drawn for it;
finding 25 tuned on 100-139, reports 140-179, held out before, and holds out 180-199, drawn for it;
finding 26 was traced on the corpus's seed 9, checked on 100-139 and reports 140-199, all held out before;
finding 27 was traced on the corpus's seed 11, checked on 100-139 and reports 140-199; findings 29 and 30 were
traced on 100-139 and report 140-199; finding 34 was traced on the corpus's new-camera streams, checked on
100-139 and reports 140-199; finding 35 was traced on busy highway 1 and seed 104, checked on 100-139 and
reports 140-199; finding 36 was traced on the corpus's seed 14 at night, checked on 100-139 and reports 140-199;
finding 37 was traced on 124 and the other draws of 100-139 that missed a best view, and reports 140-199, of which
165, 175 and 197 were looked at while two other forms of its rule were tried; finding 42 drew 90 fresh ones and
ran each set once before any trace: 200-229 by day, 230-249 and 270-289 at night, 250-269 mirrored; 209 and 233
were traced after, and 270-289 were run again only to report a rule tried on 230-249; ``--tune ''``: no tuning
split).
A visitor is recalled when a frame is kept while it is in view; its best view when one is kept while it is
wholly in view; redundant counts the keeps of a visitor after its first and of the empty street. "of them repeats": missed
visitors drawn like an earlier one of the same draw (kind and colour; a person's skin and trousers too),
which a rule that keeps nothing twice may rightly take for one seen; "of them alike to this camera": the same as
this camera sees them (at night: each colour's grey within the IR sensor's noise, corpus_bench.alike_at_night;
red, blue, purple and brown come out the same grey; otherwise the repeats); "of them faint to this camera (of how
many)": missed visitors drawn in one colour that this camera sees as the grey of the ground they walk on, and how many
the draws hold (at night: an orange dog on the sidewalk, corpus_bench.faint_at_night; it shows only before something
darker, and by its eye and shadow; by day none), and "recall of the others": the recall of the visitors that are not
faint; "of them never whole": missed visitors never
wholly in view before the stream ends (a sliver at the border in its last frames: no picture to label, but counted
as missed all the same). ``--looks night`` (or ``mirror``): the same draws seen by another camera, as corpus_bench's
other-camera streams (fresh features: embedded anew). Embedding a draw takes 20-40 s on 2
cores (cached after; the cache is about 130 MB a draw). ``--methods default`` runs the default row alone;
``--methods default "default, no"`` adds the default without the pre-gate (asked for by name only: whether the
fast path keeps the same events, finding 60).

Two more uses, to look at what a rule changed rather than at sums alone:

- ``--list SEED [--looks night]``: one draw, visitor by visitor: when it is in view and wholly in view, whether it
  is a repeat, alike or faint to this camera, and the default's keeps while it is in view (W: wholly in view, C: not),
  then the keeps of the empty street;
- ``--compare BASE NEW``: two saved outputs of this script, draw by draw: each draw whose counts differ, and per
  method how many draws miss fewer or more visitors, keep more or fewer redundant frames and more or fewer best views.

An A/B of a rule against the commit before it, in one run: ``--methods default finding --base REV`` runs today's
default beside commit REV's (from git: ``corpus_bench.filter_class_at``), and ``--compare-rows RUN...`` lists, per
saved run, the draws whose counts differ between the two rows. ``bash benchmarks/ab_draws.sh OUT REV`` runs the 80
draws the findings since 60 were checked on (night at 5, 10, 15, 25 and 30 fps, by day at 5, 15 and 25 fps) that way.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.corpus_bench import (FINDING36, NAIVE, Method, chosen, demo_corpus, features,  # noqa: E402
                                     methods, run_method, score_objects)
from benchmarks.streams import LOOKS  # noqa: E402
from edgefilter.config import FilterConfig  # noqa: E402


def seeds(text: str) -> list[int]:
    a, _, z = text.partition("-")
    return list(range(int(a), int(z or a) + 1))


def score(c, run) -> dict:
    """corpus_bench's object scores as counts, to be summed over draws."""
    got = score_objects(c, run)
    return {"visitors": len(c.things), "kept": got["kept"], "missed": got["missed_count"], "best": got["best_views"],
            "redundant": got["redundant"], "repeats": got["missed_repeats"], "alike": got["missed_alike"],
            "never_whole": got["missed_never_whole"], "faint": got["faint"], "faint_missed": got["missed_faint"]}


def listing(c, run) -> list[str]:
    """One draw's visitors with the keeps while each is in view (W: wholly in view, C: not), then the empty street's."""
    lines = []
    for t in c.things:
        keeps = " ".join(f"{k}{'W' if t.whole[0] <= k < t.whole[1] else 'C'}" for k in run.kept
                         if t.visible[0] <= k < t.visible[1])
        flags = "".join((" repeat" if t.repeat else "", " alike" if t.alike and not t.repeat else "",
                         " faint" if t.faint else ""))
        lines.append(f"{t.name}: in view {t.visible[0]}-{t.visible[1] - 1}, whole {t.whole[0]}-{t.whole[1] - 1}"
                     f"{flags}: {keeps or 'MISSED'}")
    empty = [k for k in run.kept[1:] if c.empty is not None and c.empty[k]]
    lines.append(f"empty street: {' '.join(map(str, empty)) or 'none'} (the first frame, {run.kept[0]}, aside)")
    return lines


def draws_of(text: str) -> dict[tuple[str, int], dict]:
    """The per-draw counts a run of this script printed: {(method, seed): counts}."""
    got = {}
    for line in text.splitlines():
        m = re.fullmatch(r"<!-- seed (\d+) (.+?): (\{.*\}) -->", line.strip())
        if m:
            got[(m.group(2), int(m.group(1)))] = ast.literal_eval(m.group(3))
    return got


def compare(base: dict, new: dict) -> list[str]:
    """Draw by draw differences of two runs (:func:`draws_of`), and per method the draws that got better or worse."""
    lines = []
    tally: dict[str, dict[str, int]] = {}
    common = sorted(set(base) & set(new))  # (method, seed)

    def same(a: dict, b: dict) -> bool:  # a count one run has and the other's script did not is no difference
        return all(a[k] == b[k] for k in a.keys() & b.keys())

    for key in common:
        a, b = base[key], new[key]
        if same(a, b):
            continue
        lines.append(f"{key[0]} seed {key[1]}: "
                     + ", ".join(f"{k} {a[k]} -> {b[k]}" for k in a if a[k] != b.get(k, a[k])))
        t = tally.setdefault(key[0], dict.fromkeys(("fewer missed", "more missed", "more redundant",
                                                     "fewer redundant", "more best", "fewer best"), 0))
        for k in ("missed", "redundant", "best"):
            if b[k] != a[k]:
                t[f"{'more' if b[k] > a[k] else 'fewer'} {k}"] += 1
    for method, t in tally.items():
        lines.append(f"{method}: " + ", ".join(f"{v} draws {k}" for k, v in t.items()))
    lines.append(f"{len(common)} draws in both, {sum(not same(base[k], new[k]) for k in common)} differ")
    return lines


def rows_of(prefixes: list[str] | None, base: str = FINDING36) -> list[Method]:
    """The methods ``--methods`` asks for (name prefixes; none: the default, the default of commit ``base`` and the
    naive rule). The default without the pre-gate is asked for by name only (``"default, no"``): whether the fast
    path keeps the same events (finding 60)."""
    every = methods(base)
    named = {m.name: m for m in every}
    finding = next(m for m in every if m.name.startswith("finding"))
    rows = [m for m in (named["default"], finding, named[NAIVE]) if chosen(m, prefixes)]
    ungated = named["default, no pre-gate"]
    if any(len(p) > len("default") and ungated.name.startswith(p) for p in prefixes or []):
        rows.insert(1, ungated)
    return rows


def rows_compared(text: str, base: str = "finding", new: str = "default") -> list[str]:
    """One saved run's two rows (name prefixes; the first row that starts with each), draw by draw, as
    :func:`compare` compares two runs: what a rule changed against the commit before it (``--base``)."""
    got = draws_of(text)
    names = sorted({m for m, _ in got})
    base_name = next((m for m in names if m.startswith(base)), None)
    new_name = next((m for m in names if m == new), None) or next((m for m in names if m.startswith(new)), None)
    if base_name is None or new_name is None:
        return [f"no rows {base!r} and {new!r} to compare (rows: {', '.join(names) or 'none'})"]
    def row(name: str) -> dict:  # keyed alike, so that compare() pairs the two rows' draws
        return {(new_name, s): c for (m, s), c in got.items() if m == name}
    return [f"{new_name} against {base_name}:"] + compare(row(base_name), row(new_name))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tune", default="100-139", help="seed range the rules were chosen on ('': none)")
    ap.add_argument("--held-out", default="140-159,160-179,180-199", help="seed ranges run once, to report (a row each)")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "corpus" / "cache")
    ap.add_argument("--methods", nargs="*", help="method name prefixes (default: all three rows)")
    ap.add_argument("--looks", nargs="*", default=[], choices=[x for x in LOOKS if x != "small"],  # demo: 640x360
                    help="the draws seen by another camera (streams.LookOrigin): mirrored, an IR camera at night, "
                    "in the rain, through haze")
    ap.add_argument("--fps", type=float, default=5.0,
                    help="frames a second of each draw (default 5; a camera's own rate is often 25-30)")
    ap.add_argument("--list", type=int, metavar="SEED", help="one draw's visitors and the default's keeps")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BASE", "NEW"), help="two saved runs, draw by draw")
    ap.add_argument("--base", default=FINDING36, metavar="REV",
                    help=f"the commit whose default is the 'finding 36 default' row (default {FINDING36})")
    ap.add_argument("--compare-rows", nargs="+", type=Path, metavar="RUN",
                    help="saved runs with the default and the --base row: the draws whose counts differ")
    args = ap.parse_args(argv)
    if args.compare:
        print("\n".join(compare(*(draws_of(p.read_text()) for p in args.compare))))
        return 0
    if args.compare_rows:
        for p in args.compare_rows:
            print(f"{p}: " + "\n  ".join(rows_compared(p.read_text())))
        return 0
    if args.list is not None:
        c = demo_corpus(seed=args.list, fps=args.fps, split="listed", looks=tuple(args.looks))
        print("\n".join(listing(c, run_method(c, features(c.stream, args.cache), Method("default", FilterConfig())))))
        return 0
    rows = rows_of(args.methods, args.base)
    t0 = time.perf_counter()
    print("| split | method | draws | visitors | kept | missed | of them repeats | of them alike to this camera | "
          "of them faint to this camera (of how many) | of them never whole | recall | recall of the others | "
          "best view | redundant |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    fps_words = "" if args.fps == 5.0 else f", {args.fps:g} fps"
    splits = ([("tuning", args.tune)] if args.tune else []) + [("held out", r) for r in args.held_out.split(",") if r]
    for split, text in splits:
        total = {m.name: dict.fromkeys(("visitors", "kept", "missed", "best", "redundant", "repeats", "alike",
                                        "never_whole", "faint", "faint_missed"), 0)
                 for m in rows}
        draws = seeds(text)
        for seed in draws:
            c = demo_corpus(seed=seed, fps=args.fps, split=split, looks=tuple(args.looks))
            f = features(c.stream, args.cache)
            for m in rows:
                got = score(c, run_method(c, f, m))
                for k, v in got.items():
                    total[m.name][k] += v
                print(f"<!-- seed {seed} {m.name}: {got} -->", flush=True)
        for m in rows:
            t = total[m.name]
            n = max(t["visitors"], 1)
            print(f"| {split} (seeds {text}{fps_words}) | {m.name} | {len(draws)} | {t['visitors']} | {t['kept']} | "
                  f"{t['missed']} | {t['repeats']} | {t['alike']} | {t['faint_missed']} ({t['faint']}) | "
                  f"{t['never_whole']} | {1 - t['missed'] / n:.3f} | "
                  f"{1 - (t['missed'] - t['faint_missed']) / max(n - t['faint'], 1):.3f} | "
                  f"{t['best'] / n:.3f} | {t['redundant']} |", flush=True)
    print(f"<!-- {time.perf_counter() - t0:.0f} s -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
