"""Events (``filter.mode: event``): which frame of a change is kept.

A novel frame opens a *candidate* for its source; every following frame of that source joins it until
the scene is still again (``settle_frames`` frames in a row that each moved less than the source's noise
floor), the event fades (``settle_frames`` frames in a row that show at most FADED_VIEW of its best view:
see :func:`fading`; not while an event that waited for a thing on its way in is still in a new state: that
state settles) or ``max_hold_s`` passes. Then one frame is kept:

- the scene **settled into a new state** (its thumbnail differs from the scene before the event:
  something was put down, someone sat down): the settled frame, when it is farther than
  ``settle_ratio`` x threshold from every kept frame. A still scene that shows the change mostly cut by the
  border, after a frame of the event showed a thing whole and about as large (a car stopped half out of
  view on its way out), is no such state: the event goes on (:func:`half_in_view`), unless it is a scene
  seen before the event began (the street that a car parked at the border drove off: the hole it left is
  cut by the border too). Nor is one that shows a thing cut by the border that came in from it and was never
  whole, or whole at less than half its size (a car stopped half in view on its way in; a hand resting on a bottle
  it carried in: :func:`on_its_way_in`), until ``max_hold_s``. A settled
  scene that shows a part of the change cut by the border gives way to a view of the thing whole as it came in
  (:func:`settled_pick`): the frames of its still run are one scene (:func:`scene_of`), and a cut the mask sees in
  one of them is the scene's;
- the scene **went back to how it was** (a car drove through, a visitor left), the hold ran out (a busy
  road), or the new state is too close to one already kept: the event's **best view** among its frames
  farther than ``settle_ratio`` x threshold from every kept frame, i.e. the frame whose change against
  the scene before the event is largest with the changed thing clear of the image border (see
  ``view.py``); the most novel frame breaks ties and decides when there are no thumbnails. A frame whose
  pixels show less than KNOWN_PIXELS of the change must pass the whole threshold (:func:`relaxed`). A view clear
  of the border that shows at least as much as a cut one that passes replaces it, even seen before
  (:func:`seen_whole_view`). When the scene settled into one seen before, a frame that shows nothing whole beyond
  it, or shows it mostly cut by the border (:func:`adds_whole`), is seen too: what it adds is the border's (a hand
  that carried a bottle away into a table state kept before).

An event needs a frame past the threshold, and more than one frame's noise: a single novel frame at most
RENOVEL x the threshold by the whole image is no event, unless its pixels show a thing that came in from the
border and a later frame shows it whole (:func:`came_in`). A frame whose pixels show a whole thing against the
scene before (at least KNOWN_PIXELS, clear of the border) need only pass ``settle_ratio`` x the threshold
to open one (``Held.thing``) or, joining an open one, to count as its novel frame: a small dog or a faint
walker moves the embedding less than the threshold, and the demo's fresh draws missed a quarter of their
visitors (benchmarks/QUALITY.md, findings 20 and 21). After a large change cut by the border past
``settle_ratio`` (CUT_PIXELS: a car coming in), a thing whole in view opens one at any novelty (``Held.cut``: a
car that the embedding takes for one kept before once it is whole); an event with no other novel frame keeps
only a whole view of its thing, or nothing (findings 28 and 32).

Keeping the settled frame of a transit kept the empty road after the car had left; keeping the most
novel frame kept slivers at the edge and blurred entries (benchmarks/QUALITY.md, findings 17 and 19).

After a keep, frames like the event's last ones continue it (:class:`Recent`) until the scene is still or its thing,
followed from frame to frame in the change mask (:func:`track`: itself, not the next thing that comes near it, and
shown by a quarter of its kept size or KNOWN_PIXELS, not by a speck), has left; for an event its pixels opened, frames
like its thing's coming in too (half a car at one border is half a car at the other to the embedding). A thing the
mask lost in the middle of the view is looked for where it was lost for a second (filter.LOST_S): specks there and
nothing of its fewest pixels elsewhere are it (:func:`in_specks`). A frame that
shows nothing of the event's change, after one that showed it where it could leave the view, ends it
(:func:`gone`): its thing left, and what comes next is another visit. A still scene that still shows the thing (a
car stopped in view: :func:`stays`) does not end that memory: the car driving off again is the rest of its visit,
which was kept a second time, cut by the border as it left (benchmarks/QUALITY.md, finding 29).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import cv2
import numpy as np

from . import view as views
from .ground import Spot
from .known import KNOWN_PIXELS, SEEN_AFTER_S

# Frames of the last decided event remembered per source (see Recent).
RECENT_FRAMES = 32
# A single frame of the whole image at most this many times the threshold is no event (an exposure step);
# without thumbnails, an event's frames fade at the threshold and only one past this renews it (distances
# of a receding thing wander around the threshold).
RENOVEL = 1.2
# Frames of an event tried for its keep, best view first (each try: an exact search and the known test); as many
# again of those that passed the threshold may follow (ranked_view).
TRIES = 8
SCENE_TRIES = 8  # frames of a settled still run asked whether its scene was seen before (each: up to 16 change tests)
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # steps of a spread that never falls into a period (see spread)
# With thumbnails, an event fades while what changed shows at most this share of its best view (a car
# driving away; nothing, once it has left).
FADED_VIEW = 0.5
# A still scene cut by the border after a whole thing at least this share of its pixels is that thing half out of
# view (see half_in_view).
HALF_VIEW = 0.5
# A still scene that differs from the scene before the last event by at least this many mask pixels (whole or cut
# by the border: four times a thing worth labelling, a car's size) still shows that event's thing (see Recent).
STAYING_PIXELS = 4 * KNOWN_PIXELS
# Mask pixels of a change cut by the border, past settle_ratio, after which a thing whole in view opens an event
# at any novelty (a car coming in, novel only while the border cuts it); such an event keeps a whole view or
# nothing (see choose).
CUT_PIXELS = 4 * KNOWN_PIXELS
# Mask pixels a thing may move between two frames and still be the same thing (see follow): a running dog at 5 fps.
FOLLOW_REACH = 3
# Frames a thing the mask did not show may have moved on, FOLLOW_REACH each, where it is looked for (see follow): a
# faint walker lost for a frame is a step farther on; one lost for longer is as likely gone, and a blob that far off
# as likely the next thing (busy highway 1: a truck taken for a car the mask had lost five frames before).
LOST_STEPS = 1
_REACH_KERNEL = np.ones((2 * FOLLOW_REACH + 1, 2 * FOLLOW_REACH + 1), np.uint8)
# Seconds over which the camera's own move is looked for (see camera_moved): frame to frame, a PTZ camera panning at
# 30 fps moves its view less than shake does, and a car on a bare road 4 px at 160 (the whole view's shift then is
# the car's); over 0.3 s a pan moves it by tens of pixels and a car leaves the road's marks out of place.
TURN_S = 0.3
MOVED_FRAMES = 2  # frames in a row that must say so (see camera_moved)


@dataclass
class Held:
    """One frame of an open candidate, with its novelty when it was seen."""

    token: Any
    ts: float
    vector: np.ndarray             # unit
    regions: np.ndarray | None     # (R, region_dim) unit cells when regional
    view: np.ndarray | None        # luma + colour thumbnail (view.view_thumbnail), for the best view
    distance: float | None         # to the nearest kept frame (whole image)
    region: int | None = None      # the cell that changed most
    region_score: float | None = None  # its change, in units of the source's cell noise
    score: float = 0.0             # novelty relative to the thresholds: > 1 is novel
    by_region: bool = False        # the score is the region cells' (the whole image's is lower)
    thing: bool = False            # it opened its event by a whole thing's pixels, past settle_ratio only
    cut: bool = False              # ... at any novelty, after a large change cut by the border (CUT_PIXELS)
    still: bool = False            # no blob of pixels moved since the frame that began its still run (see still_run)
    spot: Spot | None = None       # where it lies on a moving camera's ground (ground.Ground.step)


@dataclass
class Candidate:
    frames: list[Held]
    version: tuple[int, int]       # (filter epoch, scope index next_key) when the distances were taken
    background: np.ndarray | None  # thumbnail of the scene just before the event
    still: int = 0                 # consecutive still frames at the end
    quiet: int = 0                 # consecutive frames at the end that are fading (see fading())
    peak: float = 0.0              # the best view score so far
    views: dict[int, views.Change] = field(default_factory=dict)  # id(held) -> its change, computed once
    waited: bool = False           # a still scene of it was a thing on its way in (see on_its_way_in)
    came_in: list[np.ndarray] = field(default_factory=list)  # embeddings of its thing coming in cut by the border
                                                            # before it opened (its memory holds them: Recent)
    grew: bool = False             # a change cut by the border came in, past settle_ratio, just before it opened
                                   # (the source's coming_in frames: see on_its_way_in)
    moved: bool = False            # the camera itself moved during it (see camera_moved)
    asked_moved: int = 0           # its frames asked so far whether the camera moved
    turned_from: int = -1          # the latest frame TURN_S before the one asked last (-1: the scene before)
    moving: int = 0                # frames asked in a row, the latest last, that said the camera moved


@dataclass
class Recent:
    """The last frames of the event a source kept last (at most RECENT_FRAMES). A frame that is novel
    against the kept set but like one of these (whole image) continues that event instead of opening a
    new one, until the scene is still or no such frame came for max_hold_s. None is remembered of an event
    whose thing left the view before it closed (:func:`left`). A still scene that still shows the thing (a car
    stopped in view: :func:`stays`) does not end it. The frames since that showed its thing alone (``trail``, at
    most RECENT_FRAMES) count too for the next one that does: a car driving on, step by step."""

    vectors: np.ndarray            # (M, dim) unit
    until_ts: float
    background: np.ndarray | None = None  # thumbnail of the scene before that event: seen again, it is over
    began: float = -math.inf       # when that event began
    where: np.ndarray | None = None  # change mask of its thing in the latest frame that had it (see track)
    lost: int = 0                  # frames since one showed it
    least: int = 1                 # the fewest pixels that show its thing (see least_of)
    shown_ts: float = -math.inf    # the latest frame that showed it (see followed)
    blank_from: float | None = None  # the first of the latest frames in a row that showed nothing against background
    size: int = 0                  # changed pixels of its kept frame (a thing driving away shows fewer)
    trail: list[np.ndarray] = field(default_factory=list)  # latest frames since that showed it alone (vectors)
    as_before_from: float | None = None  # the first of the latest frames in a row that looked as before it


class Exact(NamedTuple):
    """A held frame against the kept set now, by an exact scan."""

    score: float                 # relative to the thresholds: > 1 is novel
    distance: float | None       # whole-image cosine distance to the nearest kept frame
    region: int | None
    region_score: float | None


@dataclass(frozen=True)
class Pick:
    frame: Held
    exact: Exact
    ratio: float     # the share of the threshold the frame had to pass (settle_ratio for a settled frame)
    how: str         # "settled" | "best view" | "ground" (a moving camera: ground.py)


def latest_with(vectors: list[np.ndarray], v: np.ndarray) -> list[np.ndarray]:
    """``vectors`` and then ``v``: the latest RECENT_FRAMES of them, oldest first."""
    return vectors[1 - RECENT_FRAMES:] + [v]


def returned(cand: Candidate) -> bool | None:
    """Whether the scene at the end of the event looks as it did before it (None: no thumbnails)."""
    last = cand.frames[-1]
    if cand.background is None or last.view is None:
        return None
    return views.unchanged(last.view, cand.background)


def view_of(cand: Candidate, h: Held) -> views.Change:
    """What a held frame shows of the change against the scene before the event (computed once)."""
    if cand.background is None or h.view is None:
        return views.NO_CHANGE
    key = id(h)
    if key not in cand.views:
        cand.views[key] = views.change(h.view, cand.background)
    return cand.views[key]


def view_score(cand: Candidate, h: Held) -> float:
    return view_of(cand, h).view


def fading(cand: Candidate) -> int:
    """Account the event's newest frame; return how many frames in a row have been fading. With thumbnails
    the view decides, however novel the frames still are: a car driving away stays novel to the embedding
    while it shrinks into the distance, and the next car came in before that car's event faded, so one
    event held both and kept one of them (the road at 12 fps, benchmarks/QUALITY.md, finding 21). Without
    thumbnails, novelty alone (regions included)."""
    h = cand.frames[-1]
    if cand.background is None or h.view is None:
        if h.score <= 1.0:
            cand.quiet += 1
        elif h.score > RENOVEL:
            cand.quiet = 0
        return cand.quiet
    shown = view_score(cand, h)
    cand.peak = max(cand.peak, shown)
    cand.quiet = cand.quiet + 1 if shown <= FADED_VIEW * cand.peak else 0
    return cand.quiet


def gone(cand: Candidate) -> bool:
    """Whether the event's newest frame shows nothing of it (no changed pixel against the scene before it)
    after the event showed a thing worth labelling, and the last frame that showed it could have left the view
    (:func:`could_leave`): the thing left, and what comes next is another visit (a dog ran out of view one frame
    before a car came in, and the car's settled frame was the event's keep: demo seed 161). A thing does not
    leave from the middle of the view: a faint walker that the mask lost for a frame there is still in view (an IR
    camera at night: benchmarks/QUALITY.md, finding 34)."""
    h = cand.frames[-1]
    if cand.background is None or h.view is None:
        return False
    return cand.peak >= KNOWN_PIXELS and view_of(cand, h).pixels == 0 and exited(cand, len(cand.frames) - 1)


def could_leave(m: np.ndarray | None) -> bool:
    """Whether a change mask lies within FOLLOW_REACH of the image border: a thing there may be out of view a
    frame later (one elsewhere may not: see follow)."""
    if m is None:
        return False
    r = FOLLOW_REACH
    return bool(m[:r].any() or m[-r:].any() or m[:, :r].any() or m[:, -r:].any())


def exited(cand: Candidate, k: int) -> bool:
    """Whether the last frame before the event's frame ``k`` that showed a change of at least KNOWN_PIXELS (a thing,
    not the specks of noise a frame after it left: demo seed 152) could have left the view."""
    for h in reversed(cand.frames[:k]):
        shown = view_of(cand, h)
        if shown.pixels >= KNOWN_PIXELS:
            return could_leave(shown.mask)
    return False


def mostly_cut(shown: views.Change) -> bool:
    """Whether a change is mostly cut by the image border: some of it is, and no more of it is clear of the
    border than cut."""
    return bool(shown.edge) and shown.whole <= shown.edge


def half_in_view(cand: Candidate, settle_ratio: float) -> bool:
    """Whether the event's newest frame shows its change mostly cut by the image border (no more of it clear
    of the border than cut), while an earlier frame showed a thing whole and at least as large (a car that
    drove through and stopped on its way out): a still scene then is no new state to keep, and the event goes
    on to its best view. Mostly, not only: the mask splits a part of a stopped car off where a stripe of it is
    the road's colour, and that part is clear of the border (demo seed 11's grey car, 177 mask pixels whole
    and 193 cut: benchmarks/QUALITY.md, finding 27).

    While the newest frame is still novel past settle_ratio, a whole thing HALF_VIEW as large suffices: the mask
    sees less of a car whole than cut where its body is the colour of what it passes (a purple car, 379 mask
    pixels whole and 413 stopped half out: benchmarks/QUALITY.md, finding 26). A still scene no longer novel is
    no car standing there: a car that stood at the border when the event began and drove away leaves the scene
    as it was seen before, which the border cuts too."""
    newest = cand.frames[-1]
    shown = view_of(cand, newest)
    if not mostly_cut(shown):
        return False
    need = (HALF_VIEW if newest.score > settle_ratio else 1.0) * shown.pixels
    return any(shows_thing(v) and v.whole >= need for v in (view_of(cand, h) for h in cand.frames[:-1]))


def on_its_way_in(cand: Candidate, settle_ratio: float) -> bool:
    """Whether the event's newest frame shows a thing that came in from the border and stopped half in view: its
    change is mostly cut by the border (no more of it clear of the border than cut) and still novel past
    settle_ratio, the event's first frame showed less of it or a change cut by the border came in just before the
    event opened (``Candidate.grew``: it grew in from the border; a car that came in too little to be novel and
    opened the event where it stopped shows as much in the first frame as in the newest, and a pixel count of the
    two was a coin toss: finding 45), and no frame of the event showed a thing whole yet, at least HALF_VIEW as
    large as the newest frame's change, but mostly cut by the border too (a car seen whole before it stopped half out
    of view is on its way out; a bottle carried in below a hand, whole before the arm came into view, is a fraction
    of the arm and the hand resting on it once it was put down, and that still scene was kept as a state: finding
    62). A still scene then is no state to settle on before ``max_hold_s``: a car that stops on its way in drives
    on, and its whole view is the best one (17 cars that stop were kept without their whole view on the demo draws
    100-139, most as they stood half in view on their way in: benchmarks/QUALITY.md, finding 30); a hand that moved
    a bottle, the bottle's old place whole beside the arm cut by the border, and rests on it leaves, and the table
    is the state (bottle irregular holds 3 kept the resting hand: finding 31). A new scene shows all of its change
    in its first frame (the next signer's clip) and settles as before."""
    newest = cand.frames[-1]
    shown = view_of(cand, newest)
    if not mostly_cut(shown) or newest.score <= settle_ratio:
        return False
    if view_of(cand, cand.frames[0]).pixels >= shown.pixels and not cand.grew:
        return False
    return not any(shows_thing(v) and not mostly_cut(v) and v.whole >= HALF_VIEW * shown.pixels
                   for v in (view_of(cand, h) for h in cand.frames[:-1]))


def camera_moved(cand: Candidate) -> bool:
    """Whether the camera itself moved during the event: one of its frames is the frame TURN_S before it (the scene
    before the event, for its first frames) shifted as a whole (:func:`view.moved`), a PTZ camera turning to its next
    preset. Then the event is a new view, not a thing in the old one: the border cuts all of the old scene's change,
    and the rules for things cut by it (a car half in view, on its way in) do not hold (see new_view). Two frames in a
    row must say so: a turn goes on, and a jolt of the camera that is back a frame later (a 320x180 view shaken by 3
    px one way and then the other: benchmarks/QUALITY.md, finding 80) is shake. Frames are asked once each, until two
    in a row say so; still frames are not."""
    frames = cand.frames
    while not cand.moved and cand.asked_moved < len(frames):
        h = frames[cand.asked_moved]
        cand.asked_moved += 1
        while cand.turned_from + 1 < len(frames) and frames[cand.turned_from + 1].ts <= h.ts - TURN_S:
            cand.turned_from += 1
        before = frames[cand.turned_from].view if cand.turned_from >= 0 else cand.background
        if not h.still and h.view is not None and before is not None:
            cand.moving = cand.moving + 1 if views.moved(h.view, before) else 0
            cand.moved = cand.moving >= MOVED_FRAMES
    return cand.moved


def at_rest(cand: Candidate) -> bool:
    """Whether the event's newest frame shows the view of the frame TURN_S before it (:func:`view.unchanged`): a camera
    that turned has come to rest, though not for long enough to settle when ``max_hold_s`` closed the event."""
    last = cand.frames[-1]
    before = [h for h in cand.frames if h.ts <= last.ts - TURN_S]
    return last.view is not None and bool(before) and before[-1].view is not None and views.unchanged(
        last.view, before[-1].view)


def still_run(cand: Candidate, k: int) -> list[Held]:
    """The frames of the event's still run that holds its frame ``k``: from the frame that began it (the last one
    at or before ``k`` that moved) through the still frames after it. They show one scene."""
    first = k
    while first > 0 and cand.frames[first].still:
        first -= 1
    last = k + 1
    while last < len(cand.frames) and cand.frames[last].still:
        last += 1
    return cand.frames[first:last]


def scene_of(cand: Candidate, run: list[Held]) -> views.Change:
    """What the frames of a still run (:func:`still_run`) show as one scene: the view of the run's frame in which the
    border cuts the most of the change. The frames of a still run show one scene, and the mask sees a thing's edge
    against what it stands on in one frame and not in the next where they differ little: a grey car stopped with its
    bumper past the border over the grey pavement was cut in three frames of its still run and whole in the rest
    (demo draw 107; a brown car before the brick, draw 109, in turn frame by frame)."""
    return max((view_of(cand, h) for h in run), key=lambda v: v.edge)


def stays(recent: Recent, view: np.ndarray | None, saw: Callable[[float, np.ndarray], bool],
          briefly: bool = False) -> bool:
    """Whether a still scene still shows the thing of the event decided last (a car stopped in view): it differs
    from the scene before that event by at least STAYING_PIXELS, whole or cut by the border, and was not seen
    before that event began (``saw(ts, view)``). The street as it was before a car parked at the border drove
    off differs from the scene with the car by the hole it left; it is no thing staying (demo seed 103: a dog
    running by was taken for the rest of that car's visit). A smaller change is no car: a speck left in the
    scene made a second dog the rest of the first one's visit (finding 28). A smaller thing stays ``briefly``
    (the scene has been still for less than max_hold_s) where its followed mask (``recent.where``, found in the
    frame before) still shows at least HALF_VIEW of its kept frame's change: a dog that stops for a second and a
    half shows as much as when it was kept, fewer pixels than a car (demo draws 345 and 346 at 30 fps, where a
    still run settles in 0.3 s: kept again as it ran on, finding 53). A bottle put down stays for minutes: a state
    of its own, and the hand that moves it next is a new event (bottle irregular holds 3)."""
    if recent.background is None or view is None:
        return False
    shown = views.change(view, recent.background)
    return ((max(shown.whole, shown.edge) >= STAYING_PIXELS or (briefly and still_there(recent, shown)))
            and not saw(recent.began, view))


def still_there(recent: Recent, shown: views.Change) -> bool:
    """Whether ``shown`` has the followed thing of the event decided last where the frame before had it, by at
    least HALF_VIEW of its kept frame's change and KNOWN_PIXELS (a speck left where it stood is no thing)."""
    if recent.where is None or recent.lost or shown.mask is None:
        return False
    there = int((shown.mask.astype(bool) & recent.where.astype(bool)).sum())
    return there >= max(KNOWN_PIXELS, HALF_VIEW * recent.size)


def follow(where: np.ndarray, shown: views.Change, lost: int) -> np.ndarray | None:
    """Where the thing whose mask in an earlier frame was ``where`` is in ``shown`` (None: nowhere): the blobs
    that overlap ``where``, or, when none does (it moved on faster than its own size), the blobs within
    FOLLOW_REACH of it for each step it may have moved since: one, and one more for each of the ``lost`` frames
    that did not show it (at most LOST_STEPS). At night the mask lost a faint walker for a frame as she walked on;
    looked for no farther than one step from where it last showed her, she was out of reach when it showed her
    again, never found after, and kept a second time (demo draws 233 and 243 at night: benchmarks/QUALITY.md,
    finding 49).

    A thing moves on from where it was; another comes in elsewhere (a car came in at one border as the kept
    cars drove out at the other, and the memory of their event took the new car, like one of them to the
    embedding, for the rest of their visit: the road played backwards, benchmarks/QUALITY.md, finding 34). A
    thing still where it was takes no blob that only comes near it: on a busy road the next car in the lane
    came within reach of the kept one, and the memory went from car to car (busy highway 1, finding 35)."""
    if shown.mask is None:
        return None
    _, labels = cv2.connectedComponents(shown.mask, connectivity=8)
    touched = blobs_of(where, labels, lost)
    return np.isin(labels, touched).astype(np.uint8) if len(touched) else None


def blobs_of(where: np.ndarray, labels: np.ndarray, lost: int) -> np.ndarray:
    """The labels of the blobs (``labels``: a change mask's, 8-connected) that :func:`follow` takes for the thing
    whose mask was ``where``."""
    touched = np.unique(labels[where.astype(bool) & (labels > 0)])
    if len(touched) == 0:
        near = cv2.dilate(where, _REACH_KERNEL, iterations=1 + min(lost, LOST_STEPS)).astype(bool)
        touched = np.unique(labels[near & (labels > 0)])
    return touched


def in_specks(where: np.ndarray, shown: views.Change, lost: int, least: int) -> bool:
    """Whether ``shown`` shows the thing lost at ``where`` in specks alone: something within reach of it
    (:func:`follow`), and no blob anywhere of ``least`` pixels or more. The mask broke a faint walker at night into a
    head, a middle and feet, each under ``least`` and farther apart than FOLLOW_REACH (demo draw 342 at 30 fps:
    benchmarks/QUALITY.md, findings 57 and 59); a thing that came in shows as a blob of its own."""
    if shown.mask is None:
        return False
    n, labels, stats, _ = cv2.connectedComponentsWithStats(shown.mask, connectivity=8)
    if any(int(stats[k, cv2.CC_STAT_AREA]) >= least for k in range(1, n)):
        return False
    return len(blobs_of(where, labels, lost)) > 0  # one labelling of the mask for both tests


def least_of(where: np.ndarray) -> int:
    """The fewest pixels that show the thing kept with the mask ``where``: THING_SHARE of it (a wheel of a car is
    no car), and no more than KNOWN_PIXELS (a picture to label), so that a small thing (a ball, a thin walker)
    is shown whenever it is followed."""
    return max(1, min(KNOWN_PIXELS, int(views.THING_SHARE * int(where.sum()))))


def track(where: np.ndarray, lost: int, shown: views.Change, least: int) -> tuple[np.ndarray, int]:
    """One frame of following a thing (:func:`follow`): where it is now, and how many frames in a row have not
    shown it. A frame where it is less than ``least`` pixels (:func:`least_of`) does not show it, but it is
    followed there: a faint walker the mask breaks into specks for a frame or two is found again as she
    walks on, and a car that dwindled to a speck far away, or the speck a car of the scene before left, is no
    thing in view (busy highway 1: the memory followed such a speck for 7 s while new cars drove by,
    benchmarks/QUALITY.md, finding 35)."""
    now = follow(where, shown, lost)
    if now is None:
        return where, lost + 1
    return now, 0 if int(now.sum()) >= least else lost + 1


def blank_since(blank_from: float | None, shown: views.Change, ts: float) -> float | None:
    """The first of the latest frames in a row that showed nothing against the scene before, once the frame at ``ts``
    showed ``shown`` (None: it showed something)."""
    if shown.pixels:
        return None
    return ts if blank_from is None else blank_from


def followed(cand: Candidate, picked: Held) -> tuple[np.ndarray | None, int, int, float, float | None]:
    """The thing of the event's kept frame followed through its later frames (:func:`track`): its mask in the
    latest frame that had it, how many frames in a row have not shown it (None: the kept frame shows no change
    to follow), the fewest pixels that show it (:func:`least_of`), when a frame last showed it, and the first of
    the latest frames in a row that showed nothing against the scene before (None: the latest showed something)."""
    where = view_of(cand, picked).mask
    least = least_of(where) if where is not None else 1
    lost = 0
    shown_ts = picked.ts
    blank_from = None
    after = False
    for h in cand.frames:  # by identity, as left() walks them
        if after and where is not None:
            shown = view_of(cand, h)
            where, lost = track(where, lost, shown, least)
            shown_ts = h.ts if lost == 0 else shown_ts
            blank_from = blank_since(blank_from, shown, h.ts)
        after = after or h is picked
    return where, lost, least, shown_ts, blank_from


def left(cand: Candidate, picked: Held) -> bool:
    """Whether the event's thing left the view after its kept frame: a later frame of the event shows nothing
    against the scene before, and the frame before it showed the change where it could leave (:func:`exited`).
    Then the event is over, and what comes next is a new one (a walker who enters as a dog leaves is no rest of
    the dog's visit)."""
    if cand.background is None:
        return False
    after = False
    for k, h in enumerate(cand.frames):
        if after and h.view is not None and view_of(cand, h).pixels == 0 and exited(cand, k):
            return True
        after = after or h is picked
    return False


def relaxed(cand: Candidate, h: Held, settle_ratio: float) -> float:
    """The share of the threshold a frame of a new event must pass to be its keep: settle_ratio when its pixels
    show the event's change (at least KNOWN_PIXELS against the scene before, as a view), the whole threshold
    when they show less. Such a frame is the scene before the event to the pixels, and that scene was not
    novel: its own small distance from what was kept is no reason to keep it now (a table whose bottle was
    put back a little aside, kept when a shadow's flicker opened an event over it: finding 23). Without
    thumbnails, settle_ratio."""
    if cand.background is None or h.view is None or view_of(cand, h).view >= KNOWN_PIXELS:
        return settle_ratio
    return 1.0


def shows_thing(shown: views.Change) -> bool:
    """A thing clear of the border, of at least KNOWN_PIXELS: a picture to label, however little it moved the
    embedding."""
    return shown.things > 0 and shown.whole >= KNOWN_PIXELS


def adds_whole(shown: views.Change) -> bool:
    """Whether a change shows a thing whole, most of it clear of the image border: a picture of something new. An
    arm the border cuts, with the bottle in its hand clear of it, is none (benchmarks/QUALITY.md, finding 61)."""
    return shows_thing(shown) and not mostly_cut(shown)


def adds_beyond(h: Held, seen: list[Held]) -> bool:
    """Whether ``h`` shows a thing whole beyond each of ``seen`` (frames of its event found seen before): what it adds
    to them is a picture of something new, not the scene they show. A table state kept before, an arm's shadow
    swinging at its top right: a frame that passed the threshold by its region cells and was not found seen before
    is the same to the mask as the best views that were (benchmarks/QUALITY.md, finding 74)."""
    return h.view is not None and all(g.view is None or adds_whole(views.change(h.view, g.view)) for g in seen)


def best_view_key(shown: views.Change, h: Held) -> tuple:
    """Sort key of an event's frames, best view first."""
    return shown.things, shown.framed, h.score


def best_first(cand: Candidate, frames: list[Held]) -> list[Held]:
    """``frames`` of the event, best view first (:func:`best_view_key`); stable: the earliest of equals first."""
    return sorted(frames, key=lambda h: best_view_key(view_of(cand, h), h), reverse=True)


def came_in(cand: Candidate, h: Held) -> bool:
    """Whether ``h`` shows a change mostly cut by the image border and a later frame of its event shows a thing
    whole: something came in from the border. An exposure step or a re-encoding moves no pixels beyond what the
    mask tolerates, so a single frame barely past the threshold of such an event is no such step (a car like one
    kept before, novel only as it drove on from where it had stopped half in view: benchmarks/QUALITY.md,
    finding 31)."""
    if not mostly_cut(view_of(cand, h)):
        return False
    after = False
    for x in cand.frames:  # by identity, as left() walks them: Held compares by value, arrays and all
        if after and shows_thing(view_of(cand, x)):
            return True
        after = after or x is h
    return False


def known_in_event(cand: Candidate, known: Callable[[Held, bool], bool]) -> Callable[[Held, bool], bool]:
    """``known`` for the frames of one event, where a frame is also known when one of the event's, SEEN_AFTER_S or
    more apart, that its pixels cannot tell from it (no mask pixel of change between them) is: the scene stayed, one
    scene as the frames of a still run are (finding 46), and a remembered frame may differ from one of them by a few
    pixels under one exposure fit and from the next by a few more than KNOWN_PIXELS. A hand's shadow hung in a corner
    of a table state kept before for half a minute, never still; the frame ranked first of an event in it, the same
    scene as frames found seen before, was not found so, and was kept (benchmarks/QUALITY.md, finding 63). Frames
    nearer in time are not asked: at 30 fps a faint walker moves less from one frame to the next than the mask sees.
    SCENE_TRIES of those apart are asked (:func:`spread`)."""
    answers: dict[tuple[int, bool], bool] = {}

    def seen(h: Held, by_region: bool) -> bool:
        if (id(h), by_region) not in answers:
            answers[id(h), by_region] = known(h, by_region)
        return answers[id(h), by_region]

    def known_here(h: Held, by_region: bool) -> bool:
        if seen(h, by_region):
            return True
        if h.view is None:
            return False
        apart = [g for g in cand.frames if abs(g.ts - h.ts) >= SEEN_AFTER_S and g.view is not None]
        return any(views.change(h.view, g.view).pixels == 0 and seen(g, by_region) for g in spread(apart))
    return known_here


def spread(frames: list[Held], count: int = SCENE_TRIES) -> list[Held]:
    """At most ``count`` of these frames, spread over them at no period: a scene that comes back every few frames (a
    shadow swinging to and fro) is asked in each of its phases, not the one a stride falls on."""
    if len(frames) <= count:
        return frames
    return [frames[i] for i in sorted({int((k * GOLDEN) % 1.0 * len(frames)) for k in range(1, count + 1)})]


def seen_before(got: Exact, h: Held, known: Callable[[Held, bool], bool]) -> bool:
    """Whether a frame's novelty is the embedding's alone and its pixels were seen before. A frame novel by
    its region cells is new where pixels changed beyond the source's noise (a ball on a kept empty street
    differs from it by a few pixels: too few for ``known`` to tell from a shadow)."""
    return known(h, got.region is not None)


def choose(cand: Candidate, settled: bool, settle_ratio: float, exact: Callable[[Held, float], Exact],
           known: Callable[[Held, bool], bool] = lambda h, by_region: False) -> Pick | None:
    """The frame of a closed candidate to keep, or None when none of it is new.

    ``exact(frame, enough)`` scores a frame against the kept set now (regions are only looked at while
    the whole image does not already pass ``enough``); ``known(frame, by_region)``: its pixels were seen
    or kept before (see known.py; ``by_region``: only its region cells made it novel), so it is not kept
    whatever its embedding says.
    """
    known = known_in_event(cand, known)
    if camera_moved(cand):
        return new_view(cand, settled, settle_ratio, exact, known)

    # A frame past settle_ratio that shows a whole thing is novel, whether it opened the event (Held.thing) or
    # joined it: a car whose entry barely passed the threshold is a picture to keep once it is whole.
    def thing(h: Held) -> bool:
        return h.score > settle_ratio and (h.thing or shows_thing(view_of(cand, h)))

    novel = [h for h in cand.frames if h.score > 1.0 or thing(h)]
    if not novel and any(h.cut for h in cand.frames):
        # Opened by a thing whole after a change the border cut, and nothing of it is novel otherwise: a car
        # coming in that the embedding takes for a car kept before once whole and that differed from it only
        # while cut. Its whole view, if it shows one not seen before, is the picture; a cut one is none.
        return away_from_cut(cand, whole_view(cand, [], settle_ratio, exact, known), settle_ratio, exact, known)
    last = cand.frames[-1]
    if settled and returned(cand) is not True:  # a new state (or, without thumbnails, maybe one)
        got = exact(last, settle_ratio)
        if got.score > settle_ratio:
            # The frames of the still run show one scene, and it was seen before when any of them was: what the
            # pixels tell apart within it is below what they call still, yet a remembered frame may differ from
            # one of them by a blob at the border and not from the next under another exposure fit (the bottle's
            # first state back, its last frame's embedding 8 frames old under the pre-gate, kept again: QUALITY
            # finding 46). Then none of its frames is a picture of something new. Its frames are asked at no period
            # (spread): a lamp flickering at a beat with the frame rate leaves the memory one phase of the scene, and a
            # stride can fall on the other alone (finding 66).
            scene = still_run(cand, len(cand.frames) - 1)
            asked = spread(scene)
            if asked[-1] is not last:
                asked.append(last)
            if not any(seen_before(got, h, known) for h in asked):
                return settled_pick(cand, (last, got, settle_ratio), settle_ratio, exact, known)
            # Nor is a frame novel by the whole image that shows nothing whole beyond that scene, or shows it mostly cut
            # by the border: what it adds is the border's. A hand reached in from the border and carried a bottle
            # away, into a table state kept before, and the hand was kept; the hole where the bottle stood, whole
            # against the scene before, is that state itself (the bottle clip at its own 30 fps and at 10 fps:
            # benchmarks/QUALITY.md, finding 58). The mask showed the bottle in the hand, or the hand's blur, apart
            # from the arm the border cuts, and that frame was kept (finding 61). A frame novel by its region cells is
            # new where its pixels changed (see seen_before): a faint dog at night stopped, the scene it settled
            # into seen before to the pixels, and shows little beyond it.
            shown_before = {id(h) for h in scene}
            seen = known
            beyond: dict[int, bool] = {}

            def adds_thing(h: Held) -> bool:
                if id(h) not in beyond:
                    beyond[id(h)] = h.view is None or last.view is None or adds_whole(views.change(h.view, last.view))
                return beyond[id(h)]

            def known(h: Held, by_region: bool) -> bool:  # noqa: F811 - the rest of choose asks this one
                return id(h) in shown_before or (not by_region and not adds_thing(h)) or seen(h, by_region)

            novel = [h for h in novel if id(h) not in shown_before]
    if not novel or (len(novel) == 1 and not (novel[0].by_region or thing(novel[0])) and novel[0].score <= RENOVEL
                     and not came_in(cand, novel[0])):
        # No frame passed the threshold, or one frame's whole image barely did: what an exposure step or a
        # re-encoding does to one frame's embedding (a region's score is pixel-backed: its cells changed
        # pixels against the scene before, and one frame of a faint walker may be all that passes; so is a
        # thing that came in from the border and shows whole later: came_in). One frame that barely passed counts
        # no more than none: after a large change cut by the border, the whole view as above (a car leaving, like
        # one kept before, one of its cut views 1.15 x the threshold: benchmarks/QUALITY.md, finding 38).
        got = whole_view(cand, [], settle_ratio, exact, known) if any(h.cut for h in cand.frames) else None
    else:
        got = ranked_view(cand, settle_ratio, exact, known)
    return away_from_cut(cand, got, settle_ratio, exact, known)


def new_view(cand: Candidate, settled: bool, settle_ratio: float, exact: Callable[[Held, float], Exact],
             known: Callable[[Held, bool], bool]) -> Pick | None:
    """The picture of an event in which the camera moved (:func:`camera_moved`): the view it came to rest on (settled,
    or :func:`at_rest` when ``max_hold_s`` closed the event), when it is farther than the threshold from every kept
    frame, or than settle_ratio x the threshold and its pixels were not seen before; else none (a preset of a tour's
    next round). Past the threshold the pixels are not asked: a turn changes the whole view, which the embedding tells
    apart, and to the pixels an IR camera's bare road at night was the bare room seen before (the exposure fit
    flattened either into the other). A frame taken while the camera moved shows two views in one, smeared: it is the
    picture only of an event that closed while it still moved (a long pan, a camera on a vehicle that never stops),
    and then as the whole-image rule takes it, the most novel past the threshold (one where it paused first). A PTZ
    camera's tour kept its pans, and its presets again in the next round (benchmarks/QUALITY.md, finding 79)."""
    last = cand.frames[-1]
    if settled or at_rest(cand):
        got = exact(last, settle_ratio)
        if got.score <= settle_ratio or (got.score <= 1.0 and any(
                seen_before(got, h, known) for h in spread(still_run(cand, len(cand.frames) - 1)) + [last])):
            return None
        return Pick(last, got, settle_ratio, "settled")
    novel = [h for h in cand.frames if h.score > 1.0]
    pool = [h for h in novel if h.still] or novel
    for h in sorted(pool, key=lambda x: -x.score)[:TRIES]:
        got = exact(h, 1.0)
        if got.score > 1.0 and not seen_before(got, h, known):
            return Pick(h, got, 1.0, "best view")
    return None


def ranked_view(cand: Candidate, settle_ratio: float, exact: Callable[[Held, float], Exact],
                known: Callable[[Held, bool], bool]) -> tuple[Held, Exact, float] | None:
    """The best view of a new event (a frame of it passed the threshold), with its exact score and ratio (None:
    none of it is new now)."""
    # The event is new (a frame of it passed the threshold); its best view need only pass settle_ratio: a
    # car like one kept before is novel while cut by the border (the cut is what is new) and not once it is
    # whole. Best view first (the most things whole, then the largest change, things a mask pixel from the
    # border counted half: view.Change.framed), then the most novel; the sort is stable, so the earliest of
    # equals.
    #
    # A frame that shows a thing whole and was not seen before comes before one that does not show it, even
    # when it is nearer to a keep than settle_ratio (its cells were novel when seen, not against each kept
    # frame) and the cut one passes: the event is new, and a sliver at the border is no picture to label.
    # Such a frame clear of the border comes before one the border cuts a part of, too, wherever the order put
    # it: a car whose body is the road's grey shows its windows and wheels to the mask, whole while the border
    # cuts its bumper (an IR camera at night: benchmarks/QUALITY.md, finding 36), and what the border leaves of
    # a car the mask may split into more things than the one blob it sees it as whole, a view the order puts
    # first (finding 37). When every such frame was seen before, one of them is kept all the same if it shows at
    # least as much as the view the border cuts (seen_whole_view, finding 48), whether or not the mask sees a part of
    # that view whole: a repeat red car, its rear past the border in one blob, was kept so a frame before its one whole
    # view (demo seed 10, finding 71).
    pool = [h for h in cand.frames if h.score > settle_ratio]
    whole: tuple[Held, Exact, float] | None = None
    ranked = best_first(cand, pool)
    # The best views first (TRIES of them), then up to as many of the frames that passed the threshold when seen: they
    # made the event new. A brown walker at night, drawn like one kept before: the eight best views were frames of her
    # coming in, seen before, and a later frame of her that had passed by its region cells was the tenth (demo draw
    # 362 at night at 15 fps: benchmarks/QUALITY.md, finding 73). Only those that add a thing mostly clear of the
    # border (a hand carrying a bottle, the arm cut by the border, is none: finding 61) and show one beyond each best
    # view found seen before (adds_beyond: finding 74).
    asked = [i for i, h in enumerate(ranked) if i < TRIES or (h.score > 1.0 and adds_whole(view_of(cand, h)))]
    seen: list[Held] = []  # best views asked first and found seen before
    for i in asked[:2 * TRIES]:
        h = ranked[i]
        if i >= TRIES and not adds_beyond(h, seen):
            continue
        ratio = relaxed(cand, h, settle_ratio)
        got = exact(h, ratio)
        shown = shows_thing(view_of(cand, h))
        if got.score > ratio:
            if seen_before(got, h, known):
                if i < TRIES:
                    seen.append(h)
                continue
            if not shown:
                whole = (whole or whole_view(cand, pool, settle_ratio, exact, known)
                         or seen_whole_view(cand, view_of(cand, h), settle_ratio, exact))  # nothing where a speck is cut
                if whole is not None:
                    return whole
            elif (cut := view_of(cand, h)).edge:
                clear = (clear_view(cand, ranked[i + 1:], cut, settle_ratio, exact, known)
                         or seen_whole_view(cand, cut, settle_ratio, exact))
                if clear is not None:
                    return clear
            return h, got, ratio
        if shown and whole is None and not seen_before(got, h, known):
            whole = (h, got, ratio)
    return None


def away_from_cut(cand: Candidate, got: tuple[Held, Exact, float] | None, settle_ratio: float,
                  exact: Callable[[Held, float], Exact], known: Callable[[Held, bool], bool]) -> Pick | None:
    """The event's best view ``got`` as its pick (None: there is none), or a view between two frames clear of the
    border in its place when the mask may not see where the border cuts it.

    A view the mask sees clear of the border next to a frame the border cuts at least KNOWN_PIXELS of may be cut
    where the mask does not see it: a car driving out, its bumper a few pixels past the border the colour of what it
    passes there, the rest of it in more blobs than when whole, so the best-view order put it first (demo draw 128:
    benchmarks/QUALITY.md, finding 39). The best view of a thing between two frames clear of the border that shows at
    least as many mask pixels and was not seen before is the picture then (a whole thing shows all of itself: one
    car of two, showing fewer, is none). A speck at the border (under KNOWN_PIXELS) is no cut beside the view (a far
    car at the border beside two cars whole on the real road: with specks, that view gave way to a nearer view of one
    of them), and no cut of the view itself either: a grey car leaving shows the mask a few pixels at the border a
    frame before the frame the border cuts (demo draws 149 and 197, finding 41)."""
    if got is None:
        return None
    h = got[0]
    shown = view_of(cand, h)
    edges = [view_of(cand, x).edge for x in cand.frames]
    at = next(i for i, x in enumerate(cand.frames) if x is h)  # by identity: Held compares by value, arrays and all
    if shown.edge >= KNOWN_PIXELS or not any(e >= KNOWN_PIXELS for e in edges[max(at - 1, 0):at + 2]):
        return Pick(*got, "best view")
    return Pick(*(between_clear(cand, shown.pixels, [h], settle_ratio, exact, known) or got), "best view")


def between_clear(cand: Candidate, least: int, besides: list[Held], settle_ratio: float,
                  exact: Callable[[Held, float], Exact], known: Callable[[Held, bool], bool]
                  ) -> tuple[Held, Exact, float] | None:
    """The best view of a thing between two frames clear of the border (it and the frames before and after it in the
    event show at most a speck at the border, under KNOWN_PIXELS) that shows at least ``least`` mask pixels and was
    not seen before, other than ``besides`` (None: there is none)."""
    edges = [view_of(cand, x).edge for x in cand.frames]
    other = {id(x) for x in besides}
    between = [x for i, x in enumerate(cand.frames) if id(x) not in other
               and all(e < KNOWN_PIXELS for e in edges[max(i - 1, 0):i + 2])
               and shows_thing(v := view_of(cand, x)) and v.pixels >= least]
    return first_unseen(cand, between, settle_ratio, exact, known)


def settled_pick(cand: Candidate, got: tuple[Held, Exact, float], settle_ratio: float,
                 exact: Callable[[Held, float], Exact], known: Callable[[Held, bool], bool]) -> Pick:
    """The settled frame ``got`` as the event's pick, or, when its still scene shows a part of the change cut by the
    border (at least KNOWN_PIXELS in a frame of its still run), the best view of a thing between two frames clear of
    the border that shows at least as many mask pixels and was not seen before: the thing whole, of which the scene
    shows a part. A grey car stopped with its bumper past the border, the rest of it clear of the border to the mask,
    settled the event on the car cut (demo draw 107)."""
    run = still_run(cand, len(cand.frames) - 1)
    scene = scene_of(cand, run)
    if scene.edge < KNOWN_PIXELS:
        return Pick(*got, "settled")
    whole = between_clear(cand, scene.pixels, run, settle_ratio, exact, known)
    return Pick(*whole, "best view") if whole is not None else Pick(*got, "settled")


def clear_view(cand: Candidate, after: list[Held], cut: views.Change, settle_ratio: float,
               exact: Callable[[Held, float], Exact], known: Callable[[Held, bool], bool]
               ) -> tuple[Held, Exact, float] | None:
    """The best view of the event's frames that show a thing clear of the border (no part of the change cut by
    it) and were not seen before, with its exact score and ratio (None: there is none): whether they passed
    settle_ratio or not (a whole view near a keep, finding 25), and where the order put them after a cut view
    (a grey car leaving over the grey pavement, two things to the mask beside the part the border cut, kept so
    while two views of it whole passed too: demo draw 124, finding 37).

    Those the order put after the cut view (``after``) count only when the border cuts at least KNOWN_PIXELS of it
    (``cut``: a part worth a picture, not a speck; two cars with a speck at the border came before one of them
    alone, road at 10 fps), and when they show at least as many mask pixels: a whole thing shows all of itself,
    and a frame that shows less may be one the border cuts where the mask does not see it (at night a car coming
    in, its body the road's grey at the border: demo seed 14 at night, finding 37)."""
    least = cut.pixels if cut.edge >= KNOWN_PIXELS else math.inf
    later = {id(h) for h in after}
    clear = [h for h in cand.frames if shows_thing(v := view_of(cand, h)) and not v.edge
             and (id(h) not in later or v.pixels >= least)]
    return first_unseen(cand, clear, settle_ratio, exact, known)


def seen_whole_view(cand: Candidate, cut: views.Change, settle_ratio: float, exact: Callable[[Held, float], Exact]
                    ) -> tuple[Held, Exact, float] | None:
    """The best view of the event's frames that show a thing clear of the border and at least as many mask pixels as
    its cut view ``cut``, seen before or not (None: there is none): the picture of a new event whose cut view alone
    is new. A grey car like one kept before is "seen before" whole, at night above all (grey cars are alike to an IR
    camera), and the event kept the view the border cut; its whole view is the picture (benchmarks/QUALITY.md,
    finding 48). As many pixels: a frame that shows less than the cut view is no view of all of it (a table state
    seen before, after a hand at the border moved a bottle; specks of noise). It is :func:`clear_view` with every frame
    held to the cut view's pixels, as those the order put after it are, and so nothing where the border cuts a speck
    alone (no cut: finding 41)."""
    return clear_view(cand, cand.frames, cut, settle_ratio, exact, lambda h, by_region: False)


def whole_view(cand: Candidate, pool: list[Held], settle_ratio: float, exact: Callable[[Held, float], Exact],
               known: Callable[[Held, bool], bool]) -> tuple[Held, Exact, float] | None:
    """The best view of the event's frames outside ``pool`` (nearer a keep than settle_ratio) that show a thing
    whole and were not seen before, with its exact score and ratio (None: there is none). A red car like one
    kept before is near that keep when whole and novel only while the border cuts it: the event is new, and a
    cut view is no picture to label (benchmarks/QUALITY.md, finding 25)."""
    tried = {id(h) for h in pool}
    rest = [h for h in cand.frames if id(h) not in tried and shows_thing(view_of(cand, h))]
    return first_unseen(cand, rest, settle_ratio, exact, known)


def first_unseen(cand: Candidate, frames: list[Held], settle_ratio: float, exact: Callable[[Held, float], Exact],
                 known: Callable[[Held, bool], bool]) -> tuple[Held, Exact, float] | None:
    """The first of ``frames``, best view first (at most TRIES tried), not seen before, with its exact score and
    ratio (None: there is none)."""
    for h in best_first(cand, frames)[:TRIES]:
        ratio = relaxed(cand, h, settle_ratio)
        got = exact(h, ratio)
        if not seen_before(got, h, known):
            return h, got, ratio
    return None
