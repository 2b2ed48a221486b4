"""benchmarks/trace_events.py, the tool QUALITY.md's traces are read with: it prints a stream's decisions frame by
frame and the choices made when an event closes, and keeps what the default keeps without it."""
from __future__ import annotations

import inspect

from benchmarks import corpus_bench as cb
from benchmarks import trace_events
from edgefilter.novelty import events, filter


def test_a_traced_demo_draw_shows_each_frame_and_each_close_and_keeps_what_the_default_keeps(tmp_path):
    c = trace_events.corpus_of("3:5", tmp_path, 24.0)  # 120 frames of the quick start's camera, seed 3
    f = cb.features(c.stream, tmp_path)
    lines: list[str] = []
    asks: list[list[str]] = []  # what the traced close takes: all that the filter may pass (a source's end: ending)

    def out(line: str) -> None:
        lines.append(line)
        asks.append(list(inspect.signature(filter.NoveltyFilter._close).parameters))
    run = trace_events.trace(c, f, 0, 119, dump=True, out=out)
    assert asks[0] == list(inspect.signature(filter.NoveltyFilter._close).parameters)
    plain = cb.run_method(c, f, next(m for m in cb.methods() if m.name == "default"))
    assert run.kept == plain.kept and len(run.kept) >= 2, (run.kept, plain.kept)
    assert sum(line.split(" ")[0].isdigit() for line in lines) == 120
    assert sum(line.startswith("  CLOSE at") for line in lines) >= len(run.kept) - 1
    assert any(line.strip().startswith(("ranked_view ->", "settled_pick ->")) for line in lines)
    # the filter's own steps are back as they were
    assert events.ranked_view.__name__ == "ranked_view" and filter.NoveltyFilter._close.__name__ == "_close"
