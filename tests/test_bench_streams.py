"""The quality benchmark's stream builder, scoring and baselines, on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import baselines
from benchmarks.streams import (Event, Perturb, StreamBuilder, events_of, frames_for_recall, hold_lengths,
                                objects_stream,
                                score)


class _Const:
    name = "const"

    def frame(self, n):
        return np.full((36, 64, 3), 10 * n, np.uint8)


def test_events_merge_runs_and_mark_returning_states():
    state = ["a", "a", None, "a", "b", "b", None, "a", "c"]
    assert events_of(state) == [Event(0, 4, "a", True), Event(4, 6, "b", True), Event(7, 8, "a", False),
                                Event(8, 9, "c", True)]
    assert events_of([None, None]) == []


def test_score_recall_redundancy_and_delay_on_a_hand_made_stream():
    #        0    1    2    3    4    5    6    7    8    9   10   11
    state = ["a", "a", "a", "a", None, "b", "b", "b", "b", "a", "a", "c"]
    static = [0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]
    s = score(state, static, kept=[1, 2, 3, 7, 8, 9])
    assert s.events == 3 and s.hit == 2 and s.recall == pytest.approx(2 / 3)   # a, b hit; c missed
    assert s.missed == ["c @11"]
    assert s.kept == 6 and s.keep_ratio == pytest.approx(0.5)
    assert s.redundant == 4                      # a: 2, 3, 9 after 1; b: 8 after 7
    assert s.static_redundant == 4 and s.static_redundant_max == 2   # run 1-3: {2, 3}; 6-8: {8}; 9-10: {9}
    assert s.delay_mean == pytest.approx((1 + 2) / 2) and s.delay_max == 2
    # every change counts when returning states are events too
    assert score(state, static, kept=[1, 9], novel_only=False).recall == pytest.approx(2 / 4)


def test_score_delay_counts_to_the_decision_and_duplicates_are_ignored():
    state = ["a"] * 5 + ["b"] * 5
    s = score(state, [False] * 10, kept=[0, 6, 6], decided={0: 0, 6: 9})
    assert s.kept == 2 and s.recall == 1.0 and s.delay_max == 4 and s.delay_mean == pytest.approx(2.0)


def test_frames_for_recall_takes_the_fewest_frames_reaching_the_target():
    pts = [(50, 1.0, "p50"), (20, 0.96, "p20"), (10, 0.9, "p10"), (30, 0.95, "p30")]
    assert frames_for_recall(pts, 0.95) == (20, 0.96, "p20")
    assert frames_for_recall([(10, 0.5, "x"), (40, 0.8, "y"), (30, 0.8, "z")], 0.95) == (None, 0.8, "z")
    assert frames_for_recall([], 0.95) == (None, 0.0, None)


def test_hold_repeats_frames_without_showing_the_same_render_twice_in_a_row():
    b = StreamBuilder("t", 10.0, "test", seed=3)
    o = _Const()
    b.add(o, 0, "x")
    b.hold(o, [0, 1, 2], 30.0, "x")
    s = b.build()
    assert len(s) == 301 and s.static.sum() == 300 and not s.static[0]
    assert np.all(s.keys[1:] != s.keys[:-1])
    assert len(s.renders) < 100            # repeats reuse a bounded bank of perturbations
    assert {s.renders[k].frame for k in s.keys[1:]} == {0, 1, 2}


def test_perturb_is_deterministic_and_keeps_the_shape():
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    p = Perturb(gain=1.2, offset=-5, noise=4, seed=7, jpeg=60, dx=2, dy=-1)
    a, b = p.apply(img), p.apply(img)
    assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, img)
    assert np.array_equal(Perturb().apply(img), img)


def test_rain_falls_anew_in_each_render_of_a_held_frame_and_haze_halves_the_contrast():
    from benchmarks.streams import LookOrigin

    grey = _Const()
    rain = LookOrigin(grey, ["rain"])
    b = StreamBuilder("t", 10.0, "test", seed=3)
    b.hold(rain, [2], 10.0, "x")
    s = b.build()
    first, second = s.render_image(int(s.keys[0])), s.render_image(int(s.keys[1]))
    assert first.shape == (36, 64, 3)
    assert not np.array_equal(first, second)                     # the same scene, other drops
    assert np.array_equal(first, s.render_image(int(s.keys[0])))  # a render is the same image each time (cached)
    dry = Perturb().apply(grey.frame(2)).astype(int)
    streaks = rain.weather(np.full((360, 640, 3), 100, np.uint8), 2, 7).astype(int) - 85  # overcast: 0.85 of 100
    assert 0.01 < (streaks > 10).mean() < 0.1 and streaks.min() >= 0        # drops only brighten, here and there
    assert np.array_equal(LookOrigin(grey, ["night"]).weather(dry.astype(np.uint8), 2, 7), dry)  # no rain: as is
    haze = LookOrigin(_Stripes(), ["haze"]).frame(0).astype(int)
    assert 0.35 < np.ptp(haze[18, 20:44]) / 200 < 0.5 and haze.min() > 100    # a bright veil, half the contrast


class _Stripes:
    name = "stripes"

    def frame(self, n):
        img = np.zeros((36, 64, 3), np.uint8)
        img[:, 32:] = 200
        return img


def test_objects_stream_ground_truth():
    s = objects_stream(2.0, fps=5.0)
    ev = events_of(s.state)
    assert [e.state for e in ev][:3] == ["empty", "bag", "bag+box"]
    assert sum(e.novel for e in ev) == 9 and len(ev) == 11   # the empty street and the box alone come back
    assert s.image(0).shape == (360, 640, 3)


def test_greedy_matches_a_naive_implementation():
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 10, (12, 6, 8)).astype(np.float32)
    keys = rng.integers(0, 12, 300)
    for t in (5.0, 8.0, 11.0):
        kept, bank = [], []
        for i, k in enumerate(keys):
            if all(np.abs(feats[k] - f).mean() > t for f in bank):
                kept.append(i)
                bank.append(feats[k])
        assert baselines.greedy(keys, feats, baselines.pixel_distance, t) == kept


def test_hamming_uniform_and_k_center():
    a = np.packbits(np.array([1, 0, 1, 1, 0, 0, 0, 0], bool))
    b = np.packbits(np.array([0, 0, 1, 0, 0, 0, 0, 1], bool))
    assert baselines.hamming_distance(a[None], b).tolist() == [3]
    assert baselines.uniform(10, 4) == [0, 4, 8] and baselines.uniform(10, 4, phase=1) == [1, 5, 9]
    v = np.array([[1, 0, 0], [0.99, 0.14, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    order = baselines.k_center(v, 3)
    assert order[0] == 0 and set(order[1:]) == {2, 3}


def test_hold_filter_keeps_the_settled_frame_of_each_change():
    rng = np.random.default_rng(2)
    base = np.eye(4, 64, dtype=np.float32)
    seq = [0] * 20 + [1] * 3 + [2] * 20 + [3] * 20   # 1 is a short transition, 2 and 3 settle
    v = base[seq] + rng.normal(0, 0.01, (len(seq), 64)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    kept, decided = baselines.HoldFilter(settle=3).run(v)
    states = [seq[k] for k in kept]
    assert states == [0, 2, 3]
    assert all(decided[k] >= k for k in kept)


def test_irregular_holds_spread_log_uniformly_and_repeat_with_the_seed():
    assert hold_lengths(60.0, 1.0, 3, seed=0) == [60.0, 60.0, 60.0]
    holds = hold_lengths(120.0, 4.0, 200, seed=0)
    assert all(30.0 <= h <= 480.0 for h in holds)
    assert min(holds) < 40.0 and max(holds) > 360.0  # the whole range is used, not one period
    assert abs(float(np.median(np.log(holds))) - np.log(120.0)) < 0.3
    again = hold_lengths(120.0, 4.0, 5, seed=1)
    assert again == hold_lengths(120.0, 4.0, 5, seed=1) != hold_lengths(120.0, 4.0, 5, seed=2)


def test_a_visitor_is_alike_at_night_when_each_of_its_colours_comes_out_the_same_grey():
    # demo_draws' "of them alike to this camera": an IR camera at night halves the contrast and adds noise of 5 grey
    # levels; a red car after a brown one is the same grey car to it, a yellow one is not, and a red person
    # needs the same grey skin and trousers too
    from benchmarks.corpus_bench import alike_at_night, visit_greys
    from edgefilter.demo import _Visit

    def visit(kind, colour, skin=0, trousers=0):
        return _Visit(kind, colour, 0, 0.0, 1.0, 0.0, 0, 0.0, 1.0, skin, trousers, (0, 0), "")

    earlier = [visit_greys(visit("car", "brown")), visit_greys(visit("person", "orange", 1, 2))]
    assert alike_at_night(visit_greys(visit("car", "red")), earlier)
    assert not alike_at_night(visit_greys(visit("car", "yellow")), earlier)
    assert not alike_at_night(visit_greys(visit("dog", "brown")), earlier)  # another kind
    assert alike_at_night(visit_greys(visit("person", "orange", 1, 2)), earlier)
    assert not alike_at_night(visit_greys(visit("person", "orange", 1, 0)), earlier)  # other trousers' grey


def test_a_dog_is_faint_at_night_when_its_colour_comes_out_the_grey_of_the_sidewalk():
    # demo_draws' "of them faint to this camera": an orange dog is the sidewalk's grey to an IR camera at night;
    # a brown, black or white one is not, nor an orange person (skin and trousers) or car (windows and wheels)
    from benchmarks.corpus_bench import faint_at_night, visit_greys
    from edgefilter.demo import _Visit

    def visit(kind, colour):
        return _Visit(kind, colour, 0, 0.0, 1.0, 0.0, 0, 0.0, 1.0, 0, 0, (0, 0), "")

    assert faint_at_night(visit_greys(visit("dog", "orange")))
    assert not any(faint_at_night(visit_greys(visit("dog", c))) for c in ("brown", "black", "white"))
    assert not faint_at_night(visit_greys(visit("person", "orange")))
    assert not faint_at_night(visit_greys(visit("car", "orange")))


def _bottle_clip(tmp_path, frames: int = 40) -> None:
    """A stand-in for the bottle clip: ``frames`` frames of video and its labels (two table states, a hand between)."""
    import json

    import cv2

    out = cv2.VideoWriter(str(tmp_path / "bottle-detection.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    assert out.isOpened()
    for n in range(frames):
        out.write(np.full((48, 64, 3), 4 * n, np.uint8))
    out.release()
    (tmp_path / "labels.json").write_text(json.dumps({"bottle-detection.mp4": {
        "hand_in_view": [[15, 25]],
        "table_state": [{"frames": [0, 15], "bottles": "LMR"}, {"frames": [25, frames], "bottles": "MR"}]}}))


def test_the_bottle_clip_as_it_is_is_every_frame_once_unperturbed_with_its_labels_and_hands(tmp_path):
    from benchmarks.streams import Perturb, bottle_clip

    _bottle_clip(tmp_path)
    s = bottle_clip(tmp_path)
    assert [s.renders[int(k)].frame for k in s.keys] == list(range(40))
    assert all(r.perturb == Perturb() for r in s.renders) and not s.static.any()
    assert [n for n, hand in enumerate(s.hand) if hand] == list(range(15, 25))
    assert s.state[14] == "table LMR" and s.state[15] is None and s.state[25] == "table MR"


def test_the_bottle_stream_at_its_own_rate_marks_the_hand_and_holds_clear_of_it(tmp_path):
    from benchmarks.streams import bottle_stream

    _bottle_clip(tmp_path)
    s = bottle_stream(tmp_path, 0.5, fps=30.0, margin=0, hold_margin=3)
    clip = [s.renders[int(k)].frame for k in s.keys]
    assert s.name == "bottle-seed0-30fps"
    assert [c for c, hand in zip(clip, s.hand) if hand] == list(range(15, 25))  # each hand frame, once
    assert all(st is None for st, hand in zip(s.state, s.hand) if hand)
    assert s.state[clip.index(14)] == "table LMR" and s.state[clip.index(25)] == "table MR"  # margin 0: to the frame
    held = [c for c, static in zip(clip, s.static) if static]
    assert len(held) == 2 * 15 and max(held[:15]) == 15 - 3 - 1  # one hold per state, 3 frames clear of the hand
    # a keep while the hand is in view counts apart from the states: not redundant, not a recall
    kept = [0, clip.index(20), clip.index(30)]
    sc = score(s.state, s.static, kept)
    assert (sc.recall, sc.redundant, int(s.hand[kept].sum())) == (1.0, 0, 1)


def test_the_summary_names_each_target_a_row_misses_and_each_count_worse_than_naive():
    from benchmarks.corpus_bench import NAIVE, misses, summary

    naive = {"kept": 9, "recall": 0.75, "redundant": 1, "static_max": 0, "hand": 3}
    good = {"kept": 5, "recall": 1.0, "redundant": 0, "static_max": 0, "hand": 0}
    assert misses("states", good, naive) == []
    worse = dict(good, recall=0.5, redundant=2, static_max=2, hand=4)
    assert misses("states", worse, naive) == ["recall 0.50", "recall below naive", "redundant above naive",
                                              "static max 2", "4 hands in view (above naive)"]
    assert misses("objects", {"recall": 1.0, "redundant": 0, "best_view": 0.9}, None) == ["best view 0.90"]
    assert misses("static", {"before_restart": 1, "after_restart": 1}, None) == ["1 kept, 1 after restart"]
    assert misses("busy", {"max_gap_s": 9.0}, {"max_gap_s": 8.0}) == ["longest wait above naive"]
    results = [{"stream": "s", "kind": "states", "split": "held out", "rows": {NAIVE: naive, "default": worse}},
               {"stream": "t", "kind": "static", "split": "tuned",
                "rows": {"default": {"before_restart": 1, "after_restart": 0}}}]
    text = summary(results)
    assert "| s | held out | 9 / 0.75 / 1 / 0 / 3 | 5 / 0.50 / 2 / 2 / 4 | recall 0.50, recall below naive," in text
    assert "| t | tuned | - | 1 / 0 | none |" in text


def test_a_runs_two_rows_are_compared_stream_by_stream_by_their_kept_frames():
    from benchmarks.corpus_bench import rows_differ

    def row(kept, redundant=0):
        return {"kept": len(kept), "recall": 1.0, "redundant": redundant, "kept_frames": kept, "skipped": 0.5}

    base = "finding 36 default (abc1234)"
    results = [{"stream": "a", "rows": {"default": row([0, 5]), base: row([0, 5])}},
               {"stream": "b", "rows": {"default": row([0, 7]), base: row([0, 7, 9], redundant=1)}},
               {"stream": "c", "rows": {"default": row([0, 8]), base: row([0, 6])}},
               {"stream": "d", "rows": {"default": row([0])}}]
    assert rows_differ(results) == ["b: kept 3 -> 2, redundant 1 -> 0; kept [0, 7, 9] -> [0, 7]",
                                    "c: the same counts; kept [0, 6] -> [0, 8]",
                                    "1 streams kept the same frames, 2 other frames"]


def test_the_ground_a_moving_cameras_keeps_show_is_the_union_of_their_windows_over_the_panorama():
    from benchmarks.streams import LookOrigin, PanoramaOrigin, ground_shown

    panels = [np.full((360, 640, 3), 40 * i, np.uint8) for i in range(3)]  # a strip 1920 px wide
    b = StreamBuilder("walk", 10.0, "a walk over three panels", seed=1)
    wide = LookOrigin(PanoramaOrigin("strip", panels), ("night",))
    for x in range(0, 1281, 160):
        b.add(wide, PanoramaOrigin.frame_of(x, blur=12), None)
    s = b.build()
    assert ground_shown(s, []) == 0.0
    assert ground_shown(s, [0]) == pytest.approx(640 / 1920)
    assert ground_shown(s, [0, 4]) == pytest.approx(1280 / 1920)  # x 0 and 640: side by side
    assert ground_shown(s, [0, 1, 8]) == pytest.approx((800 + 640) / 1920)  # 640..1280 left unshown less 160
    still = StreamBuilder("still", 10.0, "one still", seed=1)
    still.add(_Const(), 0, "a")
    assert ground_shown(still.build(), [0]) is None  # no walk over a panorama
    from benchmarks.corpus_bench import brief, misses

    naive = {"kept": 17, "recall": 1.0, "redundant": 13, "static_max": 0, "hand": None, "ground": 1.0}
    row = dict(naive, kept=5, redundant=2, ground=0.86)
    assert misses("states", row, naive) == ["ground shown 0.860 (below naive)"]
    assert brief("states", row) == "5 / 1.00 / 2 / 0 / - / 0.860"
    assert brief("states", dict(row, ground=None)) == "5 / 1.00 / 2 / 0 / -"


def test_the_restart_table_prints_what_each_row_run_with_restarts_keeps_more():
    from benchmarks.corpus_bench import RESTART_AT, restart_table
    results = [{"stream": "s", "rows": {"default": {"kept": 4, "restarts": [0, 1, -1]}, "naive": {"kept": 9}}}]
    text = restart_table(results)
    assert "| s | default | 4 | +0 / +1 / -1 |" in text and "naive" not in text
    assert len(RESTART_AT) == 3 and restart_table([{"stream": "s", "rows": {"naive": {"kept": 9}}}]) == ""
