"""benchmarks/exposure_fit.py: the generated room of little contrast and the comparison of two pair runs."""
from __future__ import annotations

import numpy as np

from benchmarks import exposure_fit as ef
from edgefilter.novelty.view import VIEW_SIZE, change


def test_the_faint_room_changes_where_the_shadow_and_two_bottles_were_and_nowhere_else():
    rng = np.random.default_rng(0)
    before = ef.faint_room(rng, True, (20, 75, 130), 1.0, 0)
    assert before.shape == VIEW_SIZE[::-1] and before.dtype == np.uint8
    same = ef.faint_room(rng, True, (20, 75, 130), 1.0, 0)
    assert change(same, before).pixels == 0           # the room again, other noise: nothing changed
    after = ef.faint_room(rng, False, (130,), 1.0, 0)
    diff = np.abs(after.astype(int) - before.astype(int))
    assert diff[25:60, 20:32].mean() > 15 and diff[25:60, 75:87].mean() > 15   # the two bottles taken away
    assert diff[25:60, 130:142].mean() < 4 and diff[70:, :].mean() < 4         # the third and the table stay


def test_faint_reports_each_draw_and_compare_counts_pairs_that_move():
    rows = ef.faint(draws=2)
    assert [r["draw"] for r in rows] == [0, 1] and all({"gain", "offset", "pixels"} <= set(r) for r in rows)
    a = {"s": [0, 5, 40, 30], "t": [1]}
    b = {"s": [0, 6, 41, 12], "u": [1]}
    assert ef.compare(a, b) == ["s: 4 pairs, 3 differ, 1 by 10 pixels or more or across 23: [(30, 12)]"]
