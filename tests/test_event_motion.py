"""benchmarks/event_motion.py, the measure QUALITY.md's finding 77 is read with: how far the thing of a kept event
moves against its size, how much of the event the border cuts, and which rule on them would drop which keeps."""
from __future__ import annotations

import numpy as np

from benchmarks import event_motion
from edgefilter.novelty import filter


def box(x: int, y: int = 10, arm: bool = False) -> np.ndarray:
    m = np.zeros((36, 64), bool)
    m[y:y + 8, x:x + 8] = True
    if arm:
        m[:y, x + 3:x + 5] = True  # joined to the top border
    return m


def test_a_thing_that_stays_put_measures_near_nothing_and_one_that_crosses_the_view_far():
    stays = [box(30, arm=n % 2 == 0) for n in range(6)]
    got = event_motion.motion(stays, [30 if n % 2 == 0 else 0 for n in range(6)], at=1)
    assert got["dmax"] < 0.3 and got["cut"] == 0.5 and got["pixels"] == 64
    crosses = [box(4 + 10 * n) for n in range(6)]
    far = event_motion.motion(crosses, [0] * 6, at=3)
    assert far["dmax"] >= 2.0 and far["union"] == 6.0 and far["cut"] == 0.0
    assert event_motion.motion([None, np.zeros((36, 64), bool)], [0, 0], at=1) is None  # nothing to measure


def test_a_demo_draw_gives_a_row_per_best_view_and_the_filter_is_left_as_it_was(tmp_path):
    rows = event_motion.run("3:5", tmp_path, tmp_path, seconds=24.0)  # 120 frames of the quick start's camera
    assert rows and all(r["what"] == "thing" and r["frames"] >= 1 and r["pixels"] >= 1 for r in rows)
    lines = event_motion.separation(rows + [{**rows[0], "what": "hand"}])
    assert lines[0] == f"1 hands, {len(rows)} other best-view keeps"
    assert lines[1].startswith("hands: past the threshold they had to pass ") and lines[2].startswith("other keeps: ")
    assert lines[3].startswith(f"hands (1): dmax median {rows[0]['dmax']} ")
    assert sum(line.startswith("| dmax <= ") for line in lines) == 12
    assert not any(line.startswith("fitted") for line in lines)  # the hand copies a keep: nothing parts them
    assert filter.NoveltyFilter._close.__name__ == "_close"


def test_the_fitted_pair_drops_the_most_hands_and_no_other_keep():
    def row(what: str, seconds: float, dmax: float) -> dict:
        return {"what": what, "seconds": seconds, "dmax": dmax, "union": 1.0, "cut": 1.0, "past": 1.0}
    hands = [row("hand", 3.0, 0.2), row("hand", 2.0, 0.3), row("hand", 4.0, 0.9)]
    others = [row("thing", 1.0, 0.1), row("thing", 2.5, 0.5)]  # the second rules out 2 s and 0.9
    lines = event_motion.separation(hands + others)
    assert lines[-1] == "fitted to this sample: seconds >= 2.0 and dmax <= 0.3 drops 2 hands and no other keep"
    assert "other keeps the border cuts in half their frames or more (2): dmax median 0.5 (0.1-0.5), union median 1.0" \
        in lines
