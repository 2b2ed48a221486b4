"""A camera that moves: a PTZ camera on a preset tour, through the real default model on generated scenes.

A turn of the camera changes the whole view: the rules for a thing in a fixed view (a car cut by the border, one on
its way in, an event that fades) do not hold, and the picture is the view the camera comes to rest on, once
(benchmarks/QUALITY.md, finding 79). The turn is told from shake and from a thing moving by ``view.moved``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefilter.clock import FakeClock
from edgefilter.config import FilterConfig, GatesConfig
from edgefilter.gates import ChangeGate
from edgefilter.model import Embedder
from edgefilter.novelty import NoveltyFilter
from edgefilter.novelty.events import Candidate, Held, camera_moved
from edgefilter.novelty.ground import CELL, RESTING, Ground, Spot
from edgefilter.novelty.view import moved, view_thumbnail
from pipeline import camera, run, run_with_cells
from scenes import H, W, park, shelves, street

ROOT = Path(__file__).resolve().parent.parent
PANORAMA = np.ascontiguousarray(np.hstack([street(1), shelves(2), park(3)]))
PRESETS = (0, W, 2 * W)


def view_at(x: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """The camera's view with its left edge at ``x`` of the panorama, smeared by a pan of ``speed`` px a frame
    (a quarter of the frame's time exposed), with a camera's shake, exposure and noise."""
    img = PANORAMA[:, x:x + W]
    blur = int(speed / 4)
    return camera(cv2.blur(img, (blur, 1)) if blur > 1 else img.copy(), rng, shake=2, exposure=0.08)


def tour(rounds: int, rng: np.random.Generator, dwell: int = 30, pan: int = 12) -> tuple[list, list]:
    """Frames at 10 fps of a tour of PRESETS, ``rounds`` times: ``dwell`` frames at each, ``pan`` frames to the next
    and twice as many back to the first at the end of a round, then at rest there; and per frame the preset in view
    (None while the camera moves)."""
    frames, where = [], []
    for _ in range(rounds):
        stops = list(PRESETS) + [PRESETS[0]]
        for i, (a, z) in enumerate(zip(stops, stops[1:])):
            for _ in range(dwell):
                frames.append(view_at(a, 0, rng))
                where.append(i)
            steps = pan * (2 if z < a else 1)
            for k in range(1, steps):
                frames.append(view_at(int(a + (z - a) * k / steps), abs(z - a) / steps, rng))
                where.append(None)
    for _ in range(dwell):  # the tour goes on: the camera at rest at the first preset again
        frames.append(view_at(PRESETS[0], 0, rng))
        where.append(0)
    return frames, where


@pytest.fixture(scope="module")
def regions_embedder() -> Embedder:
    return Embedder(ROOT / "models" / "efficientnet_lite0_regions.onnx", providers="cpu", threads=1)


def test_moved_tells_a_turn_of_the_camera_from_shake_and_from_a_car_on_a_bare_road():
    rng = np.random.default_rng(1)
    still = view_thumbnail(view_at(300, 0, rng))
    assert moved(view_thumbnail(view_at(340, 40, rng)), still)  # a pan of 40 px a frame, smeared
    assert moved(view_thumbnail(view_at(280, 0, rng)), still)  # 20 px the other way
    assert not moved(view_thumbnail(view_at(300, 0, rng)), still)  # shake, exposure and noise only
    # a bare road, its lane marks the only texture besides a car: the phase correlation finds the car's shift, and
    # the road's marks out of place under it say the camera stood still
    road = np.full((H, W, 3), (95, 95, 100), np.uint8)
    for x in range(0, W, 160):
        cv2.rectangle(road, (x, 300), (x + 60, 304), (220, 220, 220), -1)

    def car_at(x: int) -> np.ndarray:
        img = road.copy()
        cv2.rectangle(img, (x, 120), (x + 200, 220), (40, 40, 150), -1)
        cv2.rectangle(img, (x + 30, 130), (x + 120, 170), (230, 230, 235), -1)
        return view_thumbnail(camera(img, rng, shake=1, exposure=0.02))

    assert not moved(car_at(248), car_at(200))


def test_a_view_with_nothing_to_see_never_moved():
    # A lens cap, a black night, fog: the phase correlation of two frames of noise peaks anywhere (a shift of 6 px
    # and more), and nothing is left changed on the part both show: before finding 80 a black view "moved" in 4 of 5
    # pairs. A bare road at night at half contrast is still one to see a turn in.
    rng = np.random.default_rng(3)

    def blank(level: int) -> np.ndarray:
        img = np.full((H, W, 3), level, np.float32) + rng.normal(0, 6, (H, W, 3))
        return view_thumbnail(np.clip(img, 0, 255).astype(np.uint8))

    for level in (0, 5, 20, 60, 128):
        assert not any(moved(blank(level), blank(level)) for _ in range(40)), level
    road = np.full((H, W, 3), 40, np.uint8)
    for x in range(0, 2 * W, 160):
        cv2.rectangle(road, (x, 300), (x + 60, 304), (70, 70, 70), -1)
        cv2.rectangle(road, (x + 40, 60), (x + 90, 140), (55, 55, 55), -1)
    wide = np.hstack([road, road[:, ::-1]])
    assert moved(view_thumbnail(camera(wide[:, 40:40 + W].copy(), rng, shake=1, exposure=0.02)),
                 view_thumbnail(camera(wide[:, :W].copy(), rng, shake=1, exposure=0.02)))


def test_a_jolt_that_is_back_a_frame_later_is_no_turn_a_pan_is():
    # A camera shaken 24 px (6 thumbnail pixels) one way and back a frame later, twice: each jolted frame is the one
    # 0.3 s before it shifted as a whole, but a turn goes on. Before finding 80 a 320x180 busy highway shaken so
    # took its event for a turn and kept 3 frames fewer, waiting 10 s for a keep instead of 5.4.
    rng = np.random.default_rng(6)

    def event(xs: list[int]) -> Candidate:
        frames = [Held(n, n / 10, np.zeros(4, np.float32), None, view_thumbnail(view_at(x, 0, rng)), 0.3, score=2.0)
                  for n, x in enumerate(xs)]
        return Candidate(frames, (0, 0), view_thumbnail(view_at(xs[0], 0, rng)))

    assert not camera_moved(event([300, 300, 300, 324, 300, 300, 300, 324, 300, 300]))
    assert camera_moved(event([300, 300, 300, 316, 332, 348, 364, 380, 396, 412]))  # a pan of 16 px a frame


def test_a_ptz_tour_keeps_each_preset_once_at_rest_and_nothing_while_it_pans(regions_embedder):
    # Before finding 79 the defaults kept a smeared frame of the pan for one preset (its rest view, cut by the
    # border against the view before, waited as a car half in view would), and the presets or pans again in the
    # second round.
    frames, where = tour(2, np.random.default_rng(2))
    kept = run_with_cells(FilterConfig(), regions_embedder, frames)
    first_round = (len(frames) - 30) // 2
    assert all(where[k] is not None for k in kept), [(k, where[k]) for k in kept]  # never a frame of a pan
    assert all(k < first_round for k in kept), kept  # the second round is the first again
    assert sorted(where[k] for k in kept) == [0, 1, 2], [(k, where[k]) for k in kept]  # each preset once
    # the naive rule keeps the pans' mixed views
    naive = run_with_cells(FilterConfig(mode="frame", regional=False), regions_embedder, frames)
    assert any(where[k] is None for k in naive), [(k, where[k]) for k in naive]


def flight(speed: float, rng: np.random.Generator, legs: int = 2) -> tuple[list, list]:
    """Frames at 10 fps of a camera that never stops (a drone over a strip): over PANORAMA end to end and back,
    ``legs`` times, at ``speed`` px/s; and per frame the left edge of its view."""
    frames, xs, x = [], [], 0.0
    for leg in range(legs):
        end = PANORAMA.shape[1] - W if leg % 2 == 0 else 0
        while True:
            frames.append(view_at(int(round(x)), speed / 10, rng))
            xs.append(int(round(x)))
            if x == end:
                break
            x = min(x + speed / 10, end) if end > x else max(x - speed / 10, end)
    return frames, xs


def shown(xs: list[int]) -> float:
    """The share of PANORAMA that views with their left edges at ``xs`` show."""
    seen = np.zeros(PANORAMA.shape[1], bool)
    for x in xs:
        seen[x:x + W] = True
    return float(seen.mean())


def test_ground_places_a_flying_cameras_frames_where_they_show_it():
    # the key frame moves on every KEY_STEP: to and fro over 1280 px, the error stays within 2 thumbnail pixels (8 of
    # 640), and the way back finds the ground where the way out left it
    frames, xs = flight(240.0, np.random.default_rng(3))
    ground = Ground()
    spots = [ground.step(view_thumbnail(f)) for f in frames]
    assert {s.segment for s in spots} == {0}
    errors = [s.x - (x - xs[0]) / 4 for s, x in zip(spots, xs)]  # thumbnails are a quarter of the frame
    assert max(abs(e) for e in errors) <= 2.0, errors
    assert max(abs(s.y) for s in spots) <= 2.0
    # a view with nothing to see loses the camera: the next frame begins a new segment
    assert ground.step(view_thumbnail(np.full((H, W, 3), 128, np.uint8))).segment == 1


def test_ground_places_a_frame_the_pre_gate_found_unchanged_where_the_one_before_lay_only_while_the_camera_rests():
    rng = np.random.default_rng(5)
    ground = Ground()
    for _ in range(RESTING + 1):  # a fixed camera's shake and noise: at rest
        ground.step(view_thumbnail(view_at(300, 0, rng)))
    rest = ground.step(view_thumbnail(view_at(300, 0, rng)))
    # at rest, an unchanged frame costs nothing: it is not placed (so a view 40 px on, said to be unchanged, lies
    # where the frame before did)
    assert ground.step(view_thumbnail(view_at(340, 0, rng)), unchanged=True) == rest
    # a slow pan (2 px of 640 a frame, under shake's range: the pre-gate finds its frames unchanged) is placed frame by
    # frame all the same
    ground, xs = Ground(), list(range(300, 420, 2))
    spots = [ground.step(view_thumbnail(view_at(x, 0, rng)), unchanged=k > 0) for k, x in enumerate(xs)]
    assert max(abs(s.x - (x - xs[0]) / 4) for s, x in zip(spots, xs)) <= 2.0


def test_ground_lost_keeps_the_latest_frame_that_shows_what_leaves_the_view_and_never_for_shake():
    ground = Ground()
    ground.size = (160, 90)
    ground.kept(Spot(0, 0.0, 0.0), np.zeros((90, 160), np.uint8))
    # shake of a pixel about the kept view: nothing leaves the view that no keep shows
    jitter = [Spot(0, dx, dy) for dx, dy in [(1, 0), (-1, 1), (0, -1), (1, 1), (-1, -1)]]
    assert ground.lost(jitter) is None
    # flying right at 6 px a frame: the ground past the kept view leaves once the newest view is 12 px (SOLID cells)
    # past its edge, and the frame kept shows all of it and SOLID cells of the kept view's edge
    pan = [Spot(0, 6.0 * k, 0.0) for k in range(1, 30)]
    assert all(ground.lost(pan[:n]) is None for n in range(1, 29))
    i = ground.lost(pan)  # the newest at 174: 12 px past the kept view's edge
    assert i is not None and 160 - 4 * CELL <= pan[i].x < 160 - CELL, (i, pan[i])
    # another segment's keeps show nothing of this one
    assert ground.unshown([Spot(1, 0.0, 0.0)]) == 0
    assert ground.unshown(jitter) is None


@pytest.mark.parametrize("speed", [160.0, 240.0])
def test_a_camera_that_never_stops_keeps_all_of_its_ground_once(regions_embedder, speed):
    # Kept once per max_hold_s, a camera flying at 160 and 240 px/s of 640 showed 0.89 and 0.67 of its ground, and the
    # way back kept views that mixed those it kept (benchmarks/QUALITY.md, findings 80 and 81)
    frames, xs = flight(speed, np.random.default_rng(4))
    kept = run_with_cells(FilterConfig(), regions_embedder, frames)
    turn = max(i for i, x in enumerate(xs) if x == PANORAMA.shape[1] - W)  # the camera turns back at the far end
    assert shown([xs[k] for k in kept]) == 1.0, [(k, xs[k]) for k in kept]
    assert all(k <= turn for k in kept), [(k, xs[k]) for k in kept]  # the way back shows nothing new
    assert len(kept) <= 4, [(k, xs[k]) for k in kept]  # 1920 px: three views' widths, and the last one's end


def test_an_event_that_goes_on_after_a_ground_keep_forgets_the_views_of_the_frames_it_let_go():
    # an event's frames' changes are cached by the frames' ids; a frame made later may get the id of one let go
    frames, _ = flight(240.0, np.random.default_rng(7), legs=1)
    rng = np.random.default_rng(8)
    filt = NoveltyFilter(FilterConfig(), 16, ["cam"], FakeClock())
    ground_keeps = 0
    for n, img in enumerate(frames):
        v = rng.normal(size=16).astype(np.float32)  # every frame far from every other: the camera moves on
        filt.decide([("cam", n / 10.0, v, None, n, view_thumbnail(img))])
        ground_keeps += sum(d.pick == "ground" for _, d in filt.released())
        filt.discarded()
        cand = filt._src["cam"].candidate
        if cand is not None:
            assert set(cand.views) <= {id(h) for h in cand.frames}
    assert ground_keeps >= 2


def restarted(embedder: Embedder, frames: list[np.ndarray], at: int, directory: Path) -> tuple[list[int], list[int]]:
    """run_with_cells at the defaults, with the daemon restarted at frame ``at`` (open events flushed, the state
    saved, a new filter and pre-gate from it): the frames kept before the restart, and after it."""
    def started() -> NoveltyFilter:
        return NoveltyFilter(FilterConfig(), embedder.dim, ["cam"], FakeClock(), region_count=embedder.region_count,
                             region_dim=embedder.region_dim)
    filt = started()
    before = run(filt, embedder, frames[:at], gate=ChangeGate(GatesConfig())) + [t for t, _ in filt.flush()]
    filt.save(directory, "model")
    filt = started()
    assert filt.load(directory, "model")
    after = run(filt, embedder, frames[at:], start=at, gate=ChangeGate(GatesConfig())) + [t for t, _ in filt.flush()]
    return before, after


def test_a_restart_keeps_no_preset_of_a_ptz_tour_again(regions_embedder, tmp_path):
    # Before finding 82 the kept frames' places were not saved: restarted in its second round, the tour kept each
    # preset again as the camera left it (the ground no keep showed, to the new process)
    frames, where = tour(2, np.random.default_rng(2))
    first_round = (len(frames) - 30) // 2
    before, after = restarted(regions_embedder, frames, first_round + 10, tmp_path)
    assert sorted(where[k] for k in before) == [0, 1, 2], [(k, where[k]) for k in before]
    assert after == [], [(k, where[k]) for k in after]


def test_a_restart_keeps_no_ground_of_a_flight_again(regions_embedder, tmp_path):
    # restarted as it turns back at the far end, a camera that never stops flies back over ground it kept
    frames, xs = flight(160.0, np.random.default_rng(4))
    turn = max(i for i, x in enumerate(xs) if x == PANORAMA.shape[1] - W)
    before, after = restarted(regions_embedder, frames, turn + 3, tmp_path)
    assert shown([xs[k] for k in before]) == 1.0, [(k, xs[k]) for k in before]
    assert after == [], [(k, xs[k]) for k in after]


def test_ground_ties_a_new_segment_to_kept_ground_and_restores_saved_keeps():
    frames, xs = flight(240.0, np.random.default_rng(3))
    turn = max(i for i, x in enumerate(xs) if x == PANORAMA.shape[1] - W)
    out, back = [view_thumbnail(f) for f in frames[:turn + 1]], [view_thumbnail(f) for f in frames[turn + 1:]]
    ground = Ground()
    spots = [ground.step(v) for v in out]
    for i in range(0, len(out), 4):  # keeps a view's width apart at most: the way out is all kept
        ground.kept(spots[i], out[i])
    ground.kept(spots[-1], out[-1])
    # lost over a blank view, the camera flies back over what it kept: the new segment is tied to the first, and
    # what its frames show was kept
    ground.step(view_thumbnail(np.full((H, W, 3), 128, np.uint8)))
    again = [ground.step(v) for v in back]
    assert {s.segment for s in again} == {ground.segment} and ground.segment > 0
    assert ground.unshown(again) is None
    # the same keeps saved and restored (a restart): a new Ground knows them once its first frame shows one
    saved = ground.state()
    assert saved["spots"].shape == (len(saved["viewed"]), 3) and saved["views"].dtype == np.uint8
    assert len(saved["views"]) == saved["viewed"].sum() > 1
    restored = Ground()
    restored.restore(saved["spots"], saved["viewed"], saved["views"])
    after = [restored.step(v) for v in back]
    assert restored.unshown(after) is None
    fresh = Ground()
    assert fresh.unshown([fresh.step(v) for v in back]) is not None  # without them all of it is unshown


def test_kept_places_that_do_not_match_their_thumbnails_are_not_restored_and_the_rest_is(tmp_path, caplog):
    from edgefilter.state import load_state, save_state
    rng = np.random.default_rng(9)
    filt = NoveltyFilter(FilterConfig(), 16, ["cam"], FakeClock())
    for n in range(3):
        filt.decide([("cam", n / 10.0, np.ones(16, np.float32), None, n, view_thumbnail(view_at(300, 0, rng)))])
    filt.save(tmp_path, "m")
    payload = load_state(tmp_path, "novelty", "m")
    assert payload["ground0.spots"].shape == (1, 3) and payload["ground0.views"].shape == (1, 90, 160)
    payload["ground0.viewed"] = np.zeros(1, bool)  # says no thumbnail, and one came
    save_state(tmp_path, "novelty", payload, "m")
    again = NoveltyFilter(FilterConfig(), 16, ["cam"], FakeClock())
    assert again.load(tmp_path, "m")
    assert "kept places of 'cam' do not match their 1 thumbnails" in caplog.text
    assert again._src["cam"].ground.state() == {} and again.index_size("cam") == 1
    payload["ground0.viewed"], payload["ground0.spots"] = np.ones(1, bool), np.full((1, 3), np.nan)  # no place
    save_state(tmp_path, "novelty", payload, "m")
    assert again.load(tmp_path, "m") and again._src["cam"].ground.state() == {}
