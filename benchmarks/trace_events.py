"""Trace the default filter's events on one stream of the benchmarks, frame by frame.

`python benchmarks/trace_events.py STREAM A B [--dump] [--no-gate] [--data ../shared/data] [--cache DIR]`

STREAM is a corpus stream's name (`corpus_bench.py`), a demo draw `SEED:FPS[:LOOK...]` (`demo_draws.py`, 300 s;
`--seconds` for less), or `clip:bottle`, the bottle clip as it is (every frame at its own 29.8 fps, no perturbation:
it keeps what `keep-check bottle-detection.mp4` keeps). For frames A..B it prints what the filter decided (distance,
threshold, held, the open event's length and still count, whether a visit's memory is alive) and each event that
closed near that range with what it kept; `--dump` adds every frame of those events as the change mask shows it
(pixels, whole, cut, view) and each choice made at the close (which rule picked which frame). The features come from
the corpus cache (embedded once when missing). It wraps NoveltyFilter's private steps: a tool for reading a decision
(benchmarks/QUALITY.md traces with it), not an interface; the decisions are the same as without it (tested).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus_bench as cb  # noqa: E402
from benchmarks import streams  # noqa: E402
from edgefilter.novelty import events as E  # noqa: E402
from edgefilter.novelty import filter as F  # noqa: E402

CHOICES = ("settled_pick", "ranked_view", "seen_before", "whole_view", "between_clear", "away_from_cut")


def corpus_of(name: str, data: Path, seconds: float) -> cb.Corpus:
    if name == "clip:bottle":
        return cb.Corpus(streams.bottle_clip(data), "states", "the clip as it is")
    if ":" in name:
        seed, fps, *looks = name.split(":")
        return cb.demo_corpus(seconds=seconds, seed=int(seed), fps=float(fps), split="traced", looks=tuple(looks))
    found = [c for c in cb.build_corpus(data) if c.stream.name == name]
    if not found:
        raise SystemExit(f"trace_events: no corpus stream named {name!r}")
    return found[0]


def trace(c: cb.Corpus, f: cb.Features, first: int, last: int, dump: bool = False, gate: bool = True,
          out=print) -> cb.Run:
    """Run the default (without the pre-gate: ``gate=False``) on the corpus stream, printing frames first..last."""
    s = c.stream
    close, decide_one = F.NoveltyFilter._close, F.NoveltyFilter._decide_one
    wrapped = {nm: getattr(E, nm) for nm in CHOICES}

    def traced_close(self, source, st, now_ts, probes=None, sink=None, settled=False, ending=False):
        cand = st.candidate
        tokens = [h.token for h in cand.frames]
        near = first - 200 <= tokens[-1] <= last
        if near and dump:
            for h in cand.frames:
                v = E.view_of(cand, h)
                out(f"    f{h.token} score={h.score:.2f} thing={h.thing} still={h.still} px={v.pixels} "
                    f"whole={v.whole} edge={v.edge} view={v.view:.0f} shows={E.shows_thing(v)}")
        keeps = self._released if sink is None else sink
        before = len(keeps)
        r = close(self, source, st, now_ts, probes, sink, settled, ending)
        if near:
            out(f"  CLOSE at {tokens[-1]}: frames {tokens[0]}..{tokens[-1]} ({len(tokens)}) settled={settled}"
                f"{' ending' if ending else ''} -> "
                f"{[(t, d.pick, round(d.distance or 0, 3)) for t, d in keeps[before:]]}")
        return r

    def traced_decide_one(self, it, row, probes, routed):
        st = self._src[it.source]
        d = decide_one(self, it, row, probes, routed)
        if first <= it.token <= last:
            r, cand = s.renders[int(s.keys[it.token])], st.candidate
            hand = "" if s.hand is None else f" hand={bool(s.hand[it.token])}"
            out(f"{it.token} clip{r.frame} {s.state[it.token]}{hand} "
                f"d={d.distance if d.distance is None else round(d.distance, 3)} thr={round(d.threshold, 3)} "
                f"keep={d.keep} held={d.held} cand={'-' if cand is None else len(cand.frames)} "
                f"still={cand.still if cand else st.still_frames} recent={'y' if st.last_event else '-'}")
        return d

    def told(nm, fn):
        def choice(*args, **kw):
            r = fn(*args, **kw)
            extra = f" got={args[0]} h={args[1].token}" if nm == "seen_before" else ""
            picked = r.frame.token if hasattr(r, "frame") else (
                r[0].token if isinstance(r, tuple) and r and hasattr(r[0], "token") else r)
            out(f"      {nm} -> {picked}{extra}")
            return r
        return choice

    F.NoveltyFilter._close, F.NoveltyFilter._decide_one = traced_close, traced_decide_one
    if dump:
        for nm, fn in wrapped.items():
            setattr(E, nm, told(nm, fn))
    try:
        m = next(x for x in cb.methods() if x.name == ("default" if gate else "default, no pre-gate"))
        return cb.run_method(c, f, m)
    finally:
        F.NoveltyFilter._close, F.NoveltyFilter._decide_one = close, decide_one
        for nm, fn in wrapped.items():
            setattr(E, nm, fn)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stream")
    ap.add_argument("first", type=int)
    ap.add_argument("last", type=int)
    ap.add_argument("--dump", action="store_true", help="every frame of the events near the range, and the choices")
    ap.add_argument("--no-gate", action="store_true", help="the default without the pre-gate")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "corpus" / "cache")
    ap.add_argument("--seconds", type=float, default=300.0, help="a demo draw's length")
    args = ap.parse_args(argv)
    c = corpus_of(args.stream, args.data, args.seconds)
    args.cache.mkdir(parents=True, exist_ok=True)
    run = trace(c, cb.features(c.stream, args.cache), args.first, args.last, args.dump, not args.no_gate)
    print("kept", run.kept)
    print(cb.SCORERS[c.kind](c, run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
