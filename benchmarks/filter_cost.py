"""The novelty filter's own cost per frame, replaying the corpus bench's cached features.

`python benchmarks/filter_cost.py [--streams demo-visitors static-street] [--data ../shared/data] [--revs REV ...]
[--rounds N]`

For each stream: milliseconds of `NoveltyFilter.decide` (and the pre-gate, where on) per frame, with the
default settings (regional novelty on) and with the whole image only, each with and without the pre-gate,
measured side by side in one run on the same features (run `benchmarks/corpus_bench.py` once first to
fill the cache; a stream not in the cache is embedded here), and the change test (view.change_mask, run
several times per frame: pre-gate, stillness, changed cells, known scenes) per call on the stream's
consecutive thumbnails. Single-threaded wall time: compare rows, not machines. ``--revs``: the defaults
(regions and pre-gate on) of today's filter and of each commit's (loaded from git as corpus_bench's rows
are, each with its own commit's pre-gate: corpus_bench.gate_class_at) side by side, taking turns ``--rounds`` times.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus_bench as cb  # noqa: E402
from edgefilter.config import FilterConfig  # noqa: E402
from edgefilter.novelty.view import change_mask  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", nargs="*", default=["demo-visitors", "static-street"])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "corpus" / "cache")
    ap.add_argument("--revs", nargs="*", default=[], help="commits whose default filter runs beside today's")
    ap.add_argument("--rounds", type=int, default=1, help="turns of today's filter and each commit's")
    args = ap.parse_args(argv)
    corpora = {c.stream.name: c for c in cb.build_corpus(args.data if args.data.is_dir() else None)}
    print("| stream | frames | filter | regional | pre-gate | ms per frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.streams:
        c = corpora[name]
        c.restart_at = None  # the filter's cost alone, not a save and load
        f = cb.features(c.stream, args.cache)

        def row(m: cb.Method) -> None:
            t0 = time.perf_counter()
            cb.run_method(c, f, m)
            ms = (time.perf_counter() - t0) / len(c.stream) * 1e3
            print(f"| {name} | {len(c.stream)} | {m.rev or 'today'} | {'on' if m.cfg.regional else 'off'} "
                  f"| {'on' if m.gate else 'off'} | {ms:.2f} |", flush=True)

        for regional in (True, False):
            for gate in (True, False):
                row(cb.Method("cost", dataclasses.replace(FilterConfig(), regional=regional), gate=gate))
        for _ in range(args.rounds if args.revs else 0):
            for rev in [None, *args.revs]:
                row(cb.Method("cost", FilterConfig(), rev=rev))
        views = [f.view[int(k)] for k in c.stream.keys[:2001]]
        t0 = time.perf_counter()
        for a, b in zip(views[1:], views[:-1]):
            change_mask(a, b)
        print(f"| {name}: change test, ms per call | {len(views) - 1} | today | | | "
              f"{(time.perf_counter() - t0) / (len(views) - 1) * 1e3:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
