"""Events given up after TRIES frames while a frame ranked lower would have been kept, draw by draw.

`python benchmarks/given_up.py --seeds 230-249 [--looks night] [--fps 5] [--cache benchmarks/out/corpus/cache]`

An event that passed the threshold tries its best views, at most ``events.TRIES`` of them (each try an exact search
and the pixel memory's test); when every one was seen before or is no longer novel, nothing is kept. This runs the
default on demo draws (as demo_draws.py) and, for every event given up with more frames in its pool than that,
asks the frames ranked lower the same questions: the first that would have been kept is printed as (first frame,
last frame, that frame, its rank, the pool's size, shows a thing, mask pixels the border cuts). Each missed visitor
is printed with such an event while it was in view, if any: a miss a longer list of tries would have found. The
events given up whose visitor was kept elsewhere are what the same change would keep twice (benchmarks/QUALITY.md,
finding 54). The filter's decisions are not changed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.corpus_bench import Method, demo_corpus, features, run_method  # noqa: E402
from benchmarks.demo_draws import listing, seeds  # noqa: E402
from edgefilter.config import FilterConfig  # noqa: E402
from edgefilter.novelty import events  # noqa: E402


def while_in_view(found: list[tuple], thing) -> list[tuple]:
    """The events of ``found`` (as printed) whose frame that would be kept shows ``thing`` in view."""
    return [x for x in found if thing.visible[0] <= x[2] < thing.visible[1]]


def for_others(found: list[tuple], missed: list) -> list[tuple]:
    """The events of ``found`` that would keep a frame while none of the ``missed`` visitors is in view: a visitor
    kept elsewhere, kept twice."""
    theirs = {x for thing in missed for x in while_in_view(found, thing)}
    return [x for x in found if x not in theirs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", required=True, help="seed range, as demo_draws.py's (e.g. 230-249)")
    ap.add_argument("--looks", nargs="*", default=[], choices=["mirror", "night"])
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "corpus" / "cache")
    args = ap.parse_args(argv)

    found: list[tuple] = []
    ranked_view = events.ranked_view

    def asking_on(cand, settle_ratio, exact, known):
        got = ranked_view(cand, settle_ratio, exact, known)
        if got is None:
            pool = [h for h in cand.frames if h.score > settle_ratio]
            ranked = events.best_first(cand, pool)
            for rank, h in enumerate(ranked[events.TRIES:], events.TRIES):
                ratio = events.relaxed(cand, h, settle_ratio)
                ex = exact(h, ratio)
                if ex.score > ratio and not events.seen_before(ex, h, known):
                    shown = events.view_of(cand, h)
                    found.append((int(cand.frames[0].token), int(cand.frames[-1].token), int(h.token), rank,
                                  len(ranked), events.shows_thing(shown), shown.edge))
                    break
        return got

    events.ranked_view = asking_on
    misses = kept_twice = given_up = 0
    for seed in seeds(args.seeds):
        found.clear()
        c = demo_corpus(seed=seed, fps=args.fps, split="listed", looks=tuple(args.looks))
        run = run_method(c, features(c.stream, args.cache), Method("default", FilterConfig()))
        missed = []
        for thing, line in zip(c.things, listing(c, run)):
            if line.endswith("MISSED"):
                missed.append(thing)
                print(f"{seed} {line} | a frame ranked lower would be kept: {while_in_view(found, thing) or 'none'}")
        misses += len(missed)
        others = for_others(found, missed)
        given_up += len(found)
        kept_twice += len(others)
        print(f"{seed} events given up with a frame past TRIES that would be kept: {found or 'none'}; "
              f"of them for visitors kept elsewhere: {others or 'none'}", flush=True)
    print(f"{args.seeds} {' '.join(args.looks) or 'day'} {args.fps:g} fps: {misses} visitors missed; "
          f"{given_up} events given up with a frame past TRIES that would be kept, "
          f"{given_up - kept_twice} of them for a missed visitor, {kept_twice} for a visitor kept elsewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
