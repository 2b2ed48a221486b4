"""How far the thing of each kept event moves, against its size: do hands at the border stay put where visitors go?

`python benchmarks/event_motion.py [--streams NAME ...] [--data ../shared/data] [--cache DIR] [--out FILE.jsonl]`
`python benchmarks/event_motion.py --rows FILE.jsonl ...` (the summary of saved runs)

Runs the default on corpus streams (names as `corpus_bench.py` gives them, or demo draws `SEED:FPS[:LOOK]` as
`trace_events.py` takes them; default: every bottle stream and every objects stream of the corpus) and, for every
frame an event kept as its best view (not a settled frame), measures the event's frames against the kept frame's
change mask M: the farthest the centroid of a frame's change (of at least KNOWN_PIXELS) lies from M's, in units of
sqrt(|M|) (``dmax``), the union of those changes over |M| (``union``), the share of the event's frames the border cuts
at least KNOWN_PIXELS of (``cut``), the event's length (``frames``, ``seconds``), and the kept frame's whole-image
distance over the threshold it was held to (``past``; under 1 where its region cells passed, or a whole view of a
new event was kept). It prints one row per keep (bottle keeps marked hand or table state by the labels) and then how
far past those thresholds the hands lay against the other keeps and, for thresholds on ``dmax`` alone and with
``cut``, how many hands a rule "nothing kept of such an event" would drop against how many other keeps (a table
state, a visitor, a car) it would drop with them (benchmarks/QUALITY.md, finding 77).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus_bench as cb  # noqa: E402
from benchmarks import trace_events as te  # noqa: E402
from edgefilter.novelty import events as E  # noqa: E402
from edgefilter.novelty import filter as F  # noqa: E402
from edgefilter.novelty.known import KNOWN_PIXELS  # noqa: E402


def motion(masks: list[np.ndarray | None], edges: list[int], at: int) -> dict | None:
    """The event's frames (their change masks and border-cut pixels) against its kept frame ``at``."""
    kept = masks[at]
    if kept is None or not kept.any():
        return None
    size = int(kept.sum())
    centre = np.argwhere(kept).mean(axis=0)
    shown = [m for m in masks if m is not None and int(m.sum()) >= KNOWN_PIXELS]
    far = [float(np.linalg.norm(np.argwhere(m).mean(axis=0) - centre)) / np.sqrt(size) for m in shown]
    union = np.logical_or.reduce(shown) if shown else kept
    return {"dmax": round(max(far, default=0.0), 2), "union": round(int(union.sum()) / size, 2),
            "cut": round(float(np.mean([e >= KNOWN_PIXELS for e in edges])), 2), "pixels": size}


def run(name: str, data: Path, cache: Path, seconds: float = 300.0) -> list[dict]:
    c = te.corpus_of(name, data, seconds)
    f = cb.features(c.stream, cache)
    rows: list[dict] = []
    close = F.NoveltyFilter._close

    def measured(self, source, st, now_ts, probes=None, sink=None, settled=False):
        cand = st.candidate
        keeps = self._released if sink is None else sink
        before = len(keeps)
        r = close(self, source, st, now_ts, probes, sink, settled)
        for token, d in keeps[before:]:
            at = next((i for i, h in enumerate(cand.frames) if h.token == token), None)
            if at is None or d.pick == "settled":
                continue
            views = [E.view_of(cand, h) for h in cand.frames]
            got = motion([None if v.mask is None else v.mask.astype(bool) for v in views], [v.edge for v in views], at)
            if got is not None:
                what = "thing" if c.stream.hand is None else ("hand" if c.stream.hand[token] else "table state")
                rows.append({"stream": name, "token": int(token), "what": what, "frames": len(cand.frames),
                             "seconds": round(cand.frames[-1].ts - cand.frames[0].ts, 2), **got,
                             "past": None if d.distance is None else round(d.distance / d.threshold, 3)})
        return r

    F.NoveltyFilter._close = measured
    try:
        cb.run_method(c, f, next(m for m in cb.methods() if m.name == "default"))
    finally:
        F.NoveltyFilter._close = close
    return rows


def separation(rows: list[dict]) -> list[str]:
    hands = [r for r in rows if r["what"] == "hand"]
    others = [r for r in rows if r["what"] != "hand"]
    out = [f"{len(hands)} hands, {len(others)} other best-view keeps"]
    for what, some in (("hands", hands), ("other keeps", others)):
        past = sorted(r["past"] for r in some if r.get("past") is not None)
        if past:
            out.append(f"{what}: past the threshold they had to pass {past[0]}-{past[-1]} times, median "
                       f"{median(past)}")
    cut_most = [r for r in others if r["cut"] >= 0.5]
    for what, some in (("hands", hands), ("other keeps the border cuts in half their frames or more", cut_most)):
        if some:
            out.append(f"{what} ({len(some)}): dmax median {median(r['dmax'] for r in some)} "
                       f"({min(r['dmax'] for r in some)}-{max(r['dmax'] for r in some)}), "
                       f"union median {median(r['union'] for r in some)}")
    out += ["| rule: nothing kept where | hands dropped | other keeps dropped |", "| --- | --- | --- |"]
    for cut in (0.0, 0.5):
        for t in (0.3, 0.4, 0.5, 0.6, 0.75, 1.0):
            def rule(r: dict) -> bool:
                return r["dmax"] <= t and r["cut"] >= cut
            out.append(f"| dmax <= {t}{f' and cut >= {cut}' if cut else ''} | {sum(map(rule, hands))} | "
                       f"{sum(map(rule, others))} |")
    # the pair of thresholds on the event's length and dmax (each at a hand's value) that drops the most hands and no
    # other keep: what a rule fitted to this sample would be
    fits = [(sum(r["seconds"] >= s and r["dmax"] <= t for r in hands), s, t)
            for s in {r["seconds"] for r in hands} for t in {r["dmax"] for r in hands}
            if not any(r["seconds"] >= s and r["dmax"] <= t for r in others)]
    if fits:
        n, s, t = max(fits, key=lambda x: (x[0], -x[1], x[2]))
        out.append(f"fitted to this sample: seconds >= {s} and dmax <= {t} drops {n} hands and no other keep")
    return out


def median(values) -> float:
    """The upper median (a list's middle element once sorted)."""
    v = sorted(values)
    return v[len(v) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", nargs="*")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "corpus" / "cache")
    ap.add_argument("--out", type=Path, help="the rows as JSON lines")
    ap.add_argument("--rows", nargs="*", type=Path, help="summarise rows saved with --out (runs nothing)")
    args = ap.parse_args(argv)
    if args.rows:
        print("\n".join(separation([json.loads(x) for p in args.rows for x in p.read_text().splitlines()])))
        return 0
    names = args.streams or [c.stream.name for c in cb.build_corpus(args.data)
                             if c.kind == "objects" or (c.kind == "states" and c.stream.name.startswith("bottle"))]
    args.cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in names:
        got = run(name, args.data, args.cache)
        for r in got:
            print(" ".join(f"{k}={v}" for k, v in r.items()), flush=True)
        rows += got
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("\n".join(separation(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
