"""NoveltyFilter: the rules of this package wired into one decision per frame."""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ..clock import SYSTEM_CLOCK, Clock
from ..config import FilterConfig
from . import persistence
from .budget import Budget
from .events import (CUT_PIXELS, RECENT_FRAMES, RENOVEL, Candidate, Exact, Held, Pick, Recent, blank_since,
                     camera_moved, choose, could_leave, fading, followed, gone, half_in_view, in_specks, latest_with,
                     left, mostly_cut, on_its_way_in, returned, shows_thing, stays, track, view_of)
from .ground import Ground, Spot
from .index import Probe, RollingIndex, unit
from .known import KNOWN_PIXELS, Known, known_pixels
from .regional import CELL_STILL, CellNoise, cell_novelty, cell_novelty_per_kept, cell_novelty_where_needed
from .view import NO_CHANGE, Change, change, changed_cells, unchanged
from .whole import Motion, is_novel

log = logging.getLogger("edgefilter.novelty")

GLOBAL_SCOPE = "*"
# A scene is still only after this long without a blob of pixels moving (and settle_frames frames).
SETTLE_S = 0.3
# A thing the mask lost in the middle of the view (not where it could leave) is looked for where it was lost this
# long after the frame that last showed it: found again there, it is the rest of its visit (a faint walker at night
# at 30 fps, her coat the grey of the wall she passed, was kept again as she walked on: finding 55).
LOST_S = 1.0


def lasted(frames: int, since: float, ts: float, cfg: FilterConfig) -> bool:
    """Whether a state seen for ``frames`` frames after the one at ``since`` has lasted: settle_frames frames and
    SETTLE_S (at 30 fps 5 frames are a sixth of a second: a walker moves too little in them, and the mask may miss
    a faint one for as long)."""
    return frames >= cfg.settle_frames and ts - since >= SETTLE_S


@dataclass(frozen=True)
class Decision:
    keep: bool
    distance: float | None   # cosine distance (whole image) to the nearest kept frame; None: nothing kept yet
    reason: str | None       # "first" | "novel" | "heartbeat"; None when not kept
    threshold: float         # the whole-image threshold the frame passed (or was held to)
    region: int | None = None        # the region cell that made the frame novel, when a region did
    held: bool = False               # event mode: held as (part of) an open candidate; see released()/discarded()
    region_score: float | None = None  # regional: the most changed cell's change, in units of its noise
    pick: str | None = None          # event mode, kept frames: "settled", "best view" or "ground" (a moving camera)


class _Item(NamedTuple):
    source: str
    ts: float
    vector: np.ndarray           # unit
    regions: np.ndarray | None   # unit cells, when this source compares regions
    token: Any
    view: np.ndarray | None


@dataclass
class _Scope:
    index: RollingIndex   # kept vectors; with regional novelty each carries its region cells as payload


@dataclass
class _SourceState:
    threshold: float
    last_keep_ts: float | None = None
    first_ts: float | None = None
    last_distance: float | None = None
    budget: Budget = dataclasses.field(default_factory=Budget)
    candidate: Candidate | None = None
    last_event: Recent | None = None       # the frames of the event decided last
    background: np.ndarray | None = None   # thumbnail of the scene outside events
    previous_view: np.ndarray | None = None  # thumbnail of the first frame of the current still run
    still_from: float = 0.0                  # its time
    still_frames: int = 0                    # frames since then in which no blob of pixels moved
    background_run: np.ndarray | None = None  # previous_view of the still run the background was taken from
    waiting_run: np.ndarray | None = None     # previous_view of a still run that shows a thing cut by the border
    waiting_since: float = 0.0                # the first still frame of such runs against this background
    motion: Motion = dataclasses.field(default_factory=Motion)
    cells: CellNoise = dataclasses.field(default_factory=CellNoise)
    known: Known = dataclasses.field(default_factory=Known)
    last_arrival: float = 0.0                # the filter clock's monotonic time of its latest frame
    last_vector: np.ndarray | None = None    # the embedding of its latest frame
    cells_memo: tuple | None = None          # the last regional answer outside events (see _cells_outside)
    # embeddings of the frames since the last event or still scene that showed a large change cut by the border,
    # novel past settle_ratio (something coming in; see _decide_one): the memory of the event it opens
    coming_in: list[np.ndarray] = dataclasses.field(default_factory=list)
    ground: Ground = dataclasses.field(default_factory=Ground)  # where its frames lie, while its camera moves


class NoveltyFilter:
    """Decide which frames to keep; see the package docstring.

    Thread-safe: ``decide`` and ``reconfigure`` (a SIGHUP from another thread) share one lock.
    """

    def __init__(self, cfg: FilterConfig, dim: int, sources: Sequence[str], clock: Clock = SYSTEM_CLOCK,
                 region_count: int = 0, region_dim: int | None = None,
                 source_filters: Mapping[str, FilterConfig] | None = None):
        if dim < 1:
            raise ValueError(f"embedding dimension must be positive, got {dim}")
        if not sources:
            raise ValueError("the novelty filter needs at least one source")
        self.dim = dim
        self.sources = list(sources)
        self.clock = clock
        self.region_count = region_count
        self.region_dim = region_dim or dim
        self._lock = threading.RLock()
        self.cfg = cfg
        self._overrides = self._checked_overrides(cfg, source_filters)
        self._source_no = {s: i for i, s in enumerate(self.sources)}
        self._src = {s: _SourceState(self.cfg_of(s).threshold) for s in self.sources}
        self._scopes: dict[str, _Scope] = {name: self._new_scope(cfg) for name in self._scope_names(cfg.scope)}
        self._released: list[tuple[Any, Decision]] = []
        self._discarded: list[Any] = []
        self._epoch = 0  # bumped when indexes or thresholds are replaced: held distances must be retaken

    # -- public
    def cfg_of(self, source: str) -> FilterConfig:
        """The filter settings in force for one source (its ``sources[].filter`` over ``filter``)."""
        return self._overrides.get(source, self.cfg)

    def decide(self, items: Sequence[tuple]) -> list[Decision]:
        """Decide a micro-batch of (source, ts, vector, regions[, token[, view]]) in order.

        ``token`` is opaque (the daemon passes its Frame): it comes back from :meth:`released` or
        :meth:`discarded` for frames that were held (``Decision.held``). ``view`` is the frame's grey
        thumbnail (``gates.grey_thumbnail``); without it an event keeps its most novel frame instead
        of its best view. One Decision per item.
        """
        with self._lock:
            batch = [self._item(it) for it in items]
            routed: set[str] = set()  # sources whose keeps in this call go through released(), in order
            for name, st in self._src.items():
                if st.candidate is not None and self.cfg_of(name).mode != "event":
                    self._close(name, st, st.candidate.frames[-1].ts, ending=True)  # switched to frame mode
                    routed.add(name)
            rows, probes = self._probes(batch)
            out = [self._decide_one(it, row, probes, routed) for it, row in zip(batch, rows)]
            # A source that stopped sending is not left holding frames forever. By the filter's clock, not
            # by frame times: a file's frames carry its own clock, which another source's need not share.
            now = self.clock.monotonic()
            for it in batch:
                self._src[it.source].last_arrival = now
            present = {it.source for it in batch}
            for name, st in self._src.items():
                if (name not in present and st.candidate is not None
                        and now - st.last_arrival >= self.cfg_of(name).max_hold_s):
                    self._close(name, st, st.candidate.frames[-1].ts, probes=probes, ending=True)
            return out

    def released(self) -> list[tuple[Any, Decision]]:
        """Held frames kept since the last call, in decision order, as (token, Decision(keep=True)).

        The Decision's distance is the frame's distance to the nearest kept frame when it was chosen;
        its threshold is the one it passed (``settle_ratio`` x threshold for a settled frame).
        """
        with self._lock:
            out, self._released = self._released, []
            return out

    def discarded(self) -> list[Any]:
        """Tokens of held frames finally not kept since the last call (their pixels can go)."""
        with self._lock:
            out, self._discarded = self._discarded, []
            return out

    def flush(self, source: str | None = None) -> list[tuple[Any, Decision]]:
        """Decide every open candidate (of one source, or all) now, as if it had reached max_hold_s.

        Returns the keeps; the frames not kept go to :meth:`discarded`. Call before saving at shutdown
        and at the end of a finite source.
        """
        with self._lock:
            if source is not None and source not in self._src:
                raise ValueError(f"unknown source {source!r} (configured: {', '.join(self.sources)})")
            out: list[tuple[Any, Decision]] = []
            for name, st in self._src.items():
                if (source is None or name == source) and st.candidate is not None:
                    self._close(name, st, st.candidate.frames[-1].ts, sink=out, ending=True)
            return out

    def holding(self, source: str | None = None) -> int:
        """Frames held in open candidates (of one source, or all)."""
        with self._lock:
            return sum(len(st.candidate.frames) for name, st in self._src.items()
                       if st.candidate is not None and (source is None or name == source))

    def index_size(self, source: str) -> int:
        with self._lock:
            return len(self._scopes[self._scope_of(source)].index)

    def threshold(self, source: str) -> float:
        return self._src[source].threshold

    def last_distance(self, source: str) -> float | None:
        return self._src[source].last_distance

    def keep_rate(self, source: str) -> float | None:
        """The budget controller's keeps per minute for a source (None before any frame time)."""
        return self._src[source].budget.rate_per_minute()

    def reconfigure(self, cfg: FilterConfig, source_filters: Mapping[str, FilterConfig] | None = None) -> None:
        """Apply a reloaded filter section without losing what was kept.

        A scope change rebuilds: per-source indexes are merged by time into one, or the shared one is
        split by the source that kept each frame.
        """
        overrides = self._checked_overrides(cfg, source_filters)
        with self._lock:
            old = {s: self.cfg_of(s) for s in self.sources}
            old_scope = self.cfg.scope
            self._epoch += 1
            if cfg.scope != old_scope:
                self._rescope(cfg)
            for sc in self._scopes.values():
                sc.index.set_window(cfg.window)
            self.cfg, self._overrides = cfg, overrides
            for name, st in self._src.items():
                new = self.cfg_of(name)
                if new.budget_per_minute is None or old[name].budget_per_minute is None:
                    st.threshold = new.threshold
                    st.budget = Budget()
                else:  # keep what the controller learnt, inside the new bounds
                    st.threshold = min(max(st.threshold, new.threshold_min), new.threshold_max)

    def save(self, directory, model_id: str):
        with self._lock:
            return persistence.save(self, directory, model_id)

    def load(self, directory, model_id: str) -> bool:
        """Restore saved indexes and controller state; False (and unchanged) when there is none usable.

        A corrupt file raises :class:`~edgefilter.errors.StateError` (it is renamed aside by load_state).
        """
        with self._lock:
            return persistence.load(self, directory, model_id)

    # -- one frame
    def _item(self, item: tuple) -> _Item:
        if len(item) not in (4, 5, 6):
            raise ValueError(f"a filter item is (source, ts, vector, regions[, token[, view]]), got {len(item)} fields")
        source, ts, vector, regions = item[:4]
        if source not in self._src:
            raise ValueError(f"unknown source {source!r} (configured: {', '.join(self.sources)})")
        if np.shape(vector) != (self.dim,):
            raise ValueError(f"embedding of {source!r} has shape {np.shape(vector)}, expected ({self.dim},)")
        cells = None
        if regions is not None and self.cfg_of(source).regional and self.region_count > 0:
            if np.shape(regions) != (self.region_count, self.region_dim):
                raise ValueError(f"regions of {source!r} have shape {np.shape(regions)}, "
                                 f"expected ({self.region_count}, {self.region_dim})")
            cells = unit(regions)
        return _Item(source, float(ts), unit(vector), cells, item[4] if len(item) > 4 else None,
                     item[5] if len(item) > 5 else None)

    def _probes(self, batch: list[_Item]) -> tuple[list[int], dict[str, Probe]]:
        """One batched index search per scope; each item's row in its scope's probe."""
        rows: list[int] = []
        members: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        for it in batch:
            scope = self._scope_of(it.source)
            rows.append(len(members[scope]))
            members[scope].append(it.vector)
        return rows, {s: Probe(self._scopes[s].index, np.stack(v)) for s, v in members.items()}

    def _decide_one(self, it: _Item, row: int, probes: dict[str, Probe], routed: set[str]) -> Decision:
        cfg = self.cfg_of(it.source)
        st = self._src[it.source]
        scope_name = self._scope_of(it.source)
        scope = self._scopes[scope_name]
        if st.first_ts is None:
            st.first_ts = it.ts
        scope.index.evict(it.ts)
        threshold = st.threshold
        dist = probes[scope_name].nearest(row, it.vector, threshold)
        st.last_distance = dist
        event = cfg.mode == "event"
        spot = None
        if event:  # only an event's rules ask where a frame lies (frame mode keeps by the embedding alone)
            # a frame that carries the embedding of the one before: the pre-gate found it unchanged (daemon.py)
            spot = st.ground.step(it.view, st.last_vector is not None and np.array_equal(st.last_vector, it.vector))
            st.last_vector = it.vector
        if event and st.candidate is not None:
            return self._join(it, cfg, st, scope, dist, probes, routed, spot)
        still_scene = self._still(st, it)

        worst = self._cells_outside(scope, st, it) if it.regions is not None else None
        by_region = worst is not None and worst[1] > cfg.region_threshold
        novel = dist is not None and (dist > threshold or by_region)
        if novel and still_scene and not self._stands_at_border(st, it):
            st.last_event = None  # a still scene new in itself is a state of its own, not the rest of a visit
        if it.view is not None and not novel and (st.background is None or still_scene) and self._renews(st, it, cfg):
            # the background is the scene when nothing in it moves: not a frame of a thing walking by that is
            # not novel to the whole image (its cells are compared against this background)
            st.background = it.view
        if still_scene:
            st.coming_in = []
        thing = cut = False
        if not novel and event:
            if self._score(dist, worst[1] if worst else None, threshold, cfg) > cfg.settle_ratio:
                shown = self._shown(st, it)
                thing = novel = shows_thing(shown)
                # a large change cut by the border, novel past settle_ratio: something is coming in
                if shown.edge >= CUT_PIXELS:
                    st.coming_in = latest_with(st.coming_in, it.vector)
            elif st.coming_in:
                # ... and shows whole now, though the embedding takes it for a thing kept before (a car like a car
                # kept, novel only while the border cut it): an event, which keeps a whole view or nothing
                thing = novel = cut = shows_thing(self._shown(st, it))
        # every frame like one of the event decided last keeps that memory alive, novel or not (a signer who stays)
        if event and self._continues(st, cfg, it, threshold, thing) and novel:
            # like a frame of the event just decided (the other half of a blinking light, a swinging sign,
            # the rest of a long visit): still that event, not a new one
            novel = False
        if novel and event and st.known.knows(it.ts, it.view,
                                              known_pixels(not is_novel(dist, threshold), it.view, st.background)):
            # the pixels were seen or kept before: an exposure step moved the embedding only (a frame novel
            # by its cells alone must be nearer to the remembered frame than to the scene before: known.py)
            novel = False
        if not novel:
            st.known.seen(it.ts, it.view)
        if it.regions is not None:
            st.cells.step(it.regions, learn=not novel)
        st.motion.step(it.vector, learn=not novel)
        region = worst[0] if novel and by_region and not is_novel(dist, threshold) else None
        region_score = worst[1] if worst is not None else None
        if event and novel:  # open a candidate instead of keeping at once
            held = self._held(it, dist, worst, threshold, cfg)
            held.thing, held.cut, held.spot = thing, cut, spot
            # an event its pixels opened (its thing whole, the embedding not past the threshold) remembers the
            # thing's frames coming in: half a car at one border is half a car at the other to the embedding, and
            # the car driving out was kept again (with every event, busy highway 2 kept 3 frames for 5). ``cut`` is
            # set only with ``thing``.
            st.candidate = Candidate([held], (self._epoch, scope.index.next_key), st.background,
                                     came_in=st.coming_in if thing else [], grew=bool(st.coming_in))
            st.coming_in = []
            st.previous_view, st.still_from = it.view, it.ts  # the event's own still runs start here
            self._adapt(st, cfg, it.ts, False)
            return Decision(False, dist, None, threshold, region, held=True, region_score=region_score)
        keep, reason = (True, "first") if dist is None else (novel, "novel" if novel else None)
        if not keep and cfg.max_interval_s is not None:
            since = st.last_keep_ts if st.last_keep_ts is not None else st.first_ts
            if it.ts - since >= cfg.max_interval_s:
                keep, reason = True, "heartbeat"
        if keep and it.view is not None:
            self._new_background(st, it.view)
        if keep:
            st.known.kept(it.view, self._add(scope_name, it.vector, it.regions, it.ts, it.source, probes))
            st.ground.kept(spot, it.view)
            st.last_keep_ts = it.ts
        self._adapt(st, cfg, it.ts, keep)
        decision = Decision(keep, dist, reason, threshold, region, region_score=region_score)
        if keep and it.source in routed:
            self._released.append((it.token, decision))
            decision = dataclasses.replace(decision, keep=False, held=True)
        return decision

    def _join(self, it: _Item, cfg: FilterConfig, st: _SourceState, scope: _Scope, dist: float | None,
              probes: dict[str, Probe], routed: set[str], spot: Spot | None) -> Decision:
        """A frame of an open event: held with it; the event closes when the scene is still or the hold ends."""
        cand = st.candidate
        assert cand is not None
        floor = st.motion.floor(cfg.noise_floor_k)
        step = st.motion.step(it.vector, learn=False)
        # a small thing moving in a still scene hardly moves the whole image: the cells must be still too
        cells_moved = st.cells.step(it.regions, learn=False) if it.regions is not None else None
        worst = self._cells(scope, st, it, cand.background) if it.regions is not None else None
        cand.frames.append(self._held(it, dist, worst, st.threshold, cfg))
        cand.frames[-1].spot = spot
        if it.view is not None and st.previous_view is not None:
            # no blob of pixels moved since the still run began (a camera's noise moves an embedding as much
            # as a car crossing does; a far car moves too little between two frames to show)
            still = unchanged(it.view, st.previous_view)
        else:
            still = step is not None and step < floor
        still = still and (cells_moved is None or cells_moved < CELL_STILL)
        if not still:
            st.previous_view, st.still_from = it.view, it.ts  # the anchor of the next still run
        cand.still = cand.still + 1 if still else 0
        cand.frames[-1].still = still
        kept = False
        # still for settle_frames frames and SETTLE_S seconds: at 30 fps a walker moves too little in 5 frames;
        # a car stopped half out of view after the event showed it whole is no state to settle on
        # (unless the still scene is one seen before the event: the street a car parked at the border drove off);
        # nor, until max_hold_s, a car stopped half in view on its way in, never whole yet
        still_run = lasted(cand.still, st.still_from, it.ts, cfg)
        waiting = (still_run and it.ts - cand.frames[0].ts < cfg.max_hold_s and on_its_way_in(cand, cfg.settle_ratio))
        half = (still_run and not waiting and half_in_view(cand, cfg.settle_ratio)
                and not st.known.saw(cand.frames[0].ts, it.view))
        if (waiting or half) and camera_moved(cand):
            waiting = half = False  # the camera turned: the border cuts the old scene, not a thing (events.new_view)
        cand.waited = cand.waited or waiting
        settled = still_run and not waiting and not half
        # the thing left, or shrank to a fraction of its best view (without thumbnails: the frames stopped being novel);
        # after waiting for a thing on its way in, a still frame of a scene not back as it was is a new state settling
        # (an arm came in from the border, rested and took a bottle away): the settle rule decides, else the arm's
        # blur on its way out was kept as the event's best view (the bottle clip's R state: QUALITY.md, finding 30)
        faded = fading(cand) >= cfg.settle_frames and not (cand.waited and still and returned(cand) is False)
        # a frame that shows nothing of the event: its thing left, and the next one is another visit (a car that came
        # in one frame after a dog ran out was the dog's event, and its settled frame the event's only keep)
        faded = faded or gone(cand)
        # against the scene before a turn of the camera, the new view shows little where it is bare (a road at night)
        # and seemed to fade: the view the camera comes to rest on is the picture (events.new_view)
        faded = faded and not camera_moved(cand)
        if camera_moved(cand):
            # the camera moves on: its newest frame no longer shows ground that none kept shows (ground.py)
            lost = st.ground.lost([h.spot for h in cand.frames])
            if lost is not None:
                self._keep_ground(it.source, st, cand, lost, it.ts, probes)
                kept = True
                routed.add(it.source)
        if settled or faded or it.ts - cand.frames[0].ts >= cfg.max_hold_s:
            kept = self._close(it.source, st, it.ts, probes=probes, settled=settled) or kept
            routed.add(it.source)
        self._adapt(st, cfg, it.ts, kept)
        return Decision(False, dist, None, st.threshold, held=True,
                        region_score=worst[1] if worst is not None else None)

    def _still(self, st: _SourceState, it: _Item) -> bool:
        """Outside events: whether nothing in the scene has moved for settle_frames frames and SETTLE_S."""
        if it.view is None:
            return False
        if st.previous_view is not None and unchanged(it.view, st.previous_view):
            st.still_frames += 1
        else:
            st.previous_view, st.still_from, st.still_frames = it.view, it.ts, 0
        cfg = self.cfg_of(it.source)
        still = lasted(st.still_frames, st.still_from, it.ts, cfg)
        recent = st.last_event
        if recent is None:
            return still
        if recent.background is not None and unchanged(it.view, recent.background):
            # the scene looks as it did before that event: its thing has left, even if something moved since
            # (the next visitor may be in view before the street was still for settle_frames); once it has looked
            # so for SETTLE_S, not at the first such frame: at 30 fps the per-frame test missed a faint walker for
            # a frame or two, and she was kept again (demo draws 342 and 348 at 30 fps, finding 53)
            if recent.as_before_from is None:
                recent.as_before_from = it.ts
            elif it.ts - recent.as_before_from >= SETTLE_S:
                st.last_event = None
        else:
            recent.as_before_from = None
            briefly = it.ts - st.still_from < cfg.max_hold_s
            if still and not stays(recent, it.view, st.known.saw, briefly):
                st.last_event = None  # whatever was passing has left or stopped out of sight: the next change is new
        return still

    def _renews(self, st: _SourceState, it: _Item, cfg: FilterConfig) -> bool:
        """Whether a still frame outside events becomes the background. Not while it shows a change against the
        background mostly cut by the image border that is no scene seen before, for max_hold_s from the first
        such still frame: a car that came in too little to be novel and stopped half in view. Against that
        background the car driving on showed in pieces, and its event kept it cut (demo seed 7: benchmarks/
        QUALITY.md, finding 31; inside events the same rule is events.on_its_way_in). The street a car left is
        seen before and renews it at once. Asked once per still run (its frames are one scene): one change test.
        """
        if st.background is None or st.background_run is st.previous_view:
            return True
        if st.waiting_run is not st.previous_view:
            shown = change(it.view, st.background)
            if shown.pixels >= KNOWN_PIXELS and mostly_cut(shown) and not st.known.saw(it.ts, it.view):
                st.waiting_since = it.ts if st.waiting_run is None else st.waiting_since
                st.waiting_run = st.previous_view
        if st.waiting_run is st.previous_view and it.ts - st.waiting_since < cfg.max_hold_s:
            return False
        st.background_run, st.waiting_run = st.previous_view, None
        return True

    @staticmethod
    def _new_background(st: _SourceState, view: np.ndarray) -> None:
        """A keep or a settled event takes the background anew: nothing waits against the old one."""
        st.background, st.waiting_run = view, None

    # -- events
    def _held(self, it: _Item, dist: float | None, worst: tuple[int, float] | None, threshold: float,
              cfg: FilterConfig) -> Held:
        h = Held(it.token, it.ts, it.vector, it.regions, it.view, dist,
                 worst[0] if worst else None, worst[1] if worst else None)
        self._rate(h, threshold, cfg)
        return h

    def _rate(self, h: Held, threshold: float, cfg: FilterConfig) -> None:
        """A held frame's score from its distance and region score, and whether the region made it."""
        h.score = self._score(h.distance, h.region_score, threshold, cfg)
        h.by_region = h.score > self._score(h.distance, None, threshold, cfg)

    @staticmethod
    def _score(dist: float | None, region_score: float | None, threshold: float, cfg: FilterConfig) -> float:
        """Novelty relative to the thresholds (> 1: novel)."""
        score = math.inf if dist is None else dist / max(threshold, 1e-9)
        if region_score is not None:
            score = max(score, region_score / max(cfg.region_threshold, 1e-9))
        return score

    @staticmethod
    def _stands_at_border(st: _SourceState, it: _Item) -> bool:
        """Whether a still frame shows the change of the event decided last mostly cut by the image border: that
        event's thing stopped half out of view (a car whose event faded as it drove out and that stands at the
        border): the rest of that visit, not a new state."""
        recent = st.last_event
        if recent is None or recent.background is None or it.view is None:
            return False
        return mostly_cut(change(it.view, recent.background))

    @staticmethod
    def _shown(st: _SourceState, it: _Item) -> Change:
        """What the frame shows against the scene before: a thing clear of the border (a small new thing that
        moves the embedding less than the threshold) or a large change the border cuts (a car coming in)."""
        if it.view is None or st.background is None or st.background is it.view:
            return NO_CHANGE  # no background, or the frame just became it (a still scene): nothing to show
        return change(it.view, st.background)

    def _continues(self, st: _SourceState, cfg: FilterConfig, it: _Item, threshold: float,
                   thing: bool = False) -> bool:
        """Whether a frame is not novel against the frames of the event decided last (and that memory is
        still alive): then it belongs to that event. Extends the memory when it does, for a frame not novel
        against the kept set too: its thing is still in view (a signer who stays, moving her hands, never
        still). A frame novel by its pixels alone (``thing``: the embedding moved less than the threshold)
        belongs to it while the memory is alive: the scene has not looked as before since, so its thing is
        still in view (a car driving away, small in the distance). A frame that shows the followed thing alone is
        also compared with the frames since that did (``Recent.trail``): a car driving on, step by step. The memory
        ends when its thing has left the view (:meth:`_still_shows`), whatever else is in it; a thing lost in the
        middle of the view is looked for where it was lost for LOST_S (:meth:`_looked_for`), and no frame continues
        its visit meanwhile unless it shows it there again, whole or in specks alone (events.in_specks)."""
        recent = st.last_event
        if recent is None or it.ts > recent.until_ts:
            st.last_event = None
            return False
        shown = self._shown_since(recent, it)  # one change test, for following its thing and for the rule below
        alone = False  # the frame shows the followed thing and nothing else (never while it is lost)
        if not self._still_shows(cfg, recent, shown, it.ts):
            if not self._looked_for(recent, it.ts):
                st.last_event = None
                return False
            # looked for where it was lost: specks there and nothing else of its fewest pixels are it, broken up by
            # the mask (a faint walker at night kept again as she walked on: finding 59); anything else is no part of
            # its visit yet
            if shown is None or not in_specks(recent.where, shown, recent.lost, recent.least):
                return False
        else:
            # The whole image only: a thing that moves on enters other region cells, which are new to the cells
            # of the event's frames, and it is still the same thing (the memory ends when the scene is still).
            near = 1.0 - recent.vectors @ it.vector
            # Barely past the event's frames (RENOVEL) and showing its followed thing alone: the rest of its visit. A
            # car driving away shrinks, and its embedding moves past the threshold; where change() sees more of it
            # (a low-contrast road, its least level lowered) the car leaving was kept again (finding 43). Barely
            # past the frames since that showed it alone, too: at 30 fps an event fades a sixth of a second after
            # its car began to leave, and the car driving on moved past the event's frames (finding 52).
            alone = self._only_its_thing(recent, shown)
            if not thing and not (near <= threshold).any() and not (alone and (
                    (near <= RENOVEL * threshold).any()
                    or (recent.trail and (1.0 - np.stack(recent.trail) @ it.vector <= RENOVEL * threshold).any()))):
                return False
        recent.until_ts = it.ts + cfg.max_hold_s
        if alone:
            recent.trail = latest_with(recent.trail, it.vector)
        return True

    @staticmethod
    def _shown_since(recent: Recent, it: _Item) -> Change | None:
        """What the frame shows against the scene before the event decided last (None: that event's thing is not
        followed, or a thumbnail is missing)."""
        if recent.where is None or it.view is None or recent.background is None:
            return None
        return change(it.view, recent.background)

    @staticmethod
    def _only_its_thing(recent: Recent, shown: Change | None) -> bool:
        """Whether the frame shows (``shown``: :meth:`_shown_since`) the followed thing of the event decided last and
        nothing else against the scene before it (specks aside), and no more change than its kept frame: a car
        driving away, smaller, moves the embedding past the event's frames. On a busy road the cars that come close
        where the event's drove are bigger than its kept frame showed them, and new (busy highway 2: finding 43)."""
        if shown is None or recent.lost or shown.mask is None or shown.pixels > recent.size:
            return False
        other = shown.mask.astype(bool) & ~recent.where.astype(bool)
        return int(other.sum()) < KNOWN_PIXELS

    @staticmethod
    def _still_shows(cfg: FilterConfig, recent: Recent, shown: Change | None, ts: float) -> bool:
        """Whether the thing of the event decided last is still in view (``shown``: what the frame shows, see
        :meth:`_shown_since`), followed from frame to frame from its kept frame (events.track): settle_frames
        frames in a row and SETTLE_S without it and it has left, whatever else moves."""
        if shown is None:
            return True
        recent.where, recent.lost = track(recent.where, recent.lost, shown, recent.least)
        if recent.lost == 0:
            recent.shown_ts = ts
        recent.blank_from = blank_since(recent.blank_from, shown, ts)  # the street as it was before, for _looked_for
        # it went out of view where it could (at the border), or the mask has not shown it for settle_frames frames
        # and SETTLE_S (at 30 fps the mask lost a faint walker at night for five frames: finding 53)
        return recent.lost == 0 or (not could_leave(recent.where) and not lasted(recent.lost, recent.shown_ts, ts, cfg))

    @staticmethod
    def _looked_for(recent: Recent, ts: float) -> bool:
        """Whether the thing of the event decided last, lost in the middle of the view, is still looked for where it
        was lost: for LOST_S after a frame last showed it. No frame continues its visit until one shows it there
        again, but the memory lives. Frames that show nothing against the scene before it (the street as it was) for
        SETTLE_S end it: the thing is gone (one such frame is a faint walker the mask missed: finding 53)."""
        blank = recent.blank_from is not None and ts - recent.blank_from >= SETTLE_S
        return not blank and not could_leave(recent.where) and ts - recent.shown_ts < LOST_S

    def _where(self, view: np.ndarray | None, background: np.ndarray | None,
               also: np.ndarray | None = None, things: bool = False) -> np.ndarray | None:
        """Cells whose pixels changed against the scene before, or against ``also`` (None: no thumbnails,
        every cell counts)."""
        if view is None or background is None:
            return None
        side = int(round(math.sqrt(self.region_count)))
        if side * side != self.region_count:
            return None
        cells = changed_cells(view, background, side, side, things)
        if also is not None:
            cells = cells | changed_cells(view, also, side, side)
        return cells

    def _where_kept(self, keys: list[int], st: _SourceState, view: np.ndarray | None,
                    background: np.ndarray | None, also: np.ndarray | None) -> np.ndarray:
        """(K, R): for each kept frame, the cells whose pixels changed against it (see _where)."""
        fallback = None
        rows = []
        for key in keys:
            kept_view = st.known.view_of(key)
            cells = self._where(view, kept_view, things=True) if kept_view is not None else None
            if cells is None:
                if fallback is None:
                    fallback = self._where(view, background, also)
                    if fallback is None:
                        fallback = np.ones(self.region_count, bool)
                cells = fallback
            rows.append(cells)
        return np.stack(rows)

    def _cells_outside(self, scope: _Scope, st: _SourceState, it: _Item) -> tuple[int, float] | None:
        """_cells against the background, outside events. A frame that carries the previous frame's embedding
        and cells (the pre-gate found it unchanged and reused them) gets the previous answer while the kept
        set is the same: the pixel test and the cell comparison would find the same (a background renewed in
        a still scene differs from the old one by noise only)."""
        key = (self._epoch, scope.index.next_key, len(scope.index))
        memo = st.cells_memo
        if (memo is not None and memo[0] == key and np.array_equal(memo[1], it.vector)
                and np.array_equal(memo[2], it.regions)):
            return memo[3]
        worst = self._cells(scope, st, it, st.background)
        st.cells_memo = (key, it.vector, it.regions, worst)
        return worst

    def _cells(self, scope: _Scope, st: _SourceState, it: _Item, background: np.ndarray | None
               ) -> tuple[int, float] | None:
        return cell_novelty_where_needed(scope.index, st.cells, it.vector, it.regions,
                                         lambda: self._where(it.view, background),
                                         self.cfg_of(it.source).region_threshold)

    def _exact(self, scope: _Scope, st: _SourceState, cfg: FilterConfig, h: Held, threshold: float,
               enough: float, region_scale: float = 1.0, background: np.ndarray | None = None,
               also: np.ndarray | None = None) -> Exact:
        """A held frame against the kept set, by an exact scan. Region cells are compared only while the
        whole image's score is not above ``enough``; their score is multiplied by ``region_scale``."""
        index = scope.index
        d = float(index.search(h.vector[None, :], exact=True)[0][0, 0]) if len(index) else None
        best = Exact(self._score(d, None, threshold, cfg), d, None, None)
        if best.score > enough or h.regions is None or not cfg.regional:
            return best
        # against each kept frame, the cells whose pixels changed against that frame (against the scene before
        # the event or the latest keep for kept frames without a remembered thumbnail: a hand that paused in
        # view became the "scene before", and the bottle it took away showed against the keep only)
        worst = cell_novelty_per_kept(index, st.cells, h.vector, h.regions,
                                      lambda keys: self._where_kept(keys, st, h.view, background, also))
        if worst is not None:
            by_region = worst[1] / max(cfg.region_threshold, 1e-9) * region_scale
            if by_region > best.score:
                return Exact(by_region, d, worst[0], worst[1])
            return best._replace(region_score=worst[1])
        return best

    def _rescore(self, frames: list[Held], scope: _Scope, st: _SourceState, cfg: FilterConfig,
                 threshold: float, background: np.ndarray | None = None) -> None:
        """Retake held frames' distances after the kept set changed under them (another source of a
        shared scope kept a frame, or the indexes were rebuilt)."""
        probe = Probe(scope.index, np.stack([h.vector for h in frames]))
        for j, h in enumerate(frames):
            h.distance = probe.nearest(j, h.vector, threshold)
            h.region, h.region_score = None, None
            if h.regions is not None and cfg.regional:
                worst = cell_novelty(scope.index, st.cells, h.vector, h.regions, self._where(h.view, background))
                if worst is not None:
                    h.region, h.region_score = worst
            self._rate(h, threshold, cfg)

    def _close(self, source: str, st: _SourceState, now_ts: float, probes: dict | None = None,
               sink: list | None = None, settled: bool = False, ending: bool = False) -> bool:
        """Decide an open candidate (see events.choose): keep one of its frames (True) or none (False). ``ending``:
        its source ended or stopped sending, and no frame that follows will show what its frames show."""
        cand, st.candidate = st.candidate, None
        assert cand is not None
        cfg = self.cfg_of(source)
        scope_name = self._scope_of(source)
        scope = self._scopes[scope_name]
        threshold = st.threshold
        if cand.version != (self._epoch, scope.index.next_key):
            self._rescore(cand.frames, scope, st, cfg, threshold, cand.background)

        def exact(h: Held, enough: float) -> Exact:
            # settle_ratio relaxes the whole-image test only: region changes are in units of the source's own
            # noise already, and a halved region threshold kept unchanged scenes again (QUALITY.md, finding 16).
            # Not so for a frame whose pixels show a whole thing: it is no unchanged scene, and its region cells
            # relax as its whole image does (a dog the colour of the pavement: finding 22)
            scale = 1.0 if shows_thing(view_of(cand, h)) else enough
            return self._exact(scope, st, cfg, h, threshold, enough, region_scale=scale,
                               background=cand.background, also=st.known.last_kept())

        # seen frames count only from before the event began: those since may show the thing itself, on its
        # way in before it was novel enough to open the event
        began = cand.frames[0].ts
        def known(h: Held, by_region: bool) -> bool:
            return st.known.knows(began, h.view, known_pixels(by_region, h.view, cand.background), shown=True)

        pick = choose(cand, settled, cfg.settle_ratio, exact, known)
        turned = camera_moved(cand)  # asked by choose already: the answer it went by
        spots = [h.spot for h in cand.frames]
        if turned and (pick is None or pick.how != "settled") and st.ground.tracked(spots):
            # the camera still moves: what its frames show that no keep shows is still in view, and a later frame
            # keeps it as it leaves (ground.lost), unless none follows
            unshown = st.ground.unshown(spots) if ending else None
            pick = None if unshown is None else Pick(cand.frames[unshown], exact(cand.frames[unshown], 1.0), 1.0,
                                                     "ground")
        keeps = self._released if sink is None else sink
        if pick is not None:
            self._keep(source, st, pick, now_ts, probes, keeps)
        self._discarded.extend(x.token for x in cand.frames if pick is None or x is not pick.frame)
        if pick is not None:  # what follows and looks like it is still this event, until the scene is still
            latest = cand.frames[-RECENT_FRAMES:]  # the latest, contiguous: a stride could alias a flicker away
            # after a turn of the camera nothing that follows continues the event: it has no thing, only a view
            st.last_event = None if left(cand, pick.frame) or turned else Recent(
                np.stack(cand.came_in + [h.vector for h in latest]), now_ts + cfg.max_hold_s, cand.background,
                cand.frames[0].ts, *followed(cand, pick.frame), size=view_of(cand, pick.frame).pixels)
        if (settled or turned) and cand.frames[-1].view is not None:
            self._new_background(st, cand.frames[-1].view)  # the scene as it is now (a turned camera's old one is gone)
        return pick is not None

    def _keep(self, source: str, st: _SourceState, pick: Pick, now_ts: float, probes: dict | None, keeps: list
              ) -> None:
        """Keep a held frame (an event's pick) into its scope's index; its Decision goes to ``keeps``."""
        cfg = self.cfg_of(source)
        scope_name = self._scope_of(source)
        h, got, threshold = pick.frame, pick.exact, st.threshold
        st.known.kept(h.view, self._add(scope_name, h.vector, h.regions if cfg.regional else None, h.ts,
                                        source, probes))
        st.ground.kept(h.spot, h.view)
        st.last_keep_ts = max(now_ts, st.last_keep_ts if st.last_keep_ts is not None else -math.inf)
        region = got.region if got.distance is not None and got.distance <= threshold * pick.ratio else None
        keeps.append((h.token, Decision(True, got.distance, "first" if got.distance is None else "novel",
                                        threshold * pick.ratio, region, region_score=got.region_score,
                                        pick=pick.how)))

    def _keep_ground(self, source: str, st: _SourceState, cand: Candidate, i: int, now_ts: float,
                     probes: dict | None) -> None:
        """Keep the ``i``-th frame of a moving camera's open event, which shows ground that its newest frame no
        longer shows (ground.lost); the event goes on from the frame after it."""
        cfg = self.cfg_of(source)
        h = cand.frames[i]
        got = self._exact(self._scopes[self._scope_of(source)], st, cfg, h, st.threshold, 1.0)
        self._keep(source, st, Pick(h, got, 1.0, "ground"), now_ts, probes, self._released)
        self._discarded.extend(x.token for x in cand.frames[:i])
        for x in cand.frames[:i + 1]:
            cand.views.pop(id(x), None)  # keyed by id: a frame made later may get the id of one let go
        del cand.frames[:i + 1]
        cand.asked_moved = max(0, cand.asked_moved - (i + 1))
        cand.turned_from = max(-1, cand.turned_from - (i + 1))

    # -- scopes, budget
    def _scope_names(self, scope: str) -> list[str]:
        return [GLOBAL_SCOPE] if scope == "global" else list(self.sources)

    def _scope_of(self, source: str) -> str:
        return GLOBAL_SCOPE if self.cfg.scope == "global" else source

    def _new_scope(self, cfg: FilterConfig) -> _Scope:
        return _Scope(RollingIndex(self.dim, cfg.window))

    def _rescope(self, cfg: FilterConfig) -> None:
        def split(state: dict[str, np.ndarray], origin_no: int) -> dict[str, np.ndarray]:
            keep = state["origin"] == origin_no
            return {k: (v[keep] if k != "meta" else v) for k, v in state.items()}

        parts_of: dict[str, list] = collections.defaultdict(list)
        for sc in self._scopes.values():
            main = sc.index.state(graph=False)
            for name in self._scope_names(cfg.scope):
                parts_of[name].append(main if cfg.scope == "global" else split(main, self._source_no[name]))
        self._scopes = {name: _Scope(RollingIndex.merged(self.dim, cfg.window, parts))
                        for name, parts in parts_of.items()}
        for st in self._src.values():
            st.known.forget_keys()  # the merged indexes are keyed anew
        log.info("novelty filter scope changed from %s to %s; indexes rebuilt (%s)", self.cfg.scope, cfg.scope,
                 ", ".join(f"{n}: {len(s.index)}" for n, s in self._scopes.items()))

    def _add(self, scope_name: str, vec: np.ndarray, regions: np.ndarray | None, ts: float, source: str,
             probes: dict | None = None) -> int:
        """Put a kept frame (with its region cells) into its scope's index (and tell this batch's probes);
        return its key."""
        key = self._scopes[scope_name].index.add(vec, ts, self._source_no[source], payload=regions)
        if probes and scope_name in probes:
            probes[scope_name].added(key)
        return key

    def _adapt(self, st: _SourceState, cfg: FilterConfig, ts: float, kept: bool) -> None:
        st.threshold = st.budget.adapt(st.threshold, ts, kept, cfg.budget_per_minute, cfg.threshold_min,
                                       cfg.threshold_max)

    def _checked_overrides(self, cfg: FilterConfig, source_filters: Mapping[str, FilterConfig] | None
                           ) -> dict[str, FilterConfig]:
        out = {}
        for name, over in (source_filters or {}).items():
            if name not in self.sources:
                raise ValueError(f"filter settings for unknown source {name!r} (configured: {', '.join(self.sources)})")
            if over.scope != cfg.scope or over.window != cfg.window:
                raise ValueError(f"source {name!r}: filter.scope and filter.window cannot differ per source")
            if over.threshold_min > over.threshold_max:
                raise ValueError(f"source {name!r}: threshold_min {over.threshold_min} exceeds threshold_max "
                                 f"{over.threshold_max}")
            out[name] = over
        if cfg.threshold_min > cfg.threshold_max:
            raise ValueError(f"filter.threshold_min {cfg.threshold_min} exceeds threshold_max {cfg.threshold_max}")
        return out
