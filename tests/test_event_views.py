"""Which frame of an event is kept, and which events count, decided with real thumbnails of generated frames.

The embeddings here are built by hand (each test says how far each frame is from what was kept) so that
each case isolates one rule of ``novelty/events.py`` / ``novelty/known.py``; the pixels are real drawings
compared by ``novelty/view.py``. The cases come from the corpus (benchmarks/QUALITY.md, finding 19):
a car like one kept before that is novel only while cut by the border, a visitor who comes in before the
street was still for long, a walker seen on its way in, a single frame's embedding spike.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import pytest

from edgefilter.clock import FakeClock
from edgefilter.config import FilterConfig
from edgefilter.demo import _background as demo_background
from edgefilter.novelty import NoveltyFilter
from edgefilter.novelty.events import FOLLOW_REACH, STAYING_PIXELS, Candidate, Exact, Held, choose, half_in_view, track
from edgefilter.novelty.known import KNOWN_PIXELS, Known
from edgefilter.novelty.view import MASK_SIZE, MIN_LEVEL, NOISE_K, Change, _kept_within, _least_median, _median, _sigmas_at_least, change, change_mask, least_level, luma, unchanged, view_thumbnail
from scenes import H, W, street

DIM = 32
FPS = 10.0
E = np.eye(DIM, dtype=np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def at_distance(base: np.ndarray, other: np.ndarray, distance: float) -> np.ndarray:
    """A unit vector at cosine distance ``distance`` from ``base``, towards ``other`` (orthogonal to it)."""
    cos = 1.0 - distance
    return unit(cos * base + np.sqrt(1.0 - cos * cos) * other)


def with_box(img: np.ndarray, x: int, y: int, w: int, h: int, colour) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, -1)
    return out


def shaken(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A little of what a real camera adds: 1 px of shake and sensor noise."""
    m = np.float32([[1, 0, rng.integers(-1, 2)], [0, 1, rng.integers(-1, 2)]])
    out = cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    return np.clip(out + rng.normal(0, 2, out.shape), 0, 255).astype(np.uint8)


class Street:
    """The street of ``seed``, its thumbnail as the scene before an event, and events drawn on it: each frame a
    list of (x, y, w, h) boxes, shaken by a pixel with noise, every frame novel (``last_score`` for the last)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.bg = street(seed)
        self.background = view_thumbnail(shaken(self.bg, self.rng))

    def event(self, scenes: list[list[tuple[int, int, int, int]]], last_score: float = 2.0) -> Candidate:
        frames = []
        for n, boxes in enumerate(scenes):
            img = self.bg
            for x, y, w, h in boxes:
                img = with_box(img, x, y, w, h, (150, 60, 30))
            frames.append(Held(n, n / FPS, E[1], None, view_thumbnail(shaken(img, self.rng)), 0.5, score=2.0))
        frames[-1].score = last_score
        return Candidate(frames, (0, 0), self.background)


def feed(filt: NoveltyFilter, steps: list[tuple], start: int = 0, fps: float = FPS) -> list[int]:
    """Feed (image or None, vector[, region cells]) frames at ``fps`` as the daemon does, numbered from ``start``,
    then flush; the frame numbers kept."""
    kept = []
    for n, (img, vec, *cells) in enumerate(steps, start):
        view = None if img is None else view_thumbnail(img)
        d = filt.decide([("cam", n / fps, vec, cells[0] if cells else None, n, view)])[0]
        kept += [n] if d.keep else []
        kept += [tok for tok, _ in filt.released()]
        filt.discarded()
    return kept + [tok for tok, _ in filt.flush()]


def kept_frames(steps: list[tuple[np.ndarray | None, np.ndarray]], cfg: FilterConfig | None = None,
                fps: float = FPS) -> list[int]:
    """The frame numbers a new filter keeps of these frames (at ``fps``)."""
    return feed(NoveltyFilter(cfg or FilterConfig(), DIM, ["cam"], FakeClock()), steps, fps=fps)


def assert_kept_once_whole(kept: list[int], start: int, xs: list[int]) -> None:
    """One keep among the frames from ``start`` in which a 240 px car stood at ``xs``, and the car whole in it."""
    second = [k for k in kept if start <= k < start + len(xs)]
    assert len(second) == 1, kept
    x = xs[second[0] - start]
    assert 0 < x and x + 240 < W, f"kept the second car at x={x}: cut by the border"


def test_a_thing_like_one_kept_before_is_kept_whole_not_where_the_border_cuts_it():
    # The second car looks like the first to the embedding once it is whole (0.10 from its keep: not novel,
    # the threshold is 0.15); while the border cuts it, it is novel (0.4: the cut is what is new). The event
    # is new, and its best view is a whole frame: it need only pass settle_ratio (0.5 x 0.15).
    rng = np.random.default_rng(1)
    bg = street(1)
    empty, first = E[0], E[1]
    steps = [(shaken(bg, rng), empty)] * 30
    steps += [(shaken(with_box(bg, 200, 190, 240, 100, (40, 40, 160)), rng), first)] * 3
    steps += [(shaken(bg, rng), empty)] * 30
    start = len(steps)
    xs = list(range(-200, W, 40))
    for x in xs:
        img = shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng)
        whole = 0 < x and x + 240 < W
        steps.append((img, at_distance(first, E[2 + len(steps) % 20], 0.10 if whole else 0.4)))
    steps += [(shaken(bg, rng), empty)] * 30
    kept = kept_frames(steps)
    assert_kept_once_whole(kept, start, xs)


def test_a_thing_whose_whole_view_is_near_a_keep_is_kept_whole_not_cut_where_only_the_cut_is_new():
    # As above, but at the close the car's whole frames are nearer to a keep than settle_ratio lets a best
    # view be (their cells were novel when seen, not against each kept frame): only its cut frames pass.
    # The event is new, and its whole view's pixels were never seen (another colour, another place): that
    # view is kept, not a frame the border cuts (the demo draws' cars, benchmarks/QUALITY.md, finding 23).
    rng = np.random.default_rng(7)
    bg = street(7)
    xs = list(range(-200, W, 80))  # whole at 5 of them
    frames = [Held(n, n / FPS, E[0], None, view_thumbnail(shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng)),
                   0.1, score=2.0 if not 0 < x < W - 240 else 0.6) for n, x in enumerate(xs)]
    cand = Candidate(frames, (0, 0), view_thumbnail(shaken(bg, rng)))

    def exact(h: Held, enough: float) -> Exact:
        score = 0.4 if 0 < xs[h.token] < W - 240 else 0.9  # now, against each kept frame
        return Exact(score, 0.15 * score, None, None)

    pick = choose(cand, False, 0.5, exact)
    assert pick is not None and 0 < xs[pick.frame.token] < W - 240, pick and xs[pick.frame.token]
    # a whole view seen before (its pixels known) too, as it shows as much as the cut one that passes: the event is new
    # by its cut view alone (a repeat car; findings 48 and 71: before, the cut frame was kept)
    pick = choose(cand, False, 0.5, exact, known=lambda h, by_region: 0 < xs[h.token] < W - 240)
    assert pick is not None and 0 < xs[pick.frame.token] < W - 240, pick


def test_a_still_scene_that_shows_a_car_half_out_of_view_after_its_whole_view_is_no_state_to_keep():
    # A car drove across the street and stopped at the right border, half of it out of view. The scene is
    # still and differs from the street before: it used to settle there, and the car was kept as it stood, cut
    # in half, though the event had shown it whole (the demo draws' "stops" cars, benchmarks/QUALITY.md,
    # finding 24). Not so a change that only the border cuts and that was never seen whole (something taken
    # away at the edge of a table): that still scene is the new state.
    road = Street(11)

    def event(xs: list[int]) -> Candidate:
        return road.event([[(x, 190, 240, 100)] for x in xs])

    assert half_in_view(event([100, 200, 300, W - 120]), 0.5)   # whole, then stopped half out of view
    assert not half_in_view(event([W - 120, W - 120]), 0.5)     # only ever cut: the state it settled into
    assert not half_in_view(event([100, 200, 300, 380]), 0.5)   # whole at the end: a state to settle on
    assert not half_in_view(event([300, 340, 380, W + 10]), 0.5)  # gone: the scene as it was


def test_a_car_the_mask_sees_less_of_whole_than_half_out_of_view_is_still_half_in_view():
    # A car whose lower body is the road's colour: the mask sees its cabin whole (240 x 60 px) and, when it
    # stops at the border, more of it cut (its body against the pavement: 180 x 100 px in view). Half as large
    # is enough while the still scene is novel (demo seed 9's purple car, benchmarks/QUALITY.md, finding 26);
    # a still scene no longer novel past settle_ratio is the scene as it was seen before (a car that stood at
    # the border when the event began drove away), and a thing whole a fraction of the size is another thing.
    road = Street(12)

    def event(boxes: list[tuple[int, int, int]], last_score: float) -> Candidate:
        return road.event([[(x, 290 - h, w, h)] for x, w, h in boxes], last_score)

    cabin, stopped = [(100, 240, 60), (200, 240, 60)], (W - 180, 240, 100)
    assert change(event(cabin, 2.0).frames[1].view, road.background).whole < change(
        event([stopped], 2.0).frames[0].view, road.background).edge  # the mask sees less of it whole than cut
    assert half_in_view(event(cabin + [stopped], 2.0), 0.5)
    assert not half_in_view(event(cabin + [stopped], 0.4), 0.5)  # not novel: no new state, nor a car standing
    assert not half_in_view(event([(100, 60, 40), (200, 60, 40), stopped], 2.0), 0.5)  # a small thing whole


def test_a_car_stopped_half_out_of_view_is_half_in_view_though_the_mask_splits_a_part_of_it_off_whole():
    # A car drove in whole and stopped at the border; the mask splits off a part of it clear of the border
    # (its roof, where a road-coloured window strip cuts it from the body: demo seed 11's grey car, 177 mask
    # pixels whole and 193 cut, benchmarks/QUALITY.md, finding 27). What shows mostly cut is still the car
    # half out of view; a scene whose change is mostly whole (a car parked in view, a sign cut at the border)
    # is a state to settle on.
    road = Street(13)
    event = road.event
    car = lambda x: [(x, 190, 240, 100)]
    stopped = [(W - 80, 190, 200, 100), (W - 170, 190, 60, 60)]  # body cut by the border, roof part clear of it
    shown = change(event([stopped]).frames[0].view, road.background)
    assert 0 < shown.whole < shown.edge and shown.things, shown  # the mask sees a part whole, more of it cut
    assert half_in_view(event([car(100), car(200), car(300), stopped]), 0.5)
    parked = car(200) + [(W - 40, 100, 100, 40)]  # a car whole in view, a smaller thing cut at the border
    assert not half_in_view(event([car(100), car(150), parked]), 0.5)


def test_a_thing_novel_only_while_cut_is_kept_whole_though_its_whole_view_is_near_a_keep():
    # A red car like a red car kept before: whole, it is 0.4 x threshold from that keep (below settle_ratio,
    # so no best view once whole); cut by the border it is novel (the cut is new). The event is new, and a
    # cut view is no picture to label: its whole view is kept (benchmarks/QUALITY.md, finding 25). Seen
    # before, too, as it shows as much as the cut view (findings 48 and 71; before, the cut view that passes was kept).
    rng = np.random.default_rng(9)
    bg = street(9)
    xs = list(range(-200, W, 80))
    whole = [0 < x < W - 240 for x in xs]
    frames = [Held(n, n / FPS, E[0], None, view_thumbnail(shaken(with_box(bg, x, 190, 240, 100, (40, 40, 200)), rng)),
                   0.1, score=0.4 if w else 2.0) for n, (x, w) in enumerate(zip(xs, whole))]
    cand = Candidate(frames, (0, 0), view_thumbnail(shaken(bg, rng)))

    def exact(h: Held, enough: float) -> Exact:
        return Exact(h.score, 0.15 * h.score, None, None)

    pick = choose(cand, False, 0.5, exact)
    assert pick is not None and whole[pick.frame.token], pick and xs[pick.frame.token]
    pick = choose(cand, False, 0.5, exact, known=lambda h, by_region: whole[h.token])
    assert pick is not None and whole[pick.frame.token], pick


def picks_of_a_car(views: list, whole: list[bool], background: np.ndarray, seen_score: float, now: float):
    """``choose`` over one car's views, its cut ones novel (2.0) and its whole ones ``seen_score`` when seen and
    ``now`` against the keeps: (the pick, the pick when the whole views were seen before)."""
    frames = [Held(n, n / FPS, E[0], None, v, 0.1, score=seen_score if w else 2.0)
              for n, (v, w) in enumerate(zip(views, whole))]
    cand = Candidate(frames, (0, 0), background)

    def exact(h: Held, enough: float) -> Exact:
        score = now if whole[h.token] else 2.0
        return Exact(score, 0.15 * score, None, None)

    return (choose(cand, False, 0.5, exact),
            choose(Candidate(frames, (0, 0), background), False, 0.5, exact,
                   known=lambda h, by_region: whole[h.token]))


def test_a_car_the_mask_sees_in_parts_is_kept_clear_of_the_border_not_where_the_border_cuts_one():
    # A car whose body is the road's grey (an IR camera at night halves the contrast): the mask sees its windows
    # and wheels only. Cut by the border, the parts still in view are whole to the mask, so that view "shows a
    # thing"; it was novel where the whole views were near a keep, and the car was kept cut (demo seed 14 at
    # night, benchmarks/QUALITY.md, finding 36). A view clear of the border is the picture, whether the whole
    # views were never novel past settle_ratio or were when seen and are near a keep now. Seen before, they are
    # not, and the cut view that passes is.
    rng = np.random.default_rng(15)
    bg = street(15)

    def car(x: int) -> np.ndarray:
        img = with_box(bg, x, 190, 240, 100, (90, 90, 95))       # the body: the road's grey
        img = with_box(img, x + 50, 200, 110, 45, (40, 40, 40))  # the windows
        for cx in (x + 40, x + 200):
            cv2.circle(img, (cx, 290), 22, (20, 20, 20), -1)     # the wheels
        return img

    xs = list(range(-200, W, 60))
    whole = [0 < x - 22 and x + 222 < W for x in xs]
    background = view_thumbnail(shaken(bg, rng))
    views = [view_thumbnail(shaken(car(x), rng)) for x in xs]
    cut_shown = [change(v, background) for v, w in zip(views, whole) if not w]
    assert any(c.edge and c.things and c.whole >= 23 for c in cut_shown)  # parts of it whole, one cut

    for seen_score, now in ((0.4, 0.4), (0.7, 0.3)):  # the whole views: novel when seen, and against the keeps now
        pick, seen = picks_of_a_car(views, whole, background, seen_score, now)
        assert pick is not None and whole[pick.frame.token], (seen_score, pick and xs[pick.frame.token])
        assert seen is not None and not whole[seen.frame.token], seen


def test_a_car_the_border_cuts_into_more_things_is_kept_where_it_is_clear_of_the_border():
    # A red car drives out over a bus lane painted its red at the left of the view: there the mask sees its
    # windows and wheels apart, more things clear of the border than the one blob it is on the grey road, and
    # the best-view order (most things first) tried that cut view first. It passed, and the views clear of the
    # border, tried after it, were never looked at (demo draw 124: a grey car over the grey pavement, kept at
    # the left border cut while two whole views passed too; benchmarks/QUALITY.md, finding 37). The whole views
    # show more of the car than the cut one, which the border cuts by more than a speck. Whether they pass or
    # were novel only when seen (finding 25), one is kept; seen before too: the event is new by its cut view
    # alone, and a whole view that shows more of the car is its picture (finding 48).
    rng = np.random.default_rng(15)
    red = (40, 40, 170)
    bg = with_box(street(15), 0, 180, 200, H - 180, red)

    def car(x: int) -> np.ndarray:
        img = with_box(bg, x, 190, 240, 100, red)
        img = with_box(img, x, 240, 40, 45, (30, 30, 30))        # the bumper and grille
        img = with_box(img, x + 50, 200, 110, 45, (40, 40, 40))  # the windows
        for cx in (x + 40, x + 200):
            cv2.circle(img, (cx, 290), 22, (20, 20, 20), -1)     # the wheels
        return img

    xs = list(range(-190, W, 60))
    whole = [0 <= x and x + 240 < W for x in xs]
    background = view_thumbnail(shaken(bg, rng))
    views = [view_thumbnail(shaken(car(x), rng)) for x in xs]
    shown = [change(v, background) for v in views]
    most = max(c.things for c, w in zip(shown, whole) if w)
    least = min(c.pixels for c, w in zip(shown, whole) if w)
    # cut: a part worth a picture (KNOWN_PIXELS), more things than any whole view, and fewer pixels
    assert any(c.edge >= 23 and c.whole >= 23 and c.things > most and c.pixels <= least
               for c, w in zip(shown, whole) if not w)

    for seen_score, now in ((2.0, 2.0), (0.7, 0.3)):  # the whole views: novel when seen, and against the keeps now
        pick, seen = picks_of_a_car(views, whole, background, seen_score, now)
        assert pick is not None and whole[pick.frame.token], (seen_score, pick and xs[pick.frame.token])
        assert seen is not None and whole[seen.frame.token], seen


def event_of_views(shown: list[Change], still: list[bool], last: np.ndarray | None = None) -> Candidate:
    """An event whose frames' views are set by hand (``shown``), every frame novel, ``still`` saying which frames are
    still against the frame that began their still run; ``last``: the thumbnail of its last frame (by default the
    scene before the event: it went back to how it was)."""
    blank = np.zeros((90, 160), np.uint8)
    frames = [Held(n, n / FPS, E[0], None, blank, 0.1, score=2.0, still=s) for n, s in enumerate(still)]
    if last is not None:
        frames[-1].view = last
    cand = Candidate(frames, (0, 0), blank)
    cand.views = {id(h): v for h, v in zip(frames, shown)}
    return cand


def pick_of_views(shown: list[Change]) -> int:
    """The frame ``choose`` keeps of an event whose frames' views are set by hand (``shown``), every frame novel."""
    cand = event_of_views(shown, [False] * len(shown))
    return choose(cand, False, 0.5, lambda h, enough: Exact(2.0, 0.3, None, None)).frame.token


def test_a_view_ranked_after_a_cut_one_replaces_it_only_showing_as_much_and_when_more_than_a_speck_is_cut():
    # What the mask shows of each frame, set by hand: the cut view has two things (the order's first key) and the
    # clear one a single blob. A clear view with fewer pixels may be cut where the mask does not see it (a car
    # coming in at night, its body the road's grey at the border: demo seed 14 at night), and a speck of change
    # at the border is no cut part (two cars and a speck came before one of the cars alone: road at 10 fps).
    def pick(cut: Change, clear: Change) -> int:
        return pick_of_views([cut, clear])

    cut = Change(whole=90, edge=30, things=2)
    assert pick(cut, Change(whole=130, things=1)) == 1       # whole, and shows more: the picture
    assert pick(cut, Change(whole=100, things=1)) == 0       # shows less than the cut view: maybe cut itself
    assert pick(Change(whole=120, edge=3, things=2), Change(whole=130, things=1)) == 0  # a speck at the border


def test_a_whole_view_seen_before_replaces_a_cut_one_only_showing_as_much_and_when_more_than_a_speck_is_cut():
    # What the mask shows of each frame, set by hand; the frames clear of the border were seen before (a grey car
    # like one kept before: at night an IR camera sees grey cars alike), the cut one is new. The event is new by its
    # cut view alone, and its picture is the car whole: at night the default kept such cars cut
    # (benchmarks/QUALITY.md, finding 48). Not a whole view that shows less than the cut one (a table state seen
    # before, after a hand at the border moved a bottle: the bottle streams kept it again), nor where the border
    # cuts a speck alone (no cut: finding 41). So also where the mask sees no part of the cut view whole.
    def pick(views: list[Change]) -> int:
        cand = event_of_views(views, [False] * len(views))
        got = choose(cand, False, 0.5, lambda h, enough: Exact(2.0, 0.3, None, None),
                     known=lambda h, by_region: not cand.views[id(h)].edge)
        return got.frame.token

    cut = Change(whole=90, edge=60, things=2)
    assert pick([cut, Change(whole=130, things=1), Change(whole=160, things=1)]) == 2  # whole, seen before
    assert pick([cut, Change(whole=100, things=1), Change(whole=140, things=1)]) == 0  # shows less than the cut view
    assert pick([cut, Change(whole=40, things=3)]) == 0  # more blobs first in the order, but fewer pixels
    assert pick([Change(whole=120, edge=10, things=2), Change(whole=160, things=1)]) == 0  # a speck at the border
    # The cut view one blob at the border, no part of it whole (demo seed 10's repeat red car, its rear past the border:
    # 717 mask pixels; whole a frame later, 728, seen before): the same picture (finding 71), as many pixels or none.
    assert pick([Change(edge=717), Change(whole=728, things=1)]) == 1
    assert pick([Change(edge=717), Change(whole=600, things=1)]) == 0
    assert pick([Change(edge=20), Change(whole=40, things=1)]) == 0  # a speck at the border is no cut


def test_the_frames_that_made_an_event_new_are_asked_after_its_best_views_when_they_show_a_thing_beyond_them():
    # A walker at night, drawn like one kept before: ten frames of her coming in (a larger blob, so the best views)
    # were seen before; two later frames, elsewhere, passed the threshold when seen. An event asks its best views
    # first, a limited number of them (events.TRIES); the frames that passed made it new and are asked after them
    # when they show a thing whole beyond each best view found seen before (demo draw 362 at night at 15 fps lost
    # her: benchmarks/QUALITY.md, findings 73 and 74).
    street = Street(21)
    coming_in = [[(60, 160, 70, 130)]] * 10

    def pick(later: list[tuple[int, int, int, int]], known: Callable[[Held, bool], bool] = lambda h, by_region:
             h.score < 1.0) -> int | None:
        cand = street.event(coming_in + [[later[0]], [later[1]]])
        for h in cand.frames[:10]:
            h.score = 0.8  # past settle_ratio, not the threshold
        got = choose(cand, False, 0.5, lambda h, enough: Exact(h.score, 0.15 * h.score, None, None), known=known)
        return None if got is None else got.frame.token

    walked_on = [(400, 170, 50, 110), (420, 170, 50, 112)]
    assert pick(walked_on) == 11  # the better view of the two that passed
    assert pick(walked_on, known=lambda h, by_region: h.score < 1.0 or h.token == 11) == 10
    # A hand's shadow swinging over a table state kept before: the frames that passed (by their region cells) are the
    # same to the mask as the best views found seen before, though not found so themselves; nothing new to keep
    # (a fresh bottle stream kept its first table state again so: finding 74).
    assert pick([(61, 161, 68, 128), (61, 162, 68, 127)]) is None
    # Where a best view asked first is not seen before, it is the picture, as before.
    assert pick(walked_on, known=lambda h, by_region: h.score < 1.0 and h.token != 3) == 3


def test_a_view_the_mask_sees_clear_of_the_border_next_to_a_cut_one_gives_way_to_one_between_clear_views():
    # What the mask shows of a car driving out at the left border, set by hand. Its bumper a few pixels past the
    # border is the colour of what it passes there, so the mask sees the rest of the car clear of the border, in
    # two blobs (windows and wheels apart over a ground their body's colour), while the frame after shows it cut:
    # the best-view order put the view with more blobs first and it was kept cut (demo draw 128's grey car;
    # benchmarks/QUALITY.md, finding 39). A frame next to a cut one may be cut where the mask does not see it; a
    # view between two frames clear of the border, showing at least as many mask pixels, is the picture. A speck
    # at the border (under KNOWN_PIXELS) is no cut: on the real road a far car at the border beside two cars whole
    # gave way to a nearer view of one of them.
    whole = [Change(whole=130, things=1), Change(whole=140, things=1), Change(whole=145, things=1)]
    assert pick_of_views(whole + [Change(whole=120, things=2), Change(edge=90)]) == 2  # next to the cut view
    assert pick_of_views(whole + [Change(whole=120, things=2), Change(whole=40, edge=10, things=1)]) == 3  # a speck
    assert pick_of_views(whole + [Change(whole=120, edge=10, things=2), Change(whole=40, things=1)]) == 3  # its own
    assert pick_of_views(whole + [Change(whole=150, things=2), Change(edge=90)]) == 3  # the clear views show less
    assert pick_of_views(whole + [Change(whole=120, things=2), Change(whole=100, things=1)]) == 3  # no cut beside it


def test_a_speck_at_the_border_next_to_a_cut_view_is_no_cut_of_the_view_nor_of_its_neighbours():
    # What the mask shows of a grey car driving out, set by hand: a frame before the border cuts it, the mask sees a
    # few pixels of it at the border (demo draws 149 and 197: a speck of 4 and 6 pixels, the frame after 100 and
    # 299), and specks come and go beside its whole views. A speck is no cut (finding 39), so the view with one of
    # its own next to a cut frame is one the mask may not see cut, and a view between two frames with specks is
    # between two frames clear of the border (benchmarks/QUALITY.md, finding 41).
    whole = [Change(whole=130, things=1), Change(whole=140, things=1), Change(whole=145, things=1)]
    assert pick_of_views(whole + [Change(whole=120, edge=10, things=2), Change(edge=90)]) == 2  # its own speck
    specks = [Change(whole=130, things=1), Change(whole=140, edge=5, things=1), Change(whole=145, things=1)]
    assert pick_of_views(specks + [Change(whole=120, edge=6, things=2), Change(edge=90)]) == 2  # specks beside
    # only specks beside it: no cut, the view with its own speck stays (as in finding 39's test)
    assert pick_of_views(specks + [Change(whole=120, edge=6, things=2), Change(whole=40, edge=10, things=1)]) == 3
    assert pick_of_views(whole + [Change(whole=120, edge=10, things=2), Change(whole=40, things=1)]) == 3


def test_the_next_visitor_is_a_new_event_once_the_street_looked_as_before():
    # Two visitors 0.7 s apart: the first's event ends when it has faded for 5 frames, and the second comes
    # in 2 frames later, before the street was still for settle_frames. To the embedding the second looks
    # like frames of the first (a small thing hardly moves the whole image), so it used to be taken for the
    # rest of the first's event and never kept.
    rng = np.random.default_rng(2)
    bg = street(2)
    steps = [(shaken(bg, rng), E[0])] * 30
    arc = [unit(np.cos(a) * E[2] + np.sin(a) * E[3]) for a in np.linspace(0.0, np.pi / 2, 12)]
    for j, v in enumerate(arc):  # the first walks right to left; its frames sweep from E[2] to E[3]
        steps.append((shaken(with_box(bg, 560 - 40 * j, 200, 50, 100, (30, 200, 220)), rng), v))
    steps += [(shaken(bg, rng), E[0])] * 7
    start = len(steps)
    for j in range(6):  # the second: white, left to right, with the embeddings of the first's first frames
        steps.append((shaken(with_box(bg, 80 + 40 * j, 200, 50, 100, (210, 230, 250)), rng), arc[j % 2]))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 3, kept
    assert start <= kept[2] < start + 6, kept


def test_a_visitor_who_comes_in_as_the_last_one_leaves_is_a_new_event():
    # The first walker leaves at the left border; the street is empty for two frames, inside its event (which
    # closes on the fifth faded frame), and the next walker comes in at the same border. The next one moves the
    # embedding less than the threshold (0.10) and is new by its pixels: it used to be taken for the rest of
    # the first's visit, as the street had not looked as before *outside* that event (demo draws 107, 121,
    # 130, 137; benchmarks/QUALITY.md, finding 23).
    rng = np.random.default_rng(4)
    bg = street(4)
    steps = [(shaken(bg, rng), E[0])] * 30
    for j, x in enumerate(range(560, -80, -40)):
        first = at_distance(E[2], E[3 + j % 5], 0.02)  # novel: far from the empty street
        steps.append((shaken(with_box(bg, x, 200, 50, 100, (30, 200, 220)), rng), first))
    steps += [(shaken(bg, rng), E[0])] * 2
    start = len(steps)
    xs = list(range(-30, 420, 30))
    for j, x in enumerate(xs):
        second = at_distance(E[0], E[10 + j % 5], 0.10)  # 0.10 from the kept empty street: not novel
        steps.append((shaken(with_box(bg, x, 200, 50, 100, (210, 230, 250)), rng), second))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 3, kept
    assert start <= kept[2] < start + len(xs) and xs[kept[2] - start] > 0, kept


def test_a_frame_of_an_event_that_shows_less_than_a_picture_of_its_change_must_pass_the_whole_threshold():
    # Bottle irregular 1 (benchmarks/QUALITY.md, finding 23): a shadow's flicker over a still table opened an
    # event by region cells; at its close no frame was new by its cells, and a frame showing 20 changed mask
    # pixels (less than KNOWN_PIXELS) was kept at settle_ratio by its whole image, 0.504 x the threshold: the
    # table, whose bottle had been put back a little aside since the last keep of it. To the pixels that
    # frame is the scene before the event, which was not novel; so it must pass the whole threshold. A frame
    # whose pixels show a thing need only pass settle_ratio (a car like one kept, whole: finding 19).
    rng = np.random.default_rng(5)
    bg = street(5)
    speck = with_box(bg, 300, 60, 8, 8, (60, 60, 60))         # a flicker of shadow: a few mask pixels
    car = with_box(bg, 200, 190, 240, 100, (150, 60, 30))

    def event(last: np.ndarray) -> Candidate:
        frames = [Held(n, n / FPS, E[0], None, view_thumbnail(shaken(img, rng)), 0.1, score=score)
                  for n, (img, score) in enumerate([(speck, 1.4), (speck, 1.4), (last, 1.2)])]
        return Candidate(frames, (0, 0), view_thumbnail(shaken(bg, rng)))

    now = {0: 0.38, 1: 0.37, 2: 0.504}  # each frame against the kept set at the close
    def exact(h: Held, enough: float) -> Exact:
        return Exact(now[h.token], 0.15 * now[h.token], None, None)

    assert choose(event(speck), False, 0.5, exact) is None
    pick = choose(event(car), False, 0.5, exact)
    assert pick is not None and pick.frame.token == 2 and pick.ratio == 0.5, pick


def test_a_walker_seen_on_its_way_in_is_not_known_when_it_becomes_novel():
    # A slow walker is in view 1.5 s before its frames pass the threshold; then it stops and waves for 3 s.
    # Its ordinary frames on the way in are remembered as seen; they are the thing itself, not a scene shown
    # before, and must not make its novel frames "known" (they differ from them by a small arm only) when
    # the event closes seconds later.
    rng = np.random.default_rng(3)
    bg = street(3)
    steps = [(shaken(bg, rng), E[0])] * 10
    x = 100
    for j in range(15):  # on its way in: 1 px a frame, not novel
        steps.append((shaken(with_box(bg, x, 200, 40, 90, (230, 230, 240)), rng), at_distance(E[0], E[4], 0.05)))
        x += 1
    start = len(steps)
    walker = with_box(bg, x, 200, 40, 90, (230, 230, 240))
    for j in range(30):  # novel: it waves (an arm up every other frame)
        img = with_box(walker, x + 40, 170, 8, 30, (230, 230, 240)) if j % 2 else walker
        steps.append((shaken(img, rng), at_distance(E[5], E[6 + j % 5], 0.02)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 30, kept


def test_one_frame_barely_past_the_threshold_is_no_event_and_a_clear_one_is():
    # Without thumbnails (the embedding alone): an exposure step or a re-encoding moves one frame's
    # embedding just past the threshold; that is no event. A frame far past it (a car seen in one frame
    # of a 1 fps stream) is.
    rng = np.random.default_rng(4)

    def noisy(v: np.ndarray) -> np.ndarray:
        return unit(v + 0.01 * rng.standard_normal(DIM).astype(np.float32))

    spike = [(None, noisy(E[0])) for _ in range(30)] + [(None, at_distance(E[0], E[7], 0.16))]
    spike += [(None, noisy(E[0])) for _ in range(30)]
    assert kept_frames(spike) == [0]
    clear = spike[:30] + [(None, at_distance(E[0], E[7], 0.30))] + spike[31:]
    assert kept_frames(clear) == [0, 30]


def test_known_finds_a_scene_seen_under_another_exposure_among_many():
    # The frames compared are picked by an exposure-normalised thumbnail: a state replayed under another
    # exposure is found among a minute of other frames.
    rng = np.random.default_rng(5)
    known = Known()
    bg = street(5)
    target = with_box(bg, 300, 40, 30, 30, (30, 30, 30))  # a shadow on the wall
    for n in range(110):
        other = with_box(bg, int(rng.integers(0, 560)), int(rng.integers(180, 260)), 60, 60,
                         tuple(int(c) for c in rng.integers(0, 255, 3)))
        known.seen(n * 0.5, view_thumbnail(other if n != 37 else target))
    brighter = np.clip(target.astype(np.float32) * 1.2 + 5, 0, 255).astype(np.uint8)
    assert known.knows(60.0, view_thumbnail(brighter))
    assert not known.knows(60.0, view_thumbnail(with_box(target, 60, 40, 80, 80, (230, 230, 230))))


def test_a_big_dark_thing_is_not_fitted_away_as_exposure():
    # A black car that fills a third of the view where a grey one stood: a least-squares exposure fit over
    # every pixel bends the gain to half-explain it and the change hid in the residual.
    bg = street(6)
    grey = with_box(bg, 120, 100, 420, 200, (90, 90, 90))
    black = with_box(bg, 120, 100, 420, 200, (25, 25, 25))
    assert change(view_thumbnail(black), view_thumbnail(grey)).pixels > 600  # 840: the box


def test_the_exposure_fits_median_by_counting_is_the_element_a_partition_puts_in_the_middle():
    # view._median counts grey levels and buckets other values (the fit's largest cost was its partitions):
    # the same value as a partition, for whole numbers, differences, and residuals of any spread
    rng = np.random.default_rng(11)
    grey = rng.integers(0, 256, 3600)
    for x in (grey, (grey - rng.integers(0, 256, 3600)).astype(np.int32), np.abs(grey - (1.07 * grey[::-1] + 2.3)),
              rng.normal(0.0, 0.05, 2304).astype(np.float32), rng.normal(0.0, 400.0, 999), np.full(17, 3.25),
              np.concatenate([np.zeros(1800), rng.exponential(3.0, 1801)]), np.array([-5.0]), np.array([7, 7, 1])):
        middle = len(x) // 2
        assert _median(x) == float(np.partition(x, middle)[middle])


def test_the_exposure_fit_picks_the_start_with_the_least_median_as_argmin_does_counting_where_it_can():
    # _least_median takes the medians of whole numbers and counts float residuals against the least of them:
    # the same index as np.argmin of every median (the first of equals), ties across int and float included
    rng = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng.integers(1, 60))
        base = np.abs(rng.integers(-9, 10, n)).astype(np.int32)
        values = []
        for _ in range(4):
            kind = rng.integers(0, 4)
            if kind == 0:
                values.append(np.abs(rng.integers(-9, 10, n)).astype(np.int32))
            elif kind == 1:
                values.append(base.astype(np.float64))  # the int's median exactly: a tie
            elif kind == 2:
                values.append(np.abs(rng.normal(0.0, 4.0, n)))
            else:
                values.append(base.copy())
        expected = int(np.argmin([_median(x) for x in values]))
        assert _least_median(values) == expected, (trial, [_median(x) for x in values])


def test_the_second_fit_keeps_three_robust_sigmas_or_min_level_counting_where_the_spread_is_small():
    # _kept_within skips the second median when more than half the spreads lie under what gives MIN_LEVEL:
    # the same value as taking it, for int and float residuals, at the boundary too
    rng = np.random.default_rng(6)
    edge = MIN_LEVEL / (3.0 * 1.4826)
    for x in (rng.integers(-3, 4, 3600).astype(np.int32), rng.integers(-40, 41, 3600).astype(np.int32),
              rng.normal(0.0, 1.0, 3600), rng.normal(0.0, 9.0, 3600), np.concatenate([np.zeros(5), np.full(6, edge)]),
              np.concatenate([np.zeros(5), np.full(6, np.nextafter(edge, 0.0))]), np.array([3.0, 3.0, 400.0]),
              np.concatenate([np.zeros(5), np.full(5, 30.0)]), np.repeat(np.array([0, 30], np.int32), 5)):
        middle = _median(x)
        expected = max(3.0 * (1.4826 * _median(np.abs(x - (int(middle) if x.dtype.kind == "i" else middle)))),
                       MIN_LEVEL)
        assert _kept_within(x) == expected


def test_the_change_level_takes_the_residuals_median_only_where_it_can_lift_the_level_float32_included():
    # _residual's level is NOISE_K robust sigmas of the float32 mask residual, never below the least level: counted
    # first, the median taken only when more than half the residual could lift it. At the boundary the product can
    # round a hair past the floor: the bound keeps a margin (float32 values and float64 ones, just either side)
    rng = np.random.default_rng(7)
    for floor in (8.0, 10.2, 10.8, 16.0, *rng.uniform(5.0, 16.0, 200)):
        edge = floor / (NOISE_K * 1.4826)
        for x in (np.full(11, np.float32(edge)), np.full(11, np.nextafter(np.float32(edge), np.float32(0))),
                  np.full(11, edge), np.full(11, np.nextafter(edge, 0.0)),
                  rng.exponential(edge, 2304).astype(np.float32), np.concatenate([np.zeros(5), np.full(6, edge)])):
            assert _sigmas_at_least(x, NOISE_K, floor) == max(NOISE_K * (1.4826 * _median(x)), floor), (floor, x[:3])


def test_a_thing_cut_by_the_border_counts_as_cut_where_its_edge_is_faint():
    # The part of a car by the border can differ from the road by less than the change level; the blob
    # then ends a pixel short of the border, and the car cut in half counted as whole.
    bg = street(7)
    car = with_box(bg, 420, 190, 220, 110, (20, 20, 20))
    car = with_box(car, 625, 190, 15, 110, (82, 82, 87))  # its last 15 px: close to the road's grey
    got = change(view_thumbnail(car), view_thumbnail(bg))
    assert got.whole == 0 and got.edge > 0, got
    inside = change(view_thumbnail(with_box(bg, 300, 190, 220, 110, (20, 20, 20))), view_thumbnail(bg))
    assert inside.whole > 0 and inside.edge == 0, inside


def test_a_state_kept_before_a_restart_is_known_after_it(tmp_path):
    # The parked car was kept; after a restart it comes back under another exposure that moved its embedding
    # 0.33 away (past the threshold). The saved state remembers the keep's thumbnail, so it is not kept again.
    rng = np.random.default_rng(9)
    empty, parked = street(9), with_box(street(9), 200, 190, 240, 100, (40, 40, 160))
    b_again = at_distance(E[1], E[3], 0.33)
    first = [(shaken(empty, rng), E[0])] * 20 + [(shaken(parked, rng), E[1])] * 20
    brighter = np.clip(parked.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
    after = [(shaken(brighter, rng), b_again)] * 20

    filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    kept = feed(filt, first)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] >= 20, kept
    filt.save(tmp_path, "m")
    again = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    assert again.load(tmp_path, "m")
    # each remembered thumbnail still knows its keep's key in the index (region cells compare against it)
    views, keys = again._src["cam"].known.kept_views()
    assert len(views) == 2 and all(again._src["cam"].known.view_of(int(k)) is not None for k in keys)
    assert sorted(keys) == sorted(filt._src["cam"].known.kept_views()[1]) and len(set(keys.tolist())) == 2
    assert feed(again, after, start=40) == []


def hazy_room(gain: float, rng: np.random.Generator) -> np.ndarray:
    """A room through haze (a bright veil over half its contrast: a wall lit from the right, three bottles, a dark door
    frame at the left border) under an exposure ``gain``: past 1.2 its bright side clips."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = np.linspace(110, 215, W, dtype=np.float32)[None, :, None].astype(np.uint8)
    img[:, :14] = 40
    for x in (90, 300, 510):
        cv2.rectangle(img, (x, 120), (x + 40, 230), (170, 160, 150), -1)
        cv2.rectangle(img, (x + 10, 105), (x + 30, 120), (120, 40, 30), -1)
    out = (img.astype(np.float32) * 0.45 + 113.0) * gain + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_a_restart_remembers_the_scene_it_stopped_on_not_only_its_keeps(tmp_path):
    # A hazy room kept at a dark exposure, then left running while the light grows to nearly twice it: past the
    # threshold to the embedding, seen all along to the pixels (each frame like those seen seconds before). Restarted
    # there, its keep alone is too far from the clipped, brighter room for an exposure fit; the frames it saw last
    # are not (benchmarks/QUALITY.md, finding 78: the corpus's static room through haze kept a frame after a restart).
    rng = np.random.default_rng(3)
    gains = np.linspace(0.85, 1.6, 300)
    steps = [(hazy_room(g, rng), at_distance(E[0], E[2], 0.3 * (g - 0.85) / 0.75)) for g in gains]
    after = [(hazy_room(1.6, rng), at_distance(E[0], E[2], 0.3)) for _ in range(40)]
    filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    assert feed(filt, steps) == [0]
    kept_view = filt._src["cam"].known.last_kept()
    assert change(view_thumbnail(after[0][0]), kept_view).pixels > KNOWN_PIXELS  # the keep alone: a new scene
    filt.save(tmp_path, "m")
    again = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    assert again.load(tmp_path, "m")
    seen = again._src["cam"].known.seen_views()
    assert seen is not None and len(seen) == 8 and np.array_equal(seen, filt._src["cam"].known.seen_views())
    assert feed(again, after, start=300) == []


def test_saved_thumbnails_of_another_shape_are_named_and_not_restored(caplog):
    # a state file from another layout: its keeps' and its last frames' thumbnails are checked alike
    import logging

    from edgefilter.novelty.persistence import _thumbnails
    from edgefilter.novelty.view import VIEW_SIZE

    colour, grey = (np.zeros((2, 3, VIEW_SIZE[1], VIEW_SIZE[0]), np.uint8),
                    np.zeros((2, VIEW_SIZE[1], VIEW_SIZE[0]), np.uint8))
    assert _thumbnails(colour, "/state", "cam") is colour and _thumbnails(grey, "/state", "cam") is grey
    assert _thumbnails(None, "/state", "cam") is None
    with caplog.at_level(logging.WARNING, logger="edgefilter.novelty"):
        assert _thumbnails(np.zeros((2, 90, 100), np.uint8), "/state", "cam") is None
        assert _thumbnails(colour.astype(np.float32), "/state", "cam") is None
    assert "'cam'" in caplog.text and "(2, 90, 100)" in caplog.text and "/state" in caplog.text


def test_a_white_table_clipped_under_a_bright_exposure_is_no_change_under_a_darker_one():
    # The bottle streams: under a bright exposure the sensor clipped the white table at 255; under a darker
    # one it shows its true grey, brighter than the clipped 255 maps to. That is the table, not a change;
    # a dark bottle put on it still is.
    scene = street(8).astype(np.float32)
    scene[230:] = 300.0  # a white table beyond the sensor's range
    bright = np.clip(scene, 0, 255).astype(np.uint8)
    dark = np.clip(scene * 0.62, 0, 255).astype(np.uint8)
    assert change(view_thumbnail(dark), view_thumbnail(bright)).pixels == 0
    bottle = with_box(dark, 300, 250, 30, 80, (40, 40, 40))
    assert change(view_thumbnail(bottle), view_thumbnail(bright)).whole > 0


def test_a_state_back_with_a_shadow_at_the_border_is_not_kept_again():
    # A table state comes back after a hand put something down and took it away, with a person's shadow
    # along the left border; its embedding moved past the threshold. What differs from the kept state is
    # cut by the border: as a view it counts a quarter (a sliver is no picture to label), so it is known.
    rng = np.random.default_rng(10)
    bg = street(10)
    shadow = with_box(bg, 0, 0, 12, H, (25, 25, 25))
    assert change(view_thumbnail(shadow), view_thumbnail(bg)).edge > 23  # more than KNOWN_PIXELS at full count
    steps = [(shaken(bg, rng), E[0])] * 20
    steps += [(shaken(with_box(bg, 200, 190, 240, 100, (40, 40, 160)), rng), E[1])] * 20
    steps += [(shaken(shadow, rng), at_distance(E[0], E[2], 0.2))] * 20
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 20 <= kept[1] < 40, kept


def test_a_state_back_is_not_kept_again_when_a_frame_of_its_still_run_was_known_though_the_last_is_not():
    # The bottle's first state came back after a hand's moves; its still run was that state, yet the frame the
    # event closed on differed from the kept one by a blob at the border (another exposure fit), and its
    # embedding (8 frames old under the pre-gate) was novel (benchmarks/QUALITY.md, finding 46). Here a faint
    # shadow falls along the border of a low-contrast scene in the still run: too faint for the stillness test,
    # seen by what a frame shows. The run shows one scene; its first frames are the kept state.
    rng = np.random.default_rng(4)
    bg = (street(4).astype(np.float32) * 0.3 + 90).astype(np.uint8)
    shadow = bg.astype(np.int16)
    shadow[:, :80] -= 12
    shadow = shadow.astype(np.uint8)
    assert unchanged(view_thumbnail(shadow), view_thumbnail(bg))
    assert change(view_thumbnail(shadow), view_thumbnail(bg)).view > 23  # not known on its own (KNOWN_PIXELS)
    steps = [(shaken(bg, rng), E[0])] * 20
    box = with_box(bg, 200, 190, 240, 100, (40, 40, 160))
    steps += [(shaken(box, rng), E[1])] * 20
    # a small hand takes the box away: barely novel as it comes in over the box, not after
    hand = [at_distance(E[0], E[3], d) for d in (0.16, 0.07, 0.07, 0.07, 0.07)]
    steps += [(shaken(with_box(box if k == 0 else bg, 100 + 60 * k, 0, 60, 45, (60, 60, 60)), rng), hand[k])
              for k in range(5)]
    near = at_distance(E[0], E[2], 0.05)
    steps += [(shaken(bg, rng), near)] * 3 + [(shaken(shadow, rng), near)] * 2
    steps += [(shaken(shadow, rng), at_distance(E[0], E[2], 0.2))]  # the frame the event settles on
    steps += [(shaken(shadow, rng), near)] * 10
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 20 <= kept[1] < 40, kept


def test_a_frame_of_an_event_is_seen_when_one_of_its_that_the_pixels_cannot_tell_from_it_was():
    # A hand's shadow hung in a corner of a table state kept before for half a minute, never still: every frame of
    # the event showed that one scene, and the memory found most of them seen before, not the one ranked first, a
    # few mask pixels farther from what was remembered under its exposure fit; it was kept (benchmarks/QUALITY.md,
    # finding 63). Frames less than SEEN_AFTER_S apart are not asked (at 30 fps a faint walker moves less from one
    # frame to the next than the mask sees), and a walker's frames, each a scene of its own, are not known for another's.
    street = Street(12)

    def exact(h: Held, enough: float) -> Exact:
        return Exact(2.0, 0.3, None, None)

    for seconds, known_for_others in ((2.4, True), (1.5, False)):
        shadow = street.event([[(0, 0, 90, 60)]] * round(seconds * FPS))
        first = shadow.frames[0]
        assert all(change(first.view, h.view).pixels == 0 for h in shadow.frames)
        pick = choose(shadow, False, 0.5, exact)
        assert pick is not None
        again = choose(shadow, False, 0.5, exact, known=lambda h, by_region: h is not pick.frame)
        assert (again is None) == known_for_others, (seconds, again)

    walker = street.event([[(x, 150, 40, 90)] for x in range(60, W - 100, 24)])
    pick = choose(walker, False, 0.5, exact)
    assert pick is not None
    assert all(change(pick.frame.view, h.view).pixels > 0 for h in walker.frames if h is not pick.frame)
    again = choose(walker, False, 0.5, exact, known=lambda h, by_region: h is not pick.frame)
    assert again is not None and again.frame is pick.frame


def test_a_settled_scene_is_asked_in_every_phase_of_a_flicker_that_beats_with_the_frame_rate():
    # A box put down and left, the scene then still for 1.3 s (under SEEN_AFTER_S: no frame of it is asked for
    # another). A lamp in view flickers at a beat of two frames with the camera, and the memory knows the scene
    # under one phase of it only (under the other, a few mask pixels more than KNOWN_PIXELS from what it
    # remembers), every other frame. Asked at a stride of two frames (the run's length over SCENE_TRIES), the
    # still run was asked in the other phase only, never found seen, and kept again; asked at golden-ratio steps
    # (events.spread) it is asked in both (benchmarks/QUALITY.md, finding 66).
    street_ = Street(47)
    cand = street_.event([[(300, 220, 80, 50)]] * 13)
    for h in cand.frames[1:]:
        h.still = True
    assert len(cand.frames) > 8 and len(cand.frames) / FPS < 2.0
    lamp_phase = {id(h) for h in cand.frames[1::2]}

    def exact(h: Held, enough: float) -> Exact:
        return Exact(2.0, 0.3, None, None)

    assert choose(cand, True, 0.5, exact) is not None  # new: kept
    assert choose(cand, True, 0.5, exact, lambda h, by_region: id(h) in lamp_phase) is None


def test_a_region_counts_only_where_pixels_changed_against_the_kept_frame_it_is_compared_with():
    # A hand paused over the table (kept as settled), then left: the table is back as first kept, with a
    # shadow along the border and a speck of noise. A region cell there moved in the embedding (exposure,
    # the shadow) against every kept frame, and its pixels changed against the hand's keep, not against the
    # kept table (there only a speck changed, small beside the shadow: no thing). So the region is not new.
    rng = np.random.default_rng(11)
    cells_dim, cell = 8, 2 * 7 + 1  # the cell at row 2, column 1 of the 7x7 grid: under the hand
    base = np.stack([unit(v) for v in rng.standard_normal((49, cells_dim))])

    def cells(moved: dict[int, np.ndarray] | None = None) -> np.ndarray:
        out = base + 0.01 * rng.standard_normal(base.shape)
        for c, v in (moved or {}).items():
            out[c] = v
        return np.stack([unit(v) for v in out]).astype(np.float32)

    bg = street(11)
    hand = with_box(bg, 60, 40, 200, 160, (60, 90, 150))
    back = with_box(with_box(bg, 0, 0, 30, H, (25, 25, 25)), 130, 115, 20, 20, (40, 40, 40))
    under_hand = {c: unit(rng.standard_normal(cells_dim)) for c in (0, 1, 2, 7, 8, 9, 14, 15, 16, 21, 22, 23)}
    moved = {cell: unit(rng.standard_normal(cells_dim))}
    steps = [(shaken(bg, rng), E[0], cells()) for _ in range(20)]
    steps += [(shaken(hand, rng), E[1], cells(under_hand)) for _ in range(20)]
    steps += [(shaken(back, rng), at_distance(E[0], E[2], 0.05), cells(moved)) for _ in range(20)]
    filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock(), region_count=49, region_dim=cells_dim)
    kept = feed(filt, steps)
    assert kept[0] == 0 and len(kept) == 2 and 20 <= kept[1] < 40, kept


def test_a_small_thing_whole_in_view_is_kept_at_settle_ratio_of_the_threshold():
    # A dog runs across the empty street: whole in view, clear of the border, 1.5 % of the view; it moves the
    # embedding 0.10 (the threshold is 0.15) and no region cell far enough. Its pixels show a thing the
    # street did not have, so it needs only settle_ratio (0.5) of the threshold, as an event's best view does.
    # Moving the embedding by 0.05 only (below that) it is not kept: the pixels alone never make a keep.
    rng = np.random.default_rng(12)
    bg = street(12)
    xs = list(range(40, 520, 30))

    def crossing(distance: float) -> list:
        steps = [(shaken(bg, rng), E[0])] * 30
        for j, x in enumerate(xs):
            dog = shaken(with_box(bg, x, 220, 80, 50, (40, 110, 200)), rng)
            steps.append((dog, at_distance(E[0], E[2 + j % 20], distance)))
        return steps + [(shaken(bg, rng), E[0])] * 30

    kept = kept_frames(crossing(0.10))
    assert kept[0] == 0 and len(kept) == 2 and 30 <= kept[1] < 30 + len(xs), kept
    assert kept_frames(crossing(0.05)) == [0]


def test_a_small_thing_new_by_its_region_cells_below_their_threshold_is_kept_as_its_pixels_show_it():
    # A dog runs across the empty street: it moves the whole image 0.04 (below settle_ratio x 0.15) and
    # the region cells under it 0.6 of their threshold. Its pixels show a whole thing, so, as for the whole
    # image, settle_ratio (0.5) of the region threshold is enough when the event closes (the full threshold
    # there lost 8 of the 18 visitors that 20 fresh demo draws missed, dogs on the pavement: finding 22).
    # At 0.3 of the region threshold (below settle_ratio) it is not kept: the pixels alone never make a keep.
    rng = np.random.default_rng(14)
    cells_dim = 8
    base = np.stack([unit(v) for v in rng.standard_normal((49, cells_dim))])
    bg = street(14)
    xs = list(range(40, 520, 30))

    def cells(moved: tuple[int, ...] = (), distance: float = 0.0) -> np.ndarray:
        out = np.stack([unit(v) for v in base + 0.001 * rng.standard_normal(base.shape)])
        for c in moved:
            other = rng.standard_normal(cells_dim)
            out[c] = at_distance(base[c], unit(other - (other @ base[c]) * base[c]), distance)
        return out.astype(np.float32)

    def crossing(share: float) -> list:
        # region_threshold 9 noise units; the cells' noise scale is its floor (0.01): share x 0.09 apart
        steps = [(shaken(bg, rng), E[0], cells()) for _ in range(30)]
        for j, x in enumerate(xs):
            dog = shaken(with_box(bg, x, 220, 80, 50, (40, 110, 200)), rng)
            under = tuple(sorted({4 * 7 + c for c in (int(x / W * 7), int((x + 79) / W * 7))}))
            steps.append((dog, at_distance(E[0], E[2 + j % 20], 0.04), cells(under, share * 0.09)))
        return steps + [(shaken(bg, rng), E[0], cells()) for _ in range(30)]

    def kept(share: float) -> list[int]:
        filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock(), region_count=49, region_dim=cells_dim)
        return feed(filt, crossing(share))

    got = kept(0.6)
    assert got[0] == 0 and len(got) == 2 and 30 <= got[1] < 30 + len(xs), got
    assert kept(0.3) == [0]


def test_a_thing_whole_in_view_after_an_entry_barely_past_the_threshold_is_kept_whole():
    # A car drives through. One frame of its entry passes the threshold, barely (0.16 against 0.15: alone, no
    # event); once whole it moves the embedding only 0.10. Frames that joined the event show a whole thing,
    # which makes them as novel as a frame that opened one by its pixels (demo seed 10 lost a blue car so).
    rng = np.random.default_rng(13)
    bg = street(13)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    xs = list(range(-180, W, 40))
    for j, x in enumerate(xs):
        whole = 0 < x and x + 200 < W
        distance = 0.10 if whole else (0.16 if j == 1 else 0.08)
        steps.append((shaken(with_box(bg, x, 200, 200, 90, (60, 160, 60)), rng),
                      at_distance(E[0], E[2 + j % 20], distance)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + len(xs), kept
    x = xs[kept[1] - start]
    assert 0 < x and x + 200 < W, f"kept the car at x={x}: cut by the border"


def test_a_dog_the_grey_of_the_road_is_kept_by_its_colour():
    # A dog runs across the empty street, 1.5 % of the view, moving the embedding 0.10 (the threshold is
    # 0.15): its pixels must show a thing for it to be kept (settle_ratio). It is orange-red with the road's
    # grey (luma 95 against 92) on two dark legs: brightness alone shows the legs, too small for a thing,
    # and it was lost, as orange dogs on the pavement of 20 fresh demo draws were (finding 22). Its colour
    # shows it.
    rng = np.random.default_rng(15)
    bg = street(15)
    dogs = []
    for x in range(40, 520, 30):
        dog = with_box(bg, x, 195, 80, 40, (0, 60, 200))  # above the lane marks
        for leg in (x + 5, x + 55):
            dog = with_box(dog, leg, 235, 20, 30, (30, 30, 30))
        dogs.append(dog)
    steps = crossing(lambda img: shaken(img, rng), bg, dogs)
    assert change(luma(view_thumbnail(steps[35][0])), luma(view_thumbnail(bg))).whole < 23
    assert_kept_once_while_crossing(kept_frames(steps), len(dogs))


def crossing(look, bg: np.ndarray, drawn: list[np.ndarray]) -> list[tuple]:
    """Frames seen through ``look`` (a camera: image -> image): 30 of the still scene ``bg``, one per image of a
    thing crossing it (``drawn``), each 0.10 from the scene's embedding towards another direction (the threshold is
    0.15), then 30 of the scene again."""
    steps = [(look(bg), E[0])] * 30
    steps += [(look(img), at_distance(E[0], E[2 + j % 20], 0.10)) for j, img in enumerate(drawn)]
    return steps + [(look(bg), E[0])] * 30


def assert_kept_once_while_crossing(kept: list[int], frames: int) -> None:
    """The first frame and one of the ``frames`` frames of the thing crossing (see :func:`crossing`) kept."""
    assert kept[0] == 0 and len(kept) == 2 and 30 <= kept[1] < 30 + frames, kept


def at_night(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What an IR camera at night sees: grey, half the contrast, lifted, with sensor noise."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.5 + 20.0
    grey += rng.normal(0.0, 3.0, grey.shape)
    return cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def test_the_least_level_of_what_a_frame_shows_follows_the_scenes_contrast():
    rng = np.random.default_rng(3)
    day, dark = view_thumbnail(street(15)), view_thumbnail(at_night(street(15), rng))
    assert least_level(day) == MIN_LEVEL  # the street by day is past LOW_CONTRAST
    assert MIN_LEVEL / 2 < least_level(dark) < 0.8 * MIN_LEVEL
    assert least_level(np.full((90, 160), 90, np.uint8)) == MIN_LEVEL / 2  # never below half
    # a walker 16 grey levels off the road at night: change() sees her, the test asked of every frame does not
    walker = view_thumbnail(at_night(with_box(street(15), 300, 190, 40, 100, (122, 122, 127)), rng))
    assert change(walker, dark).whole >= 23 and change(walker, dark).things == 1
    assert change_mask(luma(walker), luma(dark)) is None


def test_a_big_grey_car_at_night_shows_against_the_street_seen_under_another_exposure():
    # Known frames are compared across exposure changes. At night (half the contrast) a car covering a third of
    # the view is within 16 grey levels of the street: least squares over every pixel flattened the street to
    # explain the car (gain 0.5, the limit) and won the exposure fit; the car vanished into the residual, and
    # the first car of a night demo draw was "seen before" as the empty street (benchmarks/QUALITY.md, finding
    # 44). A shift of the brightness alone, the unchanged majority's median difference, explains the street.
    rng = np.random.default_rng(5)
    bg = street(15)
    car = view_thumbnail(at_night(with_box(bg, 150, 170, 380, 150, (130, 130, 130)), rng))
    for step in (-6, 8):
        empty = view_thumbnail(np.clip(at_night(bg, rng).astype(np.int16) + step, 0, 255).astype(np.uint8))
        shown = change(car, empty)
        assert shown.whole >= 400 and shown.things == 1 and shown.edge == 0, (step, shown)
        memory = Known()
        memory.seen(0.0, empty)
        assert not memory.knows(10.0, car)
        assert memory.knows(10.0, view_thumbnail(at_night(bg, rng)))  # the street itself is known


def test_a_faint_walker_on_the_street_at_night_is_kept_by_her_pixels():
    # Through an IR camera at night (grey, half the contrast) a walker crosses the street, moving the embedding
    # 0.10 (the threshold is 0.15): her pixels must show a thing for her to be kept (settle_ratio). She differs
    # from the road by 17 grey levels: past the least level of 16 that the change test had by day and night she
    # showed 5-13 mask pixels, too few for a thing (23), as the visitors lost in 40 fresh night demo draws did
    # (12-14 %: benchmarks/QUALITY.md, findings 42 and 43). The level follows the street's contrast: kept once.
    rng = np.random.default_rng(16)
    bg = street(15)
    walkers = [with_box(bg, x, 190, 40, 100, (124, 124, 129)) for x in range(40, 560, 25)]
    steps = crossing(lambda img: at_night(img, rng), bg, walkers)
    assert_kept_once_while_crossing(kept_frames(steps), len(walkers))


def walker_with_dark_coat(bg: np.ndarray, x: int, body: int) -> np.ndarray:
    """A walker 40x100 px of grey ``body`` on the street, a dark coat across the upper third of her."""
    return with_box(with_box(bg, x, 190, 40, 100, (body,) * 3), x + 10, 200, 20, 33, (50, 50, 50))


def test_a_faint_thing_at_night_shows_whole_grown_from_its_darkest_part_and_by_day_nothing_grows():
    # At night an IR camera takes the colour a thing stood out by and halves what is left: a walker whose body
    # is near the road's grey shows the mask her dark coat alone (6 mask pixels, no picture of a thing), while
    # most of her body lies just under the level. Her blob is grown into the pixels beside it above the level
    # scaled by the contrast once more: hysteresis (benchmarks/QUALITY.md, finding 47). By day (full contrast)
    # nothing grows: a faint halo around a dark thing stays out, and so do JPEG specks' halos.
    rng = np.random.default_rng(2)
    bg = street(15)
    dark = view_thumbnail(at_night(bg, rng))
    for x in (100, 300, 460):
        shown = change(view_thumbnail(at_night(walker_with_dark_coat(bg, x, 116), rng)), dark)
        assert shown.whole >= 23 and shown.things == 1 and shown.edge == 0, (x, shown)
    for x in (100, 300, 460):  # by day her body 12 grey levels off the road adds nothing to her coat
        coat = change(view_thumbnail(walker_with_dark_coat(bg, x, 90)), view_thumbnail(bg))
        assert change(view_thumbnail(walker_with_dark_coat(bg, x, 102)), view_thumbnail(bg)) == coat
        assert 0 < coat.whole < 23


def test_a_walker_at_night_the_mask_sees_only_the_coat_of_is_kept_once_while_crossing():
    # The same walker crossing the street at night, moving the embedding 0.10 (the threshold is 0.15): kept once
    # by her pixels, as the dogs and walkers near the pavement's grey of the night demo draws were not before
    # finding 47 (6 mask pixels where a thing needs 23).
    rng = np.random.default_rng(17)
    bg = street(15)
    walkers = [walker_with_dark_coat(bg, x, 116) for x in range(40, 560, 25)]
    steps = crossing(lambda img: at_night(img, rng), bg, walkers)
    assert_kept_once_while_crossing(kept_frames(steps), len(walkers))


def test_a_state_saved_with_grey_thumbnails_is_known_by_its_brightness_after_the_upgrade(tmp_path):
    # State files from before colour hold grey thumbnails: they are restored and compared by brightness
    # (the car kept before the restart comes back brighter and 0.33 away by its embedding: not kept again),
    # and saved again as grey beside the colour ones that follow.
    rng = np.random.default_rng(16)
    empty, parked = street(16), with_box(street(16), 200, 190, 240, 100, (40, 40, 160))
    filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    assert feed(filt, [(shaken(empty, rng), E[0])] * 20 + [(shaken(parked, rng), E[1])] * 20)[0] == 0
    filt.save(tmp_path, "m")
    from edgefilter.state import load_state, save_state
    payload = load_state(tmp_path, "novelty", "m")
    payload["known0.views"] = payload["known0.views"][:, 0].copy()  # what an older version saved
    save_state(tmp_path, "novelty", payload, "m")
    again = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    assert again.load(tmp_path, "m")
    assert again._src["cam"].known.kept_views()[0].shape == (2, 90, 160)
    brighter = np.clip(parked.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
    assert feed(again, [(shaken(brighter, rng), at_distance(E[1], E[3], 0.33))] * 20, start=40) == []
    new_place = with_box(empty, 420, 190, 150, 100, (200, 60, 40))
    assert len(feed(again, [(shaken(new_place, rng), E[4])] * 20, start=60)) == 1
    again.save(tmp_path, "m")  # grey and colour thumbnails together: saved as grey
    assert load_state(tmp_path, "novelty", "m")["known0.views"].shape == (3, 90, 160)


def driving_away(bg: np.ndarray, rng: np.random.Generator, vector: np.ndarray, frames: int = 12) -> list:
    """A car driving away from the camera: it shrinks from 240x120 to 120x60 px, each frame novel to the
    whole image (a car small in the distance stays so)."""
    steps = []
    for j in range(frames):
        w, h = int(240 - 120 * j / (frames - 1)), int(120 - 60 * j / (frames - 1))
        steps.append((shaken(with_box(bg, 300 - w // 2, 300 - h, w, h, (25, 25, 25)), rng), vector))
    return steps


def after_a_car_drove_away(seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, list]:
    """(rng, street, the car's vector, frames): the empty street for 3 s, then a car driving away."""
    rng = np.random.default_rng(seed)
    bg = street(seed)
    first = at_distance(E[0], E[2], 0.3)
    return rng, bg, first, [(shaken(bg, rng), E[0])] * 30 + driving_away(bg, rng, first)


def test_a_car_driving_away_is_kept_at_its_best_view_and_the_next_one_on_its_own():
    # The road at 12 fps: the first car shrinks into the distance, novel to the whole image to the end, and
    # the next comes in from the border before it is gone. An event faded only once its frames stopped being
    # novel: on the road both cars were one event and one of them was kept; here (7e46988) the first car was
    # kept small, in the distance (frame 45). It fades when the view has shrunk to half its best.
    rng, bg, first, steps = after_a_car_drove_away(14)
    small = with_box(bg, 240, 240, 120, 60, (25, 25, 25))
    steps += [(shaken(small, rng), first)] * 3
    start = len(steps)
    for j, x in enumerate(range(-200, W, 40)):  # the second car crosses while the first is far away
        img = with_box(small, x, 180, 200, 70, (60, 170, 60))
        steps.append((shaken(img, rng), at_distance(E[0], E[3 + j % 3], 0.3)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 3 and 30 <= kept[1] < 45 and start <= kept[2] < start + 22, kept


def test_a_car_small_in_the_distance_after_its_event_faded_is_not_kept_again():
    # Once the car's event faded and was kept, the car is still in view, far away: whole, bigger than 1 % of
    # the image, and so little change to the embedding that it is nearer the empty road's keep than the
    # car's, and each frame differs from the others by more than the threshold. Its pixels alone would open
    # a new event (past settle_ratio); it continues the one decided.
    rng, bg, _, steps = after_a_car_drove_away(15)
    for j in range(20):  # far away, still driving (12 px a frame: more than a shake)
        steps.append((shaken(with_box(bg, 120 + 12 * j, 240, 120, 60, (25, 25, 25)), rng),
                      at_distance(E[0], E[6 + j], 0.10)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 30 <= kept[1] < 42, kept


def after_the_car_drove_away_on(seed: int, bigger: bool) -> list[int]:
    """The frames kept when, after the car's event was kept, its place shows a car driving on (``bigger``: a
    bigger car there), each frame 0.165 from the event's frames: past the threshold (0.15), within RENOVEL x it."""
    rng, bg, first, steps = after_a_car_drove_away(seed)
    for j in range(10):
        w, h = (300, 150) if bigger else (110 - 2 * j, 55 - j)
        steps.append((shaken(with_box(bg, 300 - w // 2 + 12 * j, 300 - h, w, h, (25, 25, 25)), rng),
                      at_distance(first, E[6 + j], 0.165)))
    return kept_frames(steps + [(shaken(bg, rng), E[0])] * 30)


def test_a_car_driving_on_barely_past_its_events_frames_is_not_kept_again_and_a_bigger_one_there_is():
    # The road at night: where the change test sees more of a car driving away, its far view moved the whole image
    # just past the threshold from its event's frames and it was kept again (finding 43). A frame barely past them
    # (RENOVEL) that shows only the followed thing, and no more change than the kept frame, continues the event;
    # a bigger car where the event's drove (a busy road: the next car, closer) is new.
    assert after_the_car_drove_away_on(15, bigger=False) == [0, 30]
    kept = after_the_car_drove_away_on(15, bigger=True)
    assert len(kept) == 3 and kept[:2] == [0, 30] and kept[2] >= 42, kept


def test_a_car_driving_on_past_its_events_frames_a_step_at_a_time_is_not_kept_again():
    # At 30 fps an event fades a sixth of a second after its car began to leave (settle_frames frames), and the
    # car driving on moved the whole image, step by step, past RENOVEL x the threshold from the event's frames: it
    # was kept again as it left (demo draw 343 at 30 fps, finding 52). Each step is near the frame before, and each
    # frame shows the followed thing alone: the rest of the visit. A bigger car there is still new.
    def kept(bigger: bool) -> list[int]:
        rng, bg, first, steps = after_a_car_drove_away(16)
        v = at_distance(first, E[6], 0.10)
        for j in range(10):
            w, h = (300, 150) if bigger else (110 - 2 * j, 55 - j)
            steps.append((shaken(with_box(bg, 300 - w // 2 + 12 * j, 300 - h, w, h, (25, 25, 25)), rng), v))
            v = at_distance(v, E[7 + j], 0.06)  # 0.06 from the step before; 0.21 from the event's frames at the third
        return kept_frames(steps + [(shaken(bg, rng), E[0])] * 30)

    assert kept(bigger=False) == [0, 30]
    again = kept(bigger=True)
    assert len(again) == 3 and again[:2] == [0, 30] and again[2] >= 42, again


def test_the_best_view_prefers_a_thing_clear_of_the_border_to_a_larger_one_just_inside_it():
    # A walker 15 px inside the left border is whole to the 64x36 change mask (a mask pixel is 10 px) but
    # may be cut to a person's eye; there it is a little larger (nearer the camera). Things a mask pixel from
    # the border count half in the best view: a frame where it is clear of the border is kept.
    rng = np.random.default_rng(13)
    bg = street(13)
    steps = [(shaken(bg, rng), E[0])] * 30
    boxes = [(15, 190, 70, 120)] + [(x, 200, 60, 100) for x in range(80, 480, 50)]
    for j, (x, y, w, h) in enumerate(boxes):
        steps.append((shaken(with_box(bg, x, y, w, h, (30, 200, 220)), rng), at_distance(E[0], E[2 + j], 0.4)))
    steps += [(shaken(bg, rng), E[0])] * 30
    near = change(view_thumbnail(steps[30][0]), view_thumbnail(bg))
    assert near.edge == 0 and near.near == near.whole > change(view_thumbnail(steps[32][0]), view_thumbnail(bg)).whole
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 31 <= kept[1] < 30 + len(boxes), kept


def test_remembered_keeps_forget_their_index_keys_when_the_scope_changes():
    # A rescope merges the indexes and keys them anew: a remembered keep's old key may then name another
    # frame, so region cells would be compared where the wrong thumbnail's pixels changed.
    rng = np.random.default_rng(14)
    bg = street(14)
    filt = NoveltyFilter(FilterConfig(), DIM, ["cam"], FakeClock())
    parked = shaken(with_box(bg, 200, 190, 240, 100, (40, 40, 160)), rng)
    feed(filt, [(shaken(bg, rng), E[0])] * 5 + [(parked, E[1])] * 20)
    known = filt._src["cam"].known
    _, keys = known.kept_views()
    assert len(keys) == 2 and all(known.view_of(int(k)) is not None for k in keys)
    filt.reconfigure(FilterConfig(scope="global"))
    _, after = known.kept_views()
    assert len(after) == 2 and all(k == -1 for k in after) and known.view_of(int(keys[0])) is None


def stops_and_moves_on(seed: int, box: tuple[int, int, int], colour, step: int, stop_x: int, stop_frames: int
                       ) -> tuple[list, int, np.ndarray, np.ndarray]:
    """(frames, the first frame of the thing, the scene with it stopped, the empty scene): the empty street for 3 s,
    a thing (``box``: y, w, h) coming in from the left border ``step`` px a frame for 8 frames, stopped at ``stop_x``
    for ``stop_frames`` frames, moving on out of view (its frames like those coming in), the empty street for 3 s."""
    y, w, h = box
    rng = np.random.default_rng(seed)
    bg = street(seed)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    entry = [at_distance(E[2], E[3 + j], 0.03) for j in range(8)]
    for j, x in enumerate(range(stop_x - 8 * step, stop_x, step)):
        steps.append((shaken(with_box(bg, x, y, w, h, colour), rng), entry[j]))
    stopped = with_box(bg, stop_x, y, w, h, colour)
    steps += [(shaken(stopped, rng), E[12])] * stop_frames
    for j, x in enumerate(range(stop_x + step, W + step, step)):
        steps.append((shaken(with_box(bg, x, y, w, h, colour), rng), at_distance(entry[j % 8], E[20 + j % 8], 0.05)))
    steps += [(shaken(bg, rng), E[0])] * 30
    return steps, start, stopped, bg


def test_a_car_that_stops_in_view_and_drives_off_is_kept_once():
    # A car drives in, stops for 1.5 s (its settled frame is kept) and drives off: its frames driving off are
    # novel against that keep and like its frames driving in. The still scene used to end the memory of its
    # event, and the car was kept again, cut by the border as it left (all 16 redundant keeps of the demo draws
    # 100-139: benchmarks/QUALITY.md, finding 29). The scene is still with the car in it: the same visit.
    steps, start, _, _ = stops_and_moves_on(14, (190, 240, 100), (150, 60, 30), 50, 200, 15)
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 23, kept


def test_a_dog_that_stops_in_view_and_runs_on_is_kept_once():
    # A dog runs in, stands for 2 s (its settled frame is kept) and runs on. Standing, it shows 40-60 mask pixels,
    # fewer than a car (STAYING_PIXELS), and the still scene after its event ended the visit's memory: the dog
    # running on was kept again (demo draws 345 and 346 at 30 fps, finding 53). Its followed mask still shows it
    # there by as much as its kept frame: the same visit.
    steps, start, stopped, bg = stops_and_moves_on(15, (240, 90, 50), (240, 240, 240), 30, 180, 20)
    shown = change(view_thumbnail(stopped), view_thumbnail(bg))
    assert KNOWN_PIXELS < shown.whole < STAYING_PIXELS, shown
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 28, kept


def test_a_small_thing_put_down_for_longer_than_max_hold_is_a_state_and_the_hand_that_moves_it_is_new():
    # A box smaller than a car is put down (its settled frame is kept) and stays for 8 s; then a hand moves it
    # along the table. The still scene shows the box where the event followed it, as a dog that stops does; a dog
    # stops for a second or two, but a thing that stays longer than max_hold_s is a state of its own, and the hand
    # that moves it next is a new event, however like the box's frames it looks (bottle irregular holds 3, which
    # lost its table state LM to the memory of the state before: finding 53).
    rng = np.random.default_rng(17)
    bg = street(17)
    steps = [(shaken(bg, rng), E[0])] * 30
    for j, x in enumerate(range(-60, 240, 60)):  # an arm brings the box in from the left border
        steps.append((shaken(with_box(bg, x, 230, 90, 50, (20, 160, 40)), rng), at_distance(E[2], E[3 + j], 0.03)))
    put = with_box(bg, 240, 230, 90, 50, (20, 160, 40))
    steps += [(shaken(put, rng), E[2])] * 80
    start = len(steps)
    for j, x in enumerate(range(270, 420, 30)):  # a hand pushes it on, a little like the box's frames
        steps.append((shaken(with_box(bg, x, 230, 90, 50, (20, 160, 40)), rng), at_distance(E[2], E[10 + j], 0.1)))
    moved = with_box(bg, 420, 230, 90, 50, (20, 160, 40))
    steps += [(shaken(moved, rng), at_distance(E[2], E[16], 0.1))] * 30
    shown = change(view_thumbnail(put), view_thumbnail(bg))
    assert KNOWN_PIXELS < shown.whole < STAYING_PIXELS, shown
    kept = kept_frames(steps)
    assert kept[0] == 0 and 30 <= kept[1] < start and any(k >= start for k in kept[2:]), kept


def test_a_still_new_state_after_an_event_that_ran_out_its_hold_is_kept():
    # An arm reaches in from the border for 6 s (its event is decided at max_hold_s, 5 s, while it is still in
    # view) and leaves a box behind. The box on the table is still, new to the embedding, and like a frame of
    # the arm's event: a thing in a still scene keeps that event's memory (a car stopped in view), but a still
    # scene novel in itself is a state of its own (bottle irregular holds 3: benchmarks/QUALITY.md, finding 28).
    rng = np.random.default_rng(16)
    bg = street(16)
    steps = [(shaken(bg, rng), E[0])] * 30
    arm = [unit(np.cos(a) * E[2] + np.sin(a) * E[3]) for a in np.linspace(0.0, np.pi / 2, 60)]
    for j, v in enumerate(arm):  # growing in from the right border: its best view is its last
        steps.append((shaken(with_box(bg, W - 60 - 6 * j, 200, 60 + 6 * j, 60, (60, 120, 200)), rng), v))
    start = len(steps)
    left = with_box(bg, 260, 210, 160, 100, (20, 160, 40))
    steps += [(shaken(left, rng), at_distance(arm[20], E[20], 0.04))] * 40
    kept = kept_frames(steps)
    assert kept[0] == 0 and any(k >= start for k in kept), kept


def test_a_dog_after_a_car_parked_at_the_border_drove_off_is_its_own_event():
    # A car stands half out of view at the right border (kept, settled), then drives off to the left (kept
    # whole). The street it leaves is the street seen before the car came, but against the scene before that
    # event (the car parked) it shows the hole the car left, cut by the border: that looked like a car stopped
    # half out of view, so the event never settled, and its memory outlived its hold. A dog that ran by as the
    # hold ran out was taken for the rest of the car's visit (demo seed 103: benchmarks/QUALITY.md, finding 29).
    rng = np.random.default_rng(18)
    bg = street(18)
    empty = E[0]
    steps = [(shaken(bg, rng), empty)] * 30
    parked = at_distance(empty, E[1], 0.3)
    for x in range(W - 40, W - 160, -40):  # drives in and stops, cut by the border
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(parked, E[2], 0.05)))
    steps += [(shaken(with_box(bg, W - 160, 190, 240, 100, (150, 60, 30)), rng), parked)] * 30
    began = len(steps)
    for j, x in enumerate((W - 460, -120, -200)):  # drives off to the left fast: whole, then cut, then gone
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(parked, E[3 + j], 0.25)))
    # the empty street again, under another exposure (0.05 from the first empty street to the embedding)
    again = at_distance(empty, E[25], 0.05)
    steps += [(shaken(bg, rng), again)] * (began + 44 - len(steps))  # the dog comes just before max_hold_s
    dog_from = len(steps)
    dog = at_distance(empty, E[25], 0.2)  # novel to every keep; like the street under the new exposure
    for x in range(40, W - 120, 40):
        steps.append((shaken(with_box(bg, x, 250, 80, 60, (30, 30, 30)), rng), dog))
    steps += [(shaken(bg, rng), again)] * 30
    kept = kept_frames(steps)
    assert any(dog_from <= k < dog_from + 13 for k in kept), kept


def test_a_car_that_stops_cut_by_the_border_and_drives_off_is_kept_once():
    # A car drives in whole and stops with a sixth of it out of view for 3 s: its event fades (a view cut by the
    # border counts a quarter) and its best view is kept. The still scene still shows the car, cut by the border: the
    # same visit, and the car driving out, novel against that keep and like its frames stopped, is not kept
    # again (a change cut by the border counts towards the memory's size as one clear of it: benchmarks/
    # QUALITY.md, finding 29).
    rng = np.random.default_rng(20)
    bg = street(20)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    whole = E[2]
    for x in range(-200, W - 200, 60):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), whole))
    stopped = at_distance(whole, E[12], 0.10)
    steps += [(shaken(with_box(bg, W - 200, 190, 240, 100, (150, 60, 30)), rng), stopped)] * 30
    for j, x in enumerate(range(W - 160, W + 40, 40)):  # novel against the keep (0.19), not against the stop
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng),
                      at_distance(stopped, E[20 + j], 0.10)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 12, kept


def test_a_car_that_stops_half_in_view_on_its_way_in_and_drives_on_is_kept_whole():
    # A car drives in from the right border and stops with a third of it out of view for 2 s, then drives on to
    # the left, whole for a few frames, and out. Its still scene is new and was kept as the state it settled into,
    # cut by the border, and the car driving on was the rest of that visit: most of the 17 cars that stop on
    # the demo draws 100-139 were kept only so (benchmarks/QUALITY.md, finding 30). A thing that came in from the
    # border and was never whole is no state to settle on before max_hold_s: the event goes on to its whole view.
    rng = np.random.default_rng(22)
    bg = street(22)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    xs = list(range(W - 40, W - 160, -40))                       # comes in from the right border ...
    stop = W - 160                                               # ... and stops, 80 of its 240 px out of view
    moving = [at_distance(E[2], E[3 + j], 0.05) for j in range(16)]
    for j, x in enumerate(xs):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), moving[j]))
    steps += [(shaken(with_box(bg, stop, 190, 240, 100, (150, 60, 30)), rng), E[12])] * 20
    on = list(range(stop - 60, -300, -60))                       # drives on: whole from x <= W - 240, then out
    for j, x in enumerate(on):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), moving[4 + j]))
    whole = [start + len(xs) + 20 + j for j, x in enumerate(on) if 0 <= x <= W - 240]
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] in whole, (kept, whole)


def test_a_car_that_came_in_before_its_event_opened_and_stands_half_in_view_is_kept_whole():
    # As above, but the car coming in is not novel (0.10 from the street: past settle_ratio, under the threshold):
    # the event opens only where it stands, a third of it out of view, and its first frame shows as much of it as
    # the newest. Whether it grew in from the border was read from those two frames alone, and a car standing still
    # showed 403 mask pixels in one and 392 in the other: it was kept as it stood there (demo draws 115 and 168:
    # benchmarks/QUALITY.md, finding 45). Frames cut by the border and past settle_ratio just before the event are
    # the thing coming in.
    rng = np.random.default_rng(23)
    bg = street(23)
    steps = [(shaken(bg, rng), E[0])] * 30
    xs = list(range(W - 40, W - 160, -40))
    stop = W - 160
    for j, x in enumerate(xs):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(E[0], E[3 + j], 0.10)))
    stopped = at_distance(E[0], E[10], 0.30)
    steps += [(shaken(with_box(bg, stop, 190, 240, 100, (150, 60, 30)), rng), stopped)] * 20
    on = list(range(stop - 60, -300, -60))
    for j, x in enumerate(on):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(stopped, E[14 + j], 0.10)))
    start_on = 30 + len(xs) + 20
    whole = [start_on + j for j, x in enumerate(on) if 0 <= x <= W - 240]
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] in whole, (kept, whole)


def test_a_new_scene_cut_by_the_border_from_its_first_frame_settles_as_before():
    # The next signer's clip: a large change at the bottom border in one frame, then still. It did not come in
    # from the border, so it is a state to settle on at once, not a car half in view waiting to drive on (held to
    # max_hold_s, the ASL streams kept another signer's frames again: benchmarks/QUALITY.md, finding 30).
    rng = np.random.default_rng(24)
    bg = street(24)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    signer = with_box(bg, 200, 120, 240, H - 120, (60, 90, 160))
    steps += [(shaken(signer, rng), E[5])] * 70
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 15, kept


def test_an_arm_that_takes_a_thing_away_is_kept_as_the_state_it_leaves_not_on_its_way_out():
    # An arm reaches down from the top border, rests on a box, lifts it and carries it up and out. What is left
    # (the table without the box) is a fraction of the event's best view (arm and box), so the event faded, and its best
    # view, the box held up in view, was kept, a hand in the picture (the raw bottle clip kept the R state as
    # the arm left it, blurred: benchmarks/QUALITY.md, finding 30). A still frame of a scene that is not back
    # as it was is a state settling, once the event waited for a thing on its way in (the arm, never whole): the
    # settle rule decides and keeps the table as it is now.
    rng = np.random.default_rng(26)
    bg = with_box(street(26), 300, 240, 60, 60, (20, 160, 40))
    steps = [(shaken(bg, rng), E[0])] * 30
    empty = street(26)
    arm = (60, 120, 200)
    for j, reach in enumerate((60, 120, 200, 240)):          # reaches down, cut by the top border
        steps.append((shaken(with_box(bg, 310, 0, 40, reach, arm), rng), at_distance(E[2], E[3 + j], 0.05)))
    rest = at_distance(E[2], E[7], 0.05)                     # rests on the box for a second
    steps += [(shaken(with_box(bg, 310, 0, 40, 240, arm), rng), rest)] * 10
    for j, y in enumerate((200, 140, 80)):                   # lifts the box: arm and box in view
        img = with_box(with_box(empty, 300, y, 60, 60, (20, 160, 40)), 310, 0, 40, y, arm)
        steps.append((shaken(img, rng), at_distance(E[2], E[8 + j], 0.05)))
    # held up, clear of the border
    img = with_box(with_box(empty, 250, 110, 160, 110, (20, 160, 40)), 250, 30, 160, 80, arm)
    steps.append((shaken(img, rng), at_distance(E[2], E[11], 0.05)))
    for j, y in enumerate((20, -30)):                        # out through the top border
        img = with_box(with_box(empty, 300, y, 60, 60, (20, 160, 40)), 310, 0, 40, max(y, 1), arm)
        steps.append((shaken(img, rng), at_distance(E[2], E[12 + j], 0.05)))
    state_from = len(steps)
    steps += [(shaken(empty, rng), E[20])] * 40
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] >= state_from, (kept, state_from)


def test_a_car_that_stopped_half_in_view_before_it_was_novel_is_kept_whole_as_it_drives_on():
    # A car like one kept before comes in from the right border too little to be novel, stops a third out of view
    # for 2 s and drives on, whole for a few frames and then as near a keep as a car drawn like it (0.06). The still scene
    # with the car half in view became the scene before its event, and against it the car driving on showed
    # in pieces: demo seed 7's white car was kept cut (benchmarks/QUALITY.md, finding 31). A still scene that
    # shows a change mostly cut by the border is not the background before max_hold_s; and the one frame
    # barely past the threshold as the car drove on is no exposure step: it came in from the border and a
    # later frame shows it whole.
    rng = np.random.default_rng(28)
    bg = street(28)
    steps = [(shaken(bg, rng), E[0])] * 30
    car = (150, 60, 30)
    for j, x in enumerate(range(W - 40, W - 160, -40)):          # comes in, never novel (0.10 < 0.15)
        steps.append((shaken(with_box(bg, x, 190, 240, 100, car), rng), at_distance(E[0], E[3 + j], 0.10)))
    stop = W - 160                                               # stops, 80 of its 240 px out of view
    steps += [(shaken(with_box(bg, stop, 190, 240, 100, car), rng), at_distance(E[0], E[6], 0.10))] * 20
    on = list(range(stop - 60, -300, -60))                       # drives on: whole from x <= W - 240, then out
    whole = []
    for j, x in enumerate(on):
        whole += [len(steps)] if 0 <= x <= W - 240 else []
        # barely novel once, as it leaves where it stood (0.16: at most RENOVEL x the threshold)
        distance = 0.16 if j == 0 else 0.06
        steps.append((shaken(with_box(bg, x, 190, 240, 100, car), rng), at_distance(E[0], E[8 + j], distance)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] in whole, (kept, whole)


def test_a_settled_car_whose_still_run_shows_it_cut_by_the_border_is_kept_whole_as_it_came_in():
    # What the mask shows of a grey car that drove in whole and stopped with its bumper past the right border, set
    # by hand: grey over grey pavement, the mask sees the border cut it in one frame of the still run and the rest of
    # the car clear of the border in the others. The scene settled, and the settled frame was kept: the car cut
    # (demo draw 107, benchmarks/QUALITY.md, finding 40). A still scene that shows a part cut by the border gives way
    # to the best view of the thing between two frames clear of it that shows at least as many mask pixels; a
    # speck at the border is no cut, and with no such view the settled frame stays.
    stopped = np.zeros((90, 160), np.uint8)
    stopped[30:60, 100:159] = 200  # not the scene before: a new state

    def pick(run_cut: Change, driving: list[Change]) -> tuple[int, str]:
        clear = Change(whole=220, things=2)
        shown = driving + [run_cut, clear, clear, clear, clear]
        still = [False] * len(driving) + [False, True, True, True, True]
        p = choose(event_of_views(shown, still, stopped), True, 0.5, lambda h, enough: Exact(2.0, 0.3, None, None))
        return p.frame.token, p.how

    driving = [Change(edge=90), Change(whole=230, things=2), Change(whole=240, things=2), Change(whole=200, things=1)]
    assert pick(Change(whole=180, edge=40, things=1), driving) == (2, "best view")  # between clear views, as large
    assert pick(Change(whole=200, edge=10, things=1), driving) == (8, "settled")   # a speck at the border
    assert pick(Change(whole=180, edge=40, things=1), driving[:1] + [Change(whole=200, things=2)] * 3) == (
        8, "settled")  # the views clear of the border show less: maybe cut themselves


def arm_resting_on_a_box(seed: int, small_first: bool = False) -> tuple[list[int], int]:
    """An arm reaches down from the top border, pushes a box aside, rests on it for a second and leaves; with
    ``small_first``, a small thing shows whole, clear of the border, before the arm comes in. The frames kept, and
    the first frame of the table once the arm left."""
    rng = np.random.default_rng(seed)
    box = (20, 160, 40)
    bg = with_box(street(seed), 300, 240, 60, 60, box)
    steps = [(shaken(bg, rng), E[0])] * 30
    moved = with_box(street(seed), 380, 240, 60, 60, box)
    arm = (60, 120, 200)
    for j in range(3 if small_first else 0):                # a small thing, whole, clear of the border
        shown = with_box(bg, 360 + 10 * j, 140, 100, 50, (50, 50, 50))
        steps.append((shaken(shown, rng), at_distance(E[2], E[12 + j], 0.05)))
    for j, reach in enumerate((60, 120, 200)):               # reaches down, cut by the top border
        steps.append((shaken(with_box(bg, 390, 0, 40, reach, arm), rng), at_distance(E[2], E[3 + j], 0.05)))
    for j, x in enumerate((320, 350, 380)):                  # pushes the box aside: its old place shows
        img = with_box(with_box(street(seed), x, 240, 60, 60, box), x + 10, 0, 40, 240, arm)
        steps.append((shaken(img, rng), at_distance(E[2], E[6 + j], 0.05)))
    rest = at_distance(E[2], E[9], 0.05)                     # rests on it for a second
    steps += [(shaken(with_box(moved, 390, 0, 40, 240, arm), rng), rest)] * 10
    for j, reach in enumerate((160, 80)):                    # and leaves
        steps.append((shaken(with_box(moved, 390, 0, 40, reach, arm), rng), at_distance(E[2], E[10 + j], 0.05)))
    state_from = len(steps)
    steps += [(shaken(moved, rng), E[20])] * 40
    return kept_frames(steps), state_from


def test_a_hand_that_moves_a_thing_and_rests_on_it_is_no_state_until_it_has_gone():
    # An arm reaches down from the top border, pushes a box aside and rests on it for a second, then leaves. The
    # box's old place shows whole (a hole clear of the border) while the arm, cut by the border, is most of the
    # change: the still scene with the arm resting was kept as the new state, a hand in the picture (bottle
    # irregular holds 3, frame 10054: benchmarks/QUALITY.md, finding 31). A still scene mostly cut by the border
    # after frames that were all mostly cut too is a thing on its way in: the table is kept once the arm left.
    kept, state_from = arm_resting_on_a_box(30)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] >= state_from, (kept, state_from)


def test_a_dark_thing_across_half_the_view_is_whole_where_it_is_clear_of_the_border():
    # A black car across half the street: the frame's median grey is the car's, so the median exposure fit
    # (and least squares, bent by the car) took a gain of about 0.6, the whole street became change joined
    # to the car, and the car looked cut by the border while whole (demo seeds 106 and 188; benchmarks/
    # QUALITY.md, findings 28 and 32). No exposure change explains the unchanged half best. The demo camera's
    # street (brick, windows, pavement, road): the greys the car hides matter, and the plain test street
    # leaves the fit right.
    for seed in range(3):
        rng = np.random.default_rng(seed)
        bg = demo_background(rng, W, H)
        car = view_thumbnail(shaken(with_box(bg, 20, 140, 530, 190, (28, 28, 30)), rng))
        shown = change(car, view_thumbnail(shaken(bg, rng)))
        assert shown.things == 1 and shown.edge == 0 and shown.whole > 700, (seed, shown)


def assert_second_car_kept_once_whole(cut_distance) -> None:
    """A second car drives right to left, 0.06 from the first car's keep while whole (0.4 x the threshold) and
    ``cut_distance(x)`` from it while the border cuts it at x; it is kept once, whole."""
    rng = np.random.default_rng(12)
    bg = street(12)
    steps = [(shaken(bg, rng), E[0])] * 30
    steps += [(shaken(with_box(bg, 200, 190, 240, 100, (40, 40, 160)), rng), E[1])] * 3
    steps += [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    xs = list(range(W - 40, -240, -40))
    for j, x in enumerate(xs):
        whole = 0 < x and x + 240 < W
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng),
                      at_distance(E[1], E[2 + j % 20], 0.06 if whole else cut_distance(x))))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert_kept_once_whole(kept, start, xs)


def test_a_car_the_embedding_takes_for_one_kept_is_kept_whole_though_only_its_cut_views_pass_settle_ratio():
    # The second car is 0.06 from the first car's keep when whole (0.4 x the threshold: below settle_ratio)
    # and 0.105 while the border cuts it (0.7 x: the cut is what is new). No frame passes the threshold and
    # the cut ones show no thing clear of the border, so no event opened and the car was never kept (demo
    # seed 128's brown car, kept before only through a wrong exposure fit: benchmarks/QUALITY.md, findings 28
    # and 32). After a change that large, cut by the border and past settle_ratio, the car whole opens an
    # event at any novelty, and its whole view is kept.
    assert_second_car_kept_once_whole(lambda x: 0.105)


def test_a_car_whose_one_cut_view_barely_passes_the_threshold_is_kept_whole():
    # As above, but one cut view of the second car, leaving, is 1.1 x the threshold from the first car's keep. One
    # frame barely past the threshold is no event by itself (an exposure step does as much), so the car was never
    # kept, while it was when no frame passed (demo draw 123's green car, one cut view 1.15 x: benchmarks/
    # QUALITY.md, finding 38). A frame that barely passed counts no more than none: the whole view is kept.
    assert_second_car_kept_once_whole(lambda x: 0.165 if x == -80 else 0.105)


def test_a_car_whose_event_faded_at_the_border_and_that_stands_there_is_not_kept_again():
    # A car drives through, whole in the middle (kept), and stops more than half out of view at the right border
    # for 2.5 s before it drives off. Its event fades as it goes out (a view cut by the border counts a quarter)
    # while its first frames standing there are still in it. The scene standing still is novel against the keep,
    # and a still scene new in itself ended the memory of the last event: a new event settled and kept the car
    # half out of view (the quick start's black car at 1429, demo seed 9's purple car at 1343: benchmarks/
    # QUALITY.md, finding 32). A still scene that shows the last event's change mostly cut by the border is
    # that thing standing half out of view: the same visit.
    rng = np.random.default_rng(24)
    bg = street(24)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    xs = list(range(-200, W - 100, 60))                  # in from the left, through, and to the right border
    for j, x in enumerate(xs):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(E[2], E[3 + j], 0.05)))
    stands = at_distance(E[2], E[20], 0.3)               # 140 of its 240 px out of view: novel against the keep
    steps += [(shaken(with_box(bg, W - 100, 190, 240, 100, (150, 60, 30)), rng), stands)] * 25
    for j, x in enumerate(range(W - 60, W + 60, 40)):
        steps.append((shaken(with_box(bg, x, 190, 240, 100, (150, 60, 30)), rng), at_distance(stands, E[24 + j], 0.05)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    whole = [start + j for j, x in enumerate(xs) if 0 <= x <= W - 240]
    assert kept[0] == 0 and len(kept) == 2 and kept[1] in whole, (kept, whole)


def test_a_visitor_who_stays_moving_keeps_the_memory_of_her_visit_past_max_hold_s():
    # A signer comes in from the border, stands (her still frames are kept as the state she settled into) and
    # signs on for 15 s, every frame like that keep (0.04 from it: not even past settle_ratio); then a gesture
    # novel against the keep, like her frames on the way in. The memory of her visit ended max_hold_s after its
    # last novel frame although she never left nor stood still, and the gesture opened a new event and was kept
    # (ASL irregular holds 3, 17195: benchmarks/QUALITY.md, finding 32). A frame like the event's frames, novel
    # or not, keeps the memory alive.
    rng = np.random.default_rng(26)
    bg = street(26)
    person = lambda x: with_box(bg, x, 150, 200, 160, (150, 60, 30))
    hand = lambda img, x, y: with_box(img, x, y, 40, 30, (60, 120, 200))
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    for j, x in enumerate((-160, -100, -40)):            # on her way in, cut by the border
        steps.append((shaken(person(x), rng), at_distance(E[2], E[10 + j], 0.03)))
    standing = at_distance(E[3], E[14], 0.02)
    steps += [(shaken(hand(person(200), 400, 150), rng), standing)] * 10
    for j in range(150):                                  # signing: her hand moves, nothing new to the embedding
        steps.append((shaken(hand(person(200), 400, 150 + 20 * (j % 3)), rng), at_distance(E[3], E[14 + j % 3], 0.02)))
    gesture = len(steps)
    steps += [(shaken(hand(person(200), 150, 100), rng), at_distance(E[2], E[20], 0.05))] * 3
    for j in range(20):
        steps.append((shaken(hand(person(200), 400, 150 + 20 * (j % 3)), rng), at_distance(E[3], E[14 + j % 3], 0.02)))
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start < kept[1] < gesture, (kept, gesture)


def test_a_dog_that_runs_out_of_view_a_frame_before_a_car_comes_in_and_stops_is_kept_too():
    # A dog runs across and out at the right border; the street is empty for one frame, inside its event, and a
    # car drives in from the left and stops. The car is not novel to the embedding (0.14: past settle_ratio
    # only); joined to the dog's event, the event settled on the car and kept it, and the dog was lost (demo
    # seed 161: benchmarks/QUALITY.md, finding 33). A frame that shows nothing of the event ends it. The car then
    # drives on and out at the right border, novel (0.18 from the empty street) but like its frames coming in:
    # the rest of its visit, which its event's memory holds only with the frames that came in before it opened.
    rng = np.random.default_rng(33)
    bg = street(33)
    empty = E[0]
    steps = [(shaken(bg, rng), empty)] * 30
    dog_from = len(steps)
    for j, x in enumerate(range(40, W + 40, 60)):  # the last frame is cut by the right border
        steps.append((shaken(with_box(bg, x, 250, 80, 60, (30, 30, 30)), rng), at_distance(empty, E[4 + j % 3], 0.2)))
    steps.append((shaken(bg, rng), at_distance(empty, E[20], 0.01)))
    car_from = len(steps)
    coming = at_distance(empty, E[10], 0.14)  # cut by the border
    for x in (-160, -80, 0):
        steps.append((shaken(with_box(bg, x, 120, 240, 100, (150, 60, 30)), rng), coming))
    for x in (80, 160):  # whole: opens the car's event
        steps.append((shaken(with_box(bg, x, 120, 240, 100, (150, 60, 30)), rng), at_distance(empty, E[13], 0.12)))
    stopped = at_distance(empty, E[11], 0.12)
    steps += [(shaken(with_box(bg, 200, 120, 240, 100, (150, 60, 30)), rng), stopped)] * 30
    going = at_distance(empty, unit(E[10] + E[12]), 0.18)
    for x in (360, 460, 560):  # out at the other border: half a car at either border is alike to the embedding
        steps.append((shaken(with_box(bg, x, 120, 240, 100, (150, 60, 30)), rng), going))
    steps += [(shaken(bg, rng), empty)] * 30
    kept = kept_frames(steps)
    assert any(dog_from <= k < car_from - 2 for k in kept), kept
    assert len([k for k in kept if k >= car_from]) == 1 and any(k >= car_from + 2 for k in kept), kept


def test_a_car_that_comes_in_far_away_as_the_kept_one_drives_out_is_kept_too():
    # The road played backwards (benchmarks/QUALITY.md, finding 34): a car drives through, is kept whole, and drives
    # out at the left border while the next one appears small in the distance on the right. Its event fades as the
    # first car goes out, and the next car's first frames, small, are in it. Growing as it comes closer, the next
    # car is novel against the keep but like those frames to the embedding, and the memory of that event took it
    # for the rest of the visit: it was never kept. The memory follows its thing from frame to frame in the view
    # (events.follow); the first car went out at the border, and the next one was never where it had been.
    rng = np.random.default_rng(34)
    bg = street(34)
    steps = [(shaken(bg, rng), E[0])] * 30
    for j, x in enumerate(range(380, -20, -60)):            # whole, through the middle
        steps.append((shaken(with_box(bg, x, 200, 160, 90, (150, 60, 30)), rng), at_distance(E[2], E[3 + j % 3], 0.03)))
    small = [(580 - 4 * j, 120, 16 + 3 * j, 12 + 2 * j) for j in range(8)]  # the next one far away, coming closer
    for j, x in enumerate((-60, -120)):                     # out at the left border
        img = with_box(with_box(bg, x, 200, 160, 90, (150, 60, 30)), *small[j], (20, 30, 40))
        steps.append((shaken(img, rng), at_distance(E[8], E[9 + j], 0.03)))
    for j in range(2, len(small)):
        steps.append((shaken(with_box(bg, *small[j], (20, 30, 40)), rng), at_distance(E[8], E[9 + j % 2], 0.03)))
    start = len(steps)
    boxes = [(530 - 30 * j, 120 + 6 * j, 40 + 24 * j, 26 + 12 * j) for j in range(8)]  # closer and closer
    for j, (x, y, w, h) in enumerate(boxes):
        steps.append((shaken(with_box(bg, x, y, w, h, (20, 30, 40)), rng), at_distance(E[8], E[12 + j % 3], 0.06)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and 30 <= kept[1] < start - 8, kept
    assert len(kept) == 3 and start + 3 <= kept[2] < start + len(boxes), (kept, start)


def walking_by(seed: int, step: int, turn: float, size: Callable[[int], tuple[int, int] | None]
               ) -> tuple[list, int, list[int]]:
    """(frames, her first frame, her x in each): the empty street for 3 s, a walker crossing it ``step`` px a frame
    (her pose and place turn her embedding ``turn`` a frame), ``size(j)`` her box in her j-th frame (None: the mask
    has nothing of her), and the empty street for 3 s."""
    rng = np.random.default_rng(seed)
    bg = street(seed)
    steps = [(shaken(bg, rng), E[0])] * 30
    start = len(steps)
    xs = list(range(-20, W, step))
    for j, x in enumerate(xs):
        vec = unit(np.cos(turn * j) * E[2] + np.sin(turn * j) * E[3])
        box = size(j)
        steps.append((shaken(bg if box is None else with_box(bg, x, 180, *box, (30, 200, 220)), rng), vec))
    steps += [(shaken(bg, rng), E[0])] * 30
    return steps, start, xs


def test_a_walker_the_mask_loses_for_a_frame_in_the_middle_of_the_view_is_kept_once():
    # An IR camera at night halves the contrast: a walker the colour of the street shows faintly, and in one frame
    # in the middle of the view the change mask has nothing of her. That frame ended her event (a frame that shows
    # nothing of it: events.gone) and its memory (events.left); her next frames, novel against the keep as she walks
    # on, opened another and she was kept twice (benchmarks/QUALITY.md, finding 34: demo seed 14 at night). A thing
    # leaves the view at its border; one last seen in the middle is still there.
    middle = len(range(-20, W, 30)) // 2
    # her embedding 0.15 from a frame 7 frames before
    steps, start, xs = walking_by(35, 30, 0.09, lambda j: None if j == middle else (40, 110))
    lost = start + middle
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + len(xs), (kept, lost)


def test_a_car_that_stops_behind_the_kept_one_and_follows_it_out_is_kept_too():
    # A queue at a light: a car drives in and stops (kept, its memory follows it: events.follow), the next stops
    # 40 px behind it, like it to the embedding (0.12 from its keep: new by its pixels only, the rest of the first
    # car's visit while that car is in view), and both drive out at the right border. The memory took the second
    # car as soon as it came within FOLLOW_REACH of the first, went with it when the first left the view, and the
    # second was never kept (busy highway 1: benchmarks/QUALITY.md, finding 35). A thing still where it was takes
    # no blob that only comes near it.
    rng = np.random.default_rng(41)
    bg = street(41)
    first, second = (150, 60, 30), (40, 160, 60)
    steps = [(shaken(bg, rng), E[0])] * 30
    for j, x in enumerate(range(-160, 300, 40)):
        steps.append((shaken(with_box(bg, x, 200, 160, 90, first), rng), at_distance(E[2], E[3 + j % 3], 0.03)))
    stopped = at_distance(E[2], E[6], 0.02)
    queue = with_box(bg, 300, 200, 160, 90, first)
    steps += [(shaken(queue, rng), stopped)] * 30
    behind = len(steps)
    like = lambda j: at_distance(stopped, E[8 + j % 3], 0.12)
    for j, x in enumerate(range(-160, 100, 40)):
        steps.append((shaken(with_box(queue, x, 200, 160, 90, second), rng), like(j)))
    steps += [(shaken(with_box(queue, 100, 200, 160, 90, second), rng), like(j)) for j in range(30)]
    whole = {}  # frame -> x of the second car, whole in view
    for j, dx in enumerate(range(40, W, 40)):  # green: both drive out at the right border
        if 100 + dx + 160 <= W:
            whole[len(steps)] = 100 + dx
        img = with_box(with_box(bg, 300 + dx, 200, 160, 90, first), 100 + dx, 200, 160, 90, second)
        steps.append((shaken(img, rng), like(j)))
    steps += [(shaken(bg, rng), E[0])] * 30
    kept = kept_frames(steps)
    assert kept[0] == 0 and 30 <= kept[1] < behind, kept
    assert len(kept) == 3 and kept[2] in whole, (kept, whole)


def test_a_car_that_dwindles_to_a_speck_in_the_distance_holds_no_memory_of_its_visit():
    # A car drives away and its event is kept; it dwindles to a speck far away (less than KNOWN_PIXELS of the change
    # mask) that crawls on in the traffic there, so the scene is never still. Another car like it (0.12 from its
    # keep: new by its pixels only) then drives through. The memory followed the speck, a thing still in view, and
    # took the next car for the rest of the first one's visit (busy highway 1, benchmarks/QUALITY.md, finding 35).
    # A speck is no thing to follow.
    rng, bg, first, steps = after_a_car_drove_away(42)
    for j in range(8):  # on into the distance
        w, h = 120 - 12 * j, 60 - 6 * j
        steps.append((shaken(with_box(bg, 300 - w // 2, 240 - h, w, h, (25, 25, 25)), rng), first))
    speck = lambda j: with_box(bg, 270 + 20 * (j % 4), 216, 24, 12, (25, 25, 25))
    steps += [(shaken(speck(j), rng), first) for j in range(20)]
    start = len(steps)
    for j, x in enumerate(range(-200, W, 40)):
        steps.append((shaken(with_box(speck(j), x, 180, 200, 70, (60, 170, 60)), rng),
                      at_distance(first, E[10 + j % 3], 0.12)))
    steps += [(shaken(speck(j), rng), first) for j in range(30)]
    kept = kept_frames(steps)
    assert kept[0] == 0 and 30 <= kept[1] < 42, kept
    assert len(kept) == 3 and start + 5 <= kept[2] < start + 18, (kept, start)


def test_a_walker_the_mask_breaks_into_specks_for_a_few_steps_is_followed_and_kept_once():
    # At night the mask showed a faint walker as a few specks for three frames while she walked on, after her
    # event had been kept (its hold ran out while she was in view: demo seed 104, benchmarks/QUALITY.md, finding
    # 35). A speck does not show her, but it is where she is: followed no further than where she was last shown
    # whole, she had walked out of reach by the time the mask showed her again, the memory of her visit ended, and
    # her next frames were kept a second time.
    # her embedding 0.14 from a frame 9 frames before; for three frames her head alone shows
    steps, start, xs = walking_by(36, 20, 0.06, lambda j: (14, 14) if 12 <= j < 15 else (40, 110))
    faint = range(start + 12, start + 15)
    kept = kept_frames(steps, FilterConfig(max_hold_s=2.0))
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < faint[0], (kept, list(faint))


def test_a_walker_the_mask_loses_for_two_steps_is_found_farther_on_and_kept_once():
    # At night the mask lost a faint walker for a frame or two while she walked on, inside her event (its hold ran out
    # while she was in view: demo draws 233 and 243 at night, benchmarks/QUALITY.md, finding 49). Looked for no
    # farther than FOLLOW_REACH from where she was last shown, she was out of reach when the mask showed her again,
    # the memory of her visit ended, and her next frames were kept a second time. A thing the mask did not show for
    # a frame may have moved on a step farther.
    steps, start, xs = walking_by(37, 30, 0.09, lambda j: None if 9 <= j < 11 else (40, 110))
    unseen = range(start + 9, start + 11)
    kept = kept_frames(steps, FilterConfig(max_hold_s=1.5))
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + len(xs), (kept, list(unseen))


def test_a_thing_lost_for_a_frame_is_looked_for_a_step_farther_and_no_farther_however_long_it_was_lost():
    # A thing the mask did not show for a frame may have moved on a step farther (finding 49); one lost for longer is
    # as likely gone, and a blob far from where it was, the next thing. On busy highway 1 a car the mask had lost for
    # five frames was looked for five steps off, and the memory of its visit took a truck coming in there for it: the
    # truck was never kept.
    w, h = MASK_SIZE

    def blob_at(x: int) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        m[15:20, x:x + 4] = 1
        return m

    where = blob_at(20)
    one_step_on = Change(whole=20, things=1, mask=blob_at(24 + FOLLOW_REACH + 2))  # 5 mask pixels past its edge
    found, lost = track(where, 1, one_step_on, 10)
    assert lost == 0 and found[17, 24 + FOLLOW_REACH + 2], "a thing lost for a frame, a step and a bit farther on"
    found, lost = track(where, 0, one_step_on, 10)
    assert lost == 1 and (found == where).all(), "a thing shown in the frame before is looked for one step off"
    far_on = Change(whole=20, things=1, mask=blob_at(24 + 3 * FOLLOW_REACH + 1))
    found, lost = track(where, 5, far_on, 10)
    assert lost == 6 and (found == where).all(), "a thing lost for five frames is not looked for five steps off"


def test_a_walker_the_per_frame_test_misses_once_after_her_event_is_still_the_same_visit():
    # At 30 fps a faint walker's event closed while she was in view, and the memory of her visit followed her; in
    # one frame the per-frame test (at the day's level) saw the street as it was before her event, and that ended
    # the memory: her next frames, novel against her keep as she walked on, were kept a second time (demo draw 348
    # at 30 fps, finding 53). It must look so for SETTLE_S.
    steps, start, xs = walking_by(38, 30, 0.09, lambda j: None if j == 14 else (40, 110))
    kept = kept_frames(steps, FilterConfig(max_hold_s=1.0))
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 14, kept


def kept_of_a_walk_at_30_fps(seed: int, step: int, gap: range, vector: Callable[[int], np.ndarray],
                             specks: bool = True) -> tuple[int, list[int]]:
    """A walker (a 40x110 box) crossing the street of ``seed`` left to right at 30 fps, ``step`` px a frame, her frame
    ``j`` embedded as ``vector(j)``, between two seconds of the empty street; in the frames of ``gap`` the mask shows
    nothing of her, or with ``specks`` three specks 20 px apart (head, coat, legs: each a mask pixel or two, fewer
    than the pixels that show her). Her first frame's number, and the frames kept (max_hold_s 1 s)."""
    rng = np.random.default_rng(seed)
    bg = street(seed)
    steps = [(shaken(bg, rng), E[0])] * 60
    for j, x in enumerate(range(-20, W, step)):
        img = bg
        if j not in gap:
            img = with_box(bg, x, 180, 40, 110, (30, 200, 220))
        elif specks:
            for y in (180, 230, 270):
                img = with_box(img, x + 10, y, 14, 14, (30, 200, 220))
        steps.append((shaken(img, rng), vector(j)))
    steps += [(shaken(bg, rng), E[0])] * 60
    return 60, kept_frames(steps, FilterConfig(max_hold_s=1.0), fps=30.0)


@pytest.mark.parametrize("lost", ["nothing for three frames", "specks for seven frames"])
def test_a_walker_the_mask_loses_for_a_quarter_second_at_30_fps_is_still_the_same_visit(lost: str):
    # At 30 fps an IR camera's faint walker showed the street as it was before her event for two frames, or
    # specks of her (head, coat, legs apart, each smaller than the fewest pixels that show her) for seven, in the
    # middle of the view: each ended the memory of her visit after her event had closed (the scene as before for a
    # frame; the mask without her for settle_frames frames, a sixth of a second), and she was kept again as she
    # walked on (demo draws 342 and 340 at night at 30 fps, finding 53). Either must last SETTLE_S too.
    gap = range(45, 48) if lost.startswith("nothing") else range(45, 52)

    def turning(j: int) -> np.ndarray:
        return unit(np.cos(0.03 * j) * E[2] + np.sin(0.03 * j) * E[3])

    start, kept = kept_of_a_walk_at_30_fps(39, 6, gap, turning, specks=lost.startswith("specks"))
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 45, kept


def test_a_walker_the_mask_loses_in_mid_view_for_over_half_a_second_and_shows_again_where_she_was_is_one_visit():
    # At night at 30 fps the mask lost a faint walker in the middle of the view for longer than SETTLE_S (her coat
    # faded before a darker wall), the memory of her visit ended, and she was kept a second time when it showed her
    # again a few steps on (demo draws 340 and 342, finding 55). A thing does not leave from the middle of the view:
    # for LOST_S it is looked for where it was lost. (Frames that show the street as it was for SETTLE_S still end
    # a visit: test_the_next_visitor_is_a_new_event_once_the_street_looked_as_before.)
    gap = range(120, 138)  # 0.6 s, at x = 220-254: specks of her, each smaller than the fewest pixels that show her

    def faint_from_the_wall(j: int) -> np.ndarray:  # 0.1 from her kept frame: novel by her pixels alone
        return E[2] if j < gap.start else at_distance(E[2], E[3], 0.1)

    start, kept = kept_of_a_walk_at_30_fps(41, 2, gap, faint_from_the_wall)  # 60 px a second
    assert kept[0] == 0 and len(kept) == 2 and start <= kept[1] < start + 120, kept


def test_a_dog_that_runs_by_while_a_walker_is_lost_in_mid_view_is_a_visit_of_its_own():
    # While a walker lost in the middle of the view is looked for where she was lost (LOST_S), only a frame that
    # shows her there again continues her visit: a dog that runs through elsewhere in that second, novel by its
    # pixels alone, is its own visit. A memory that simply outlasted her by a second took the dog for the rest of
    # her visit (the variant of finding 53 that lost a visitor on draw 341).
    rng = np.random.default_rng(43)
    bg = street(43)
    steps = [(shaken(bg, rng), E[0])] * 60
    for x in range(-20, 402, 2):  # she walks in from the left; from x = 400 on the mask shows specks of her alone
        steps.append((shaken(with_box(bg, x, 180, 40, 110, (30, 200, 220)), rng), E[2]))
    lost = len(steps)
    dog_from = lost + 11  # 0.37 s after she was lost: past SETTLE_S
    for n in range(lost, lost + 60):
        img = bg
        for y in (180, 230, 270):  # specks of her walking on, each smaller than the fewest pixels that show her
            img = with_box(img, 410 + 2 * (n - lost), y, 14, 14, (30, 200, 220))
        vec = E[2]
        if dog_from <= n < dog_from + 16:  # the dog runs down through the view at x = 120, 25 px a frame
            img = with_box(img, 120, -40 + 25 * (n - dog_from), 50, 40, (40, 40, 200))
            vec = at_distance(E[2], E[5], 0.1)  # novel by its pixels alone
        steps.append((shaken(img, rng), vec))
    steps += [(shaken(bg, rng), E[0])] * 60
    kept = kept_frames(steps, FilterConfig(max_hold_s=1.0), fps=30.0)
    assert kept[0] == 0 and 60 <= kept[1] < lost, kept
    assert len(kept) == 3 and dog_from <= kept[2] < dog_from + 16, kept


def test_a_hand_that_takes_a_thing_away_into_a_state_seen_before_is_no_picture():
    # The bottle clip at its own 30 fps (benchmarks/QUALITY.md, finding 58): a hand reaches in from the top border
    # and carries a bottle away, and the table is a state kept before, novel to the embedding under another
    # exposure. What the hand's frames show beyond that state is cut by the border (the arm, the bottle in its
    # hand); the hole the bottle leaves where it stood is the state itself. No frame of it is a picture to label.
    rng = np.random.default_rng(58)
    table = street(58)
    box = (200, 190, 240, 100)
    with_thing = with_box(table, *box, (40, 40, 160))

    def hand(over: np.ndarray, reach: int, lifted: int = 0) -> np.ndarray:
        img = over
        if lifted:
            img = with_box(table, box[0], box[1] - lifted, box[2], box[3], (40, 40, 160))
        return with_box(img, 290, 0, 50, reach - lifted, (90, 120, 170))  # the arm, from the top border down

    steps = [(shaken(table, rng), E[0])] * 20 + [(shaken(with_thing, rng), E[1])] * 20
    arm = [at_distance(E[1], E[3], 0.3 - 0.01 * k) for k in range(12)]
    steps += [(shaken(hand(with_thing, 60 + 40 * k), rng), arm[k]) for k in range(4)]  # reaching down to it
    steps += [(shaken(hand(with_thing, 190, 40 * k), rng), arm[4 + k]) for k in range(1, 6)]  # carrying it up
    steps += [(shaken(table, rng), at_distance(E[0], E[2], 0.2))] * 12  # the table kept first, another exposure
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 20 <= kept[1] < 40, kept


def test_a_frame_that_shows_nothing_whole_beyond_a_state_seen_before_is_seen_unless_its_cells_are_new():
    # A thing creeps a few pixels a frame and stops; the scene it stopped in is a state seen before to the pixels
    # (a faint dog at night, the street under it known: demo draw 340 at 30 fps). Each earlier frame shows nothing
    # whole beyond that state. Novel by the whole image alone, such frames are seen too (a hand's arm at the border
    # is all they add: finding 58); novel by their region cells, they are new where their pixels changed, as before.
    street_ = Street(58)
    creeping = [[(300 + 2 * k, 220, 80, 50)] for k in range(6)]
    cand = street_.event(creeping + [[(312, 220, 80, 50)]] * 6)
    for h in cand.frames[-5:]:
        h.still = True
    still = {id(h) for h in cand.frames[-6:]}

    def pick(by_region: bool):
        def exact(h: Held, enough: float) -> Exact:
            if id(h) in still:
                return Exact(2.0, 0.3, None, None)
            return Exact(2.0, 0.05, 31, 18.0) if by_region else Exact(2.0, 0.3, None, None)

        return choose(cand, True, 0.5, exact, lambda h, region: id(h) in still)

    assert pick(by_region=False) is None
    got = pick(by_region=True)
    assert got is not None and got.frame.token < 6 and got.how == "best view"


def test_a_walker_the_mask_shows_only_in_specks_where_she_was_lost_is_still_her_visit():
    # At night at 30 fps the mask broke a faint walker into a head, a middle and feet, each smaller than the fewest
    # pixels that show her and farther apart than FOLLOW_REACH; the memory followed her middle, lost her for SETTLE_S
    # and looked for her where she was lost, and a frame that showed her there in specks opened an event of its own
    # and kept her again (demo draw 342 at night: benchmarks/QUALITY.md, findings 57 and 58). While she is looked
    # for, a frame that shows specks where she was lost and nothing else of KNOWN_PIXELS is the rest of her visit; the
    # dog test above shows that something else elsewhere is not.
    rng = np.random.default_rng(57)
    bg = street(57)
    steps = [(shaken(bg, rng), E[0])] * 60
    for x in range(-60, 402, 2):  # she walks in from the left, 60 x 150 px
        steps.append((shaken(with_box(bg, x, 160, 60, 150, (30, 200, 220)), rng), E[2]))
    lost = len(steps)
    for n in range(lost, lost + 24):  # the mask shows her middle alone for 0.4 s, then her head, middle and feet
        x = 420 + 2 * (n - lost)
        img = with_box(bg, x, 220, 30, 30, (30, 200, 220))
        if n >= lost + 12:
            img = with_box(with_box(img, x, 160, 30, 30, (30, 200, 220)), x, 280, 30, 30, (30, 200, 220))
        steps.append((shaken(img, rng), at_distance(E[2], E[5], 0.1)))  # novel by her pixels alone
    steps += [(shaken(bg, rng), E[0])] * 60
    kept = kept_frames(steps, FilterConfig(max_hold_s=1.0), fps=30.0)
    assert kept[0] == 0 and len(kept) == 2 and 60 <= kept[1] < lost, kept


def test_a_hand_that_carries_a_thing_away_clear_of_its_arm_into_a_state_seen_before_is_no_picture():
    # The bottle clip at its own 30 fps (benchmarks/QUALITY.md, finding 61): as the hand carried a bottle away the
    # mask showed the bottle in its hand apart from the arm, a thing clear of the border beside the arm the border
    # cuts, and the frame was kept as the event's best view. What a frame adds beyond a state seen before, most of it
    # cut by the border, is no picture to label; the table it leaves is that state.
    rng = np.random.default_rng(61)
    table = street(61)
    box = (200, 190, 240, 100)
    with_thing = with_box(table, *box, (40, 40, 160))

    def carried(lifted: int) -> np.ndarray:
        img = with_box(table, 280, 200 - lifted, 70, 60, (40, 40, 160))  # the bottle in the hand, lifted
        return with_box(img, 275, 0, 80, 170 - lifted, (90, 120, 170))  # the arm from the top border, apart

    steps = [(shaken(table, rng), E[0])] * 20 + [(shaken(with_thing, rng), E[1])] * 20
    arm = [at_distance(E[1], E[3], 0.3 - 0.01 * k) for k in range(12)]
    steps += [(shaken(with_box(with_thing, 290, 0, 50, 60 + 40 * k, (90, 120, 170)), rng), arm[k]) for k in range(4)]
    steps += [(shaken(carried(30 * k), rng), arm[4 + k]) for k in range(1, 4)]  # carried up, the arm cut above it
    steps += [(shaken(table, rng), at_distance(E[0], E[2], 0.2))] * 12  # the table kept first, another exposure
    kept = kept_frames(steps)
    assert kept[0] == 0 and len(kept) == 2 and 20 <= kept[1] < 40, kept


def test_a_hand_that_rests_on_a_thing_after_something_small_showed_whole_is_no_state_until_it_has_gone():
    # As above, but something small showed whole and clear of the border before the arm came in from the border (the
    # bottle clip at its own 30 fps: a bottle carried in below the hand, put down, and the hand resting on it kept as
    # a state, 3971 of seed 5; benchmarks/QUALITY.md, finding 62). A thing whole in an earlier frame at less than half
    # the size of the still scene cut by the border is no car on its way out: the arm is on its way in, and the table
    # is the state.
    kept, state_from = arm_resting_on_a_box(62, small_first=True)
    assert kept[0] == 0 and len(kept) == 2 and kept[1] >= state_from, (kept, state_from)


def test_a_scene_the_mask_cannot_tell_from_another_at_low_contrast_is_not_known_by_it():
    # At night in the rain (a quarter of the contrast, noise, drops drawn anew in every frame) the change mask finds
    # almost nothing between a street and shelves; their exposure-normalised thumbnails correlate at 0.27. Known
    # took the shelves for the street seen before: a PTZ camera at night in the rain never kept the road it rested
    # on (benchmarks/QUALITY.md, finding 82). The street again, and a view with nothing to see, are still known.
    from scenes import shelves
    rng = np.random.default_rng(0)

    def dim(img: np.ndarray, contrast: float = 0.25) -> np.ndarray:
        out = img.astype(np.float32) * contrast + 128 * (1 - contrast) + rng.normal(0, 8, img.shape)
        for _ in range(250):
            x, y, n = rng.integers(0, W), rng.integers(0, H - 30), rng.integers(12, 28)
            out[y:y + n, x] += rng.uniform(25, 60)
        grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        return view_thumbnail(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))

    memory = Known()
    memory.kept(dim(street(1)))
    other = dim(shelves(2))
    assert change(other, memory.last_kept()).pixels <= KNOWN_PIXELS  # the mask is blind to it
    assert not memory.knows(10.0, other)
    assert memory.knows(10.0, dim(street(1)))

    def blank() -> np.ndarray:
        return view_thumbnail(np.clip(rng.normal(20, 6, (H, W, 3)), 0, 255).astype(np.uint8))
    dark = Known()
    dark.kept(blank())
    assert dark.knows(10.0, blank())  # its signature is noise: the mask alone tells it
