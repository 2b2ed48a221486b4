"""Where a frame changed against a background, from small thumbnails (:func:`view_thumbnail`).

Two questions are answered from the same change mask: whether a frame *certainly did not change* (the
pre-gate may skip the model), and how well a frame of an event *shows* what changed (its best view: the
changed thing whole, clear of the image border, and as large as possible; Frigate deprioritises frames
whose object touches the edge for the same reason). The mask tolerates what a real camera does to an
unchanged scene:

- exposure steps, flicker and daylight: one gain and offset are fitted between the two thumbnails,
  robustly (a second fit without the pixels the first one left far off); where the background may be
  clipped (a white table under a bright exposure) a frame brighter than it maps to is no change;
- shake: a pixel counts as changed only when it is outside the range of its 5x5 neighbourhood in the
  background (160 px wide: about +-8 px of a 640 px frame). Block averages of a shifted image are not
  bounded by their direct neighbours' (fine texture inside a block moves out of it), so the range is
  taken wide, then the residual is averaged down to 64x36 before it is thresholded;
- sensor noise and re-encoding: the area-averaged thumbnail has little of it left, and the threshold is
  NOISE_K robust standard deviations of what is left after the shake tolerance, never below a least level.
Measured by benchmarks/change_nuisance.py (2026-12-01) on the demo street, whose synthetic 1-px edges are
the worst case: none of 300 frames under random exposure (x0.8-1.2), noise sigma 2-6, JPEG and a shake of
up to 3 px showed a blob at a least level of MIN_LEVEL grey levels (12 had let 20 through); real road footage
under the same: none.

The least level of :func:`change` (what a frame of an event shows) follows the scene's contrast
(:func:`least_level`): what a thing differs from the scene behind it by is a share of that contrast, and so is
what shake and re-encoding leave of an edge. Through an IR camera at night (grey, half the contrast) a walker
showed 4-11 mask pixels past 16 grey levels where by day she showed 29-59, and 12-14 % of the visitors of 40
fresh night draws were lost (benchmarks/QUALITY.md, findings 42 and 43). The tests asked of every frame
(:func:`unchanged`, :func:`changed_cells`: the pre-gate, stillness, region cells) keep MIN_LEVEL: they say
whether anything moved, and a lower level there let the faint shadows of a hand and a rolling ball split
and prolong events by day (finding 43).

At low contrast a thing also loses more than its share of it: an IR camera at night takes the colour it stood
out by (an orange dog on grey pavement, a purple coat) and halves what is left, and the mask saw its darkest or
brightest part alone (a night draw's orange dog: 8-14 mask pixels, where by day it shows 50-58; a thing needs 23).
So :func:`change` grows each blob into the pixels connected to it above the level scaled once more by the
contrast factor of :func:`least_level` (hysteresis, as in Canny's edges): at night (factor about 0.7) the same dog
shows 14-19 pixels, and a walker whose body is near the road's grey 32-37, where her dark coat alone showed 6
(tests/test_event_views.py); by day (factor 1) nothing grows. Grown at half the level by day too, the JPEG specks
of an empty street grew into things (kept again) and 3 more visitors of the 40 tuning draws were missed
(benchmarks/QUALITY.md, finding 47).

A thumbnail holds brightness (luma) and colour (the Cr and Cb planes of YCrCb). :func:`change`, which says
what a frame of an event shows and whether a scene was seen before, compares both: an orange dog on grey
pavement, a red car before a brick wall are the pavement's and the wall's grey, and brightness alone saw
a dog where there was none or a car whole where the border cut it (benchmarks/QUALITY.md, finding 22).
Colour is exposure's gain times its distance from neutral grey, so it needs no fit of its own.
:func:`unchanged` and :func:`changed_cells`, asked of every frame (the pre-gate, the stillness test, where
region cells count), compare brightness only: colour there costs 60 % more (0.37 against 0.23 ms a call)
and, tried on 20 demo draws, found no visitor more (finding 22). So a thing of exactly its background's
grey all over looks still to them; a real one shows its shading, legs or wheels.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

VIEW_SIZE = (160, 90)  # (w, h) of the thumbnail compared
MASK_SIZE = (64, 36)   # the residual is averaged down to this before thresholding
MIN_LEVEL = 16.0   # grey levels: no smaller residual counts as change (change(): at LOW_CONTRAST or more)
LOW_CONTRAST = 64.0  # luma spread (95th - 5th percentile) below which change()'s least level follows it (least_level)
NOISE_K = 4.0      # robust standard deviations of the residual that count as change
MAX_LEVEL = 32.0   # grey levels: the noise estimate never lifts the threshold above this (see change_mask)
CLIP_LOW, CLIP_HIGH = 4, 251  # grey levels: beyond these a pixel may be clipped by the sensor
MIN_GAIN = 0.5     # the fitted exposure gain is held within [MIN_GAIN, 1 / MIN_GAIN]
MIN_BLOB = 3       # mask pixels: smaller specks of change are noise
EDGE_WEIGHT = 0.25  # a thing cut by the image border counts a quarter of its visible area
THING_SHARE = 0.25  # a blob this share of the largest is a thing of its own (a wheel, a lane mark: not)
NEAR_WEIGHT = 0.5  # a thing a mask pixel (10 px of 640) from the border counts half: it may be cut just past it
EDGE_LINK = 0.5     # share of the change level that, on the border beside a blob, means it is cut
MOVE_PX = 5         # thumbnail pixels (20 of 640): a shift of the whole view past any shake and twice its range
MOVE_TEXTURE = 2.0  # grey levels: the least spread of a blurred thumbnail in which a shift can be seen (a bare road
                    # at night at half contrast 4-5; a blank view's noise 0.2-0.3)
_KERNEL = np.ones((5, 5), np.uint8)


def grey_image(image: np.ndarray) -> np.ndarray:
    """The frame in grey (a grey frame as it is, a one-channel one as its plane)."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def view_thumbnail(image: np.ndarray, grey: np.ndarray | None = None) -> np.ndarray:
    """The uint8 thumbnail of a frame that :func:`change` compares: planes (3, h, w) luma, Cr, Cb of a BGR
    frame (each plane contiguous: the per-frame tests read luma alone), (h, w) of a grey one. The luma plane
    is the frame's grey resized, as the thumbnails before colour were. ``grey``: the frame's grey, where the
    caller has it already (the daemon's gates use it too: one conversion of the full frame, not two)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.resize(grey_image(image), VIEW_SIZE, interpolation=cv2.INTER_AREA)
    out = np.empty((3, VIEW_SIZE[1], VIEW_SIZE[0]), np.uint8)
    out[0] = cv2.resize(grey_image(image) if grey is None else grey, VIEW_SIZE, interpolation=cv2.INTER_AREA)
    # colour through twice the size: the last halving is OpenCV's fast 2x2 average (a 640x360 frame: 0.06
    # against 0.17 ms for one area resize of its three channels)
    double = cv2.resize(image, (2 * VIEW_SIZE[0], 2 * VIEW_SIZE[1]), interpolation=cv2.INTER_AREA)
    small = cv2.cvtColor(cv2.resize(double, VIEW_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YCrCb)
    out[1], out[2] = small[:, :, 1], small[:, :, 2]
    return out


def luma(view: np.ndarray) -> np.ndarray:
    """The brightness plane of a thumbnail (a grey thumbnail is one)."""
    return view if view.ndim == 2 else view[0]


@dataclass(frozen=True)
class Change:
    """The changed thumbnail pixels against a background, split by whether their blob touches the border."""

    whole: int = 0   # pixels in blobs clear of the image border
    edge: int = 0    # pixels in blobs that touch it
    things: int = 0  # blobs clear of the border and at least THING_SHARE of the largest (two cars, not one)
    near: int = 0    # pixels of ``whole`` in blobs a mask pixel from the border (they may be cut just past it)
    # MASK_SIZE uint8 mask of the changed pixels (None: none), for following a thing from frame to frame
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def pixels(self) -> int:
        return self.whole + self.edge

    @property
    def view(self) -> float:
        """How well the frame shows what changed: bigger is better; cut by the border counts less."""
        return self.whole + EDGE_WEIGHT * self.edge

    @property
    def framed(self) -> float:
        """:attr:`view`, with things a mask pixel from the border counted at NEAR_WEIGHT: which of an event's
        frames shows it best (a walker 5 px inside the border is whole to the mask, not to a person)."""
        return self.view - (1.0 - NEAR_WEIGHT) * self.near


NO_CHANGE = Change()


def _median(x: np.ndarray) -> float:
    """The (upper) median: the element a partition puts at len(x) // 2, found by counting. Whole numbers (grey
    levels and their differences) are counted as they are; other values by buckets of a sixteenth of a grey
    level, then the bucket that holds the median alone is partitioned. The same value as a partition of the
    whole array at a half to a third of its cost: the exposure fit takes up to nine medians of a 80x45 thumbnail's
    pixels a call, and runs two to three times a frame (the filter's largest cost)."""
    k = len(x) // 2
    low = x.min()
    if x.dtype.kind in "iu":
        return float(low + np.searchsorted(np.cumsum(np.bincount(x - low)), k, side="right"))
    span = float(x.max() - low)
    # monotone buckets, as many as the values at most: their order is the values' order
    scale = min(16.0, len(x) / span) if span > 0 else 1.0
    buckets = ((x - low) * scale).astype(np.intp)
    counts = np.cumsum(np.bincount(buckets))
    j = int(np.searchsorted(counts, k, side="right"))
    k -= int(counts[j - 1]) if j else 0
    return float(np.partition(x[buckets == j], k)[k])


def _fit(background: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """(gain, offset) mapping the background to the frame's exposure; the second fit leaves out the pixels
    the first left far off (what really changed). Least squares from weighted sums (dot products): this
    runs for every frame, several times."""
    b = background.ravel().astype(np.float64)
    f = frame.ravel().astype(np.float64)
    # grey levels (uint8 thumbnails) are whole numbers: the medians of them, of their differences and of residuals
    # under a whole shift are taken of integers (_median counts them at once)
    whole = background.dtype.kind in "iu" and frame.dtype.kind in "iu"
    bi, fi = background.ravel().astype(np.int32), frame.ravel().astype(np.int32)
    # clipped pixels (a white table under a brighter exposure) do not follow the gain: fit the others
    unclipped = (f > CLIP_LOW) & (f < CLIP_HIGH) & (b > CLIP_LOW) & (b < CLIP_HIGH)
    if unclipped.sum() < 16:
        unclipped = np.ones(b.shape, bool)
    bb, bf = b * b, b * f

    def solve(use: np.ndarray, fallback: tuple[float, float]) -> tuple[float, float]:
        w = use.astype(np.float64)
        n = float(w.sum())
        if n < 16:
            return fallback
        sx, sy, sxx, sxy = float(w @ b), float(w @ f), float(w @ bb), float(w @ bf)
        var = sxx / n - (sx / n) ** 2
        gain = (sxy / n - sx * sy / n / n) / var if var > 1e-3 else 1.0
        # no exposure change halves or doubles a scene: a gain near 0 would fit any scene to a flat frame
        gain = min(max(gain, MIN_GAIN), 1.0 / MIN_GAIN)
        return gain, sy / n - gain * sx / n

    # Start from the best of four fits: least squares over every pixel, the gain that maps the background's
    # median to the frame's, the shift of brightness that maps it (the unchanged majority's median difference),
    # and no exposure change at all. When a big thing changed (a car filling a third of
    # the view), least squares bends the exposure to half-explain it (a black car fitted as a grey one) and
    # the change hides in the residual; the medians are the unchanged majority's, unless the thing is near
    # half the view: a black car across the street pulled the frame's median down to a gain of 0.64, the
    # whole street became "change" joined to the car, and the car looked cut by the border while whole
    # (benchmarks/QUALITY.md, findings 28 and 32). Whichever leaves the smallest median residual explains the
    # most pixels. At night (half the contrast) least squares flattened the street to a gain of 0.5 to explain a
    # grey car and still left the smallest residual of the three: the car vanished, and a night draw's first car
    # was "seen before" as the empty street under another exposure; the shift explains the street (finding 44).
    bu, fu = (bi[unclipped], fi[unclipped]) if whole else (b[unclipped], f[unclipped])
    start = [solve(unclipped, (1.0, 0.0)), _median_fit(bu, fu), (1.0, 0.0), (1.0, _median(fu - bu))]

    def residual(gain: float, offset: float) -> np.ndarray:
        """f - (gain * b + offset): in integers under a whole shift (the same values as in floats)."""
        if whole and gain == 1.0 and float(offset).is_integer():
            return fi - (bi + int(offset))
        return f - (gain * b + offset)

    gain, offset = start[_least_median([np.abs(residual(g, o)) for g, o in start])]
    resid = residual(gain, offset)
    return solve((np.abs(resid) <= _kept_within(resid)) & unclipped, (gain, offset))


def _kept_within(resid: np.ndarray) -> float:
    """How far from the fit the second fit's pixels may lie: three robust standard deviations of the residual
    (1.4826 times the median distance from its median), never less than MIN_LEVEL."""
    middle = _median(resid)
    return _sigmas_at_least(np.abs(resid - (int(middle) if resid.dtype.kind == "i" else middle)), 3.0, MIN_LEVEL)


def _sigmas_at_least(spread: np.ndarray, k: float, floor: float) -> float:
    """``max(k * (1.4826 * _median(spread)), floor)``: ``k`` robust standard deviations, never below ``floor``.
    When more than half of ``spread`` lies below what gives ``floor`` (a hair under it, for rounding),
    its median does too, and it need not be taken (most frames: noise leaves a few grey levels)."""
    if np.count_nonzero(spread <= floor / (k * 1.4826) * (1.0 - 1e-6)) > len(spread) // 2:
        return floor
    return max(k * (1.4826 * _median(spread)), floor)


def _least_median(values: list[np.ndarray]) -> int:
    """The index of the first of ``values`` (arrays of one size) with the least :func:`_median`, as np.argmin of
    their medians, with fewer medians taken: those of whole numbers are cheap (counted), and a float array's median
    is compared with theirs by counting its elements on either side (its median is at most ``v`` when more than half
    of them are), a twentieth of the cost of taking it. Only float arrays that beat the whole numbers' least
    median, two or more of them, are taken exactly."""
    k = len(values[0]) // 2
    exact = {i: _median(x) for i, x in enumerate(values) if x.dtype.kind in "iu"}
    if not exact:
        exact = {i: _median(x) for i, x in enumerate(values)}
    j = min(exact, key=lambda i: (exact[i], i))
    v = exact[j]
    # an earlier index wins a tie: before j a median of v beats it, after j only a smaller one
    beat = [i for i, x in enumerate(values)
            if i not in exact and np.count_nonzero(x <= v if i < j else x < v) > k]
    if len(beat) == 1:
        return beat[0]
    if beat:
        exact = {i: _median(values[i]) for i in beat}
        return min(exact, key=lambda i: (exact[i], i))
    return j


def _median_fit(b: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """The gain mapping the background's median grey to the frame's (no offset), held within MIN_GAIN."""
    if len(b) == 0:
        return 1.0, 0.0
    mb = _median(b)
    gain = _median(f) / mb if mb > 1.0 else 1.0
    return min(max(gain, MIN_GAIN), 1.0 / MIN_GAIN), 0.0


def _near(pixels: np.ndarray) -> np.ndarray | None:
    """``pixels`` and their shake-range neighbours (None when there are none: most frames clip nothing)."""
    if not pixels.any():
        return None
    return cv2.dilate(pixels.astype(np.uint8), _KERNEL).astype(bool)


def _shifted(f: np.ndarray, b: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None
             ) -> np.ndarray:
    """How far each pixel of ``f`` lies outside what a shake of ``b`` (already at the frame's exposure) can
    bring there: full size, >= 0. ``low``/``high``: where ``b`` may be clipped dark/bright, a darker/brighter
    frame is no change.

    Both ways: a thing that appeared lies outside the range of the background's neighbourhood, and a thing
    that left (a small dark cap among bright wall) lies outside the range of the frame's. A shift passes
    both; one way alone was blind to removals narrower than the shake range. The way back compares lightly
    blurred copies (a 1-px line that a sub-pixel shift smeared over two rows is no removal) and not within
    the shake range of the border (what a shake moved out of view)."""
    fs, bs = cv2.blur(f, (3, 3)), cv2.blur(b, (3, 3))
    back_darker, back_brighter = bs - cv2.dilate(fs, _KERNEL), cv2.erode(fs, _KERNEL) - bs
    m = _KERNEL.shape[0] // 2
    for back in (back_darker, back_brighter):
        back[:m], back[-m:], back[:, :m], back[:, -m:] = 0, 0, 0, 0
    darker = np.maximum(cv2.erode(b, _KERNEL) - f, back_darker)
    brighter = np.maximum(f - cv2.dilate(b, _KERNEL), back_brighter)
    if low is not None:
        darker[low] = 0.0
    if high is not None:
        brighter[high] = 0.0
    return np.maximum(np.maximum(darker, brighter), 0.0)


def _residual(frame: np.ndarray, background: np.ndarray, colour: bool = False, least: float | None = None
              ) -> tuple[np.ndarray, float] | None:
    """The MASK_SIZE residual of ``frame`` against ``background`` after exposure, shake and noise, and the
    level above which it is change (None: the thumbnails cannot be compared). ``colour``: the colour planes
    count too, where both thumbnails have them; otherwise brightness alone. ``least``: no smaller residual
    counts, whatever the noise estimate (None: MIN_LEVEL, read at the call: change_nuisance.py --levels sets it)."""
    colour = colour and frame.ndim == 3 and background.ndim == 3
    frame_colour, background_colour = frame, background
    frame, background = luma(frame), luma(background)
    if frame.shape != background.shape or frame.size == 0:
        return None
    f = frame.astype(np.float32)
    b = background.astype(np.float32)
    # a quarter of the pixels fit two numbers as well; the same fit whatever is asked of the two thumbnails
    gain, offset = _asked(("fit",), frame_colour, background_colour,
                          lambda: _fit(background[::2, ::2], frame[::2, ::2]))
    # where the background may be clipped (a white table under a bright exposure) its true grey was at least
    # (at most) what it shows: a frame brighter there under a darker exposure (darker, under a brighter one)
    # shows that grey, not a change
    high, low = _near(b >= CLIP_HIGH), _near(b <= CLIP_LOW)
    # what the background looks like at the frame's exposure, clipped as the sensor clips it
    b = np.clip(b * gain + offset, 0.0, 255.0)
    residual = _shifted(f, b, low, high)
    if colour:
        # Cr and Cb: distance from neutral grey, which exposure scales by its gain; unknown where clipped
        unsure = [m for m in (high, low) if m is not None]
        for plane in (1, 2):
            fc = frame_colour[plane].astype(np.float32) - 128.0
            bc = (background_colour[plane].astype(np.float32) - 128.0) * gain
            shift = _shifted(fc, bc)
            for m in unsure:
                shift[m] = 0.0
            residual = np.maximum(residual, shift)
    residual = cv2.resize(residual, MASK_SIZE, interpolation=cv2.INTER_AREA)
    # the noise left after the shake tolerance (the fit's own residual is mostly shake on textured scenes);
    # capped: when most of the image changed (another person, another view) the median residual is that
    # change, not noise, and an uncapped threshold rose above it and called the new scene unchanged
    return residual, min(_sigmas_at_least(residual.ravel(), NOISE_K, MIN_LEVEL if least is None else least), MAX_LEVEL)


def least_level(background: np.ndarray) -> float:
    """The least level of :func:`change` against ``background`` (a thumbnail or its luma plane): MIN_LEVEL, scaled
    down with the scene's contrast (the luma spread of a quarter of its pixels) below LOW_CONTRAST, to half of it
    at most. The demo street by day spreads 85 grey levels and keeps MIN_LEVEL under the darkest exposure of the
    nuisance test (x0.8: 68); an IR camera at night halves it. LOW_CONTRAST was chosen on the corpus: at 85 the
    faint shadow of a hand on the bottle clip (spread 70-80) moved a kept frame into a label's margin, and one
    demo car's kept frame to where the border cuts it (benchmarks/QUALITY.md, finding 43). At the levels it gives
    (16 on the demo street, 10.2 on the road, 10.8 and 8 at night) none of the nuisance frames of
    benchmarks/change_nuisance.py shows a blob."""
    grey = luma(background)[::2, ::2].ravel()
    if grey.size < 20:
        return MIN_LEVEL
    lo, hi = len(grey) // 20, len(grey) * 19 // 20
    q = np.partition(grey, (lo, hi))
    spread = float(q[hi]) - float(q[lo])
    return MIN_LEVEL * min(max(spread / LOW_CONTRAST, 0.5), 1.0)


def _blobs(mask: np.ndarray) -> np.ndarray | None:
    """``mask`` without specks smaller than MIN_BLOB (None when nothing is left)."""
    if not mask.any():
        return None
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < MIN_BLOB)
    small = small[small > 0]
    if len(small):
        mask[np.isin(labels, small)] = 0
    return mask if mask.any() else None


def change_mask(frame: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """The MASK_SIZE uint8 mask of pixels changed in ``frame`` against ``background`` (specks removed),
    or None when nothing changed."""
    got = _residual(frame, background)
    if got is None:
        return None
    residual, level = got
    return _blobs((residual > level).astype(np.uint8))


def _cut(residual: np.ndarray, level: float, labels: np.ndarray, count: int) -> np.ndarray:
    """(count,) bool: which labelled blobs are cut by the image border. A blob is cut when it touches the
    border, or ends a pixel short of it beside weaker change on the border itself: the part of a car by the
    border may differ from the road less than the level (which a big change lifts), and the blob then ended
    a pixel short of a car cut in half."""
    border = np.zeros(labels.shape, np.uint8)
    border[0], border[-1], border[:, 0], border[:, -1] = 1, 1, 1, 1
    weak = border & (residual > EDGE_LINK * level).astype(np.uint8)
    near = (cv2.dilate(weak, np.ones((3, 3), np.uint8)) | border).astype(bool)
    cut = np.zeros(count, bool)
    cut[np.unique(labels[near])] = True
    cut[0] = False
    return cut


def _grown(mask: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """``mask`` grown into the ``weak`` pixels connected to its blobs (hysteresis): a weak pixel joins only through
    a chain of weak pixels that reaches a blob, so nothing weak stands alone."""
    strong = mask.astype(bool)
    count, labels = cv2.connectedComponents((weak | strong).astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[labels[strong]] = True  # never label 0: every strong pixel is in the union
    return seeded[labels].astype(np.uint8)


def _blob_stats(frame: np.ndarray, background: np.ndarray, colour: bool = False, least: float | None = None,
                grow: float = 1.0):
    """(labels, stats, cut) of the changed blobs, or None when nothing changed; ``grow`` < 1: each blob grown into
    the pixels connected to it above ``grow`` times the level (:func:`_grown`)."""
    got = _residual(frame, background, colour, least)
    if got is None:
        return None
    residual, level = got
    mask = _blobs((residual > level).astype(np.uint8))
    if mask is None:
        return None
    if grow < 1.0:
        mask = _grown(mask, residual > grow * level)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return labels, stats, _cut(residual, level, labels, count)


def _things(stats: np.ndarray, cut: np.ndarray, share: float = THING_SHARE) -> np.ndarray:
    """(count,) bool, per label of :func:`_blob_stats`: the blobs that are things, clear of the border and at
    least ``share`` of the largest blob (0: every blob clear of the border); the background label 0 is none."""
    areas = stats[:, cv2.CC_STAT_AREA]
    thing = ~cut & (areas >= share * areas[1:].max())
    thing[0] = False
    return thing


def changed_cells(frame: np.ndarray, background: np.ndarray, rows: int, cols: int, things: bool = False
                  ) -> np.ndarray:
    """Which cells of a rows x cols grid (row-major, as the regions graph's) hold changed pixels of a thing
    clear of the image border: what a shake moves in and out at the border is no new thing, and a thing
    that really comes in is whole a moment later. ``things``: only blobs of at least THING_SHARE of the
    largest count (a speck beside a shadow is noise). Read-only: the answer is remembered (_asked)."""
    return _asked(("cells", rows, cols, things), frame, background,
                  lambda: _read_only(_changed_cells(frame, background, rows, cols, things)))


def _changed_cells(frame: np.ndarray, background: np.ndarray, rows: int, cols: int, things: bool) -> np.ndarray:
    got = _blob_stats(frame, background)
    if got is None:
        return np.zeros(rows * cols, bool)
    labels, stats, cut = got
    whole = _things(stats, cut, THING_SHARE if things else 0.0)[labels].astype(np.float32)
    return cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA).ravel() > 0


def change(frame: np.ndarray, background: np.ndarray) -> Change:
    """What changed in ``frame`` against ``background`` (both :func:`view_thumbnail`), in brightness or colour
    (brightness alone when either is grey), above the least level of the scene's contrast (:func:`least_level`),
    each blob grown into what lies beside it above that level scaled by the contrast factor once more (at full
    contrast, none: see the module's docstring)."""
    return _asked(("change",), frame, background, lambda: _change(frame, background))


def _change(frame: np.ndarray, background: np.ndarray) -> Change:
    least = least_level(background)
    got = _blob_stats(frame, background, colour=True, least=least, grow=least / MIN_LEVEL)  # the contrast factor
    if got is None:
        return NO_CHANGE
    labels, stats, cut = got
    things = int(_things(stats, cut).sum())
    areas = stats[1:, cv2.CC_STAT_AREA].astype(int)
    cut = cut[1:]
    x, y, w, h = (stats[1:, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    rows, cols = labels.shape
    near = ~cut & ((x <= 1) | (y <= 1) | (x + w >= cols - 1) | (y + h >= rows - 1))
    return Change(int(areas[~cut].sum()), int(areas[cut].sum()), things, int(areas[near].sum()),
                  _read_only((labels > 0).astype(np.uint8)))


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a``, locked: a remembered answer is shared by every caller that asks its question."""
    a.flags.writeable = False
    return a


# Answers of unchanged(), change() and changed_cells() by the identity of the two thumbnails asked (and the question):
# the pre-gate asks unchanged() of every frame on the capture threads, and the filter thread asks it again of most
# frames against the same thumbnail (the scene it was last still in), 1123 of 1500 frames on the demo stream; an
# event's frames are asked change() against the scene before it by the test that opens or continues the event and
# again by the event's view of them (on that stream one change test in seven asked a pair asked before). The weak
# references make a hit the same two arrays, never a new array at a freed one's address; the oldest entries go
# first past the limit. Thumbnails are never written after they are made.
_ASKED: dict[tuple, tuple[weakref.ref, weakref.ref, object]] = {}
_ASKED_LIMIT = 4096


def _asked(question: tuple, frame: np.ndarray, background: np.ndarray, answer: Callable[[], object]) -> object:
    """``answer()``, or what it gave for these two arrays (by identity) and this question before (at this MIN_LEVEL:
    change_nuisance.py --levels sets it)."""
    key = (id(frame), id(background), MIN_LEVEL, *question)
    hit = _ASKED.get(key)
    if hit is not None and hit[0]() is frame and hit[1]() is background:
        return hit[2]
    result = answer()
    if len(_ASKED) >= _ASKED_LIMIT:
        try:
            del _ASKED[next(iter(_ASKED))]
        except (StopIteration, KeyError, RuntimeError):  # another thread changed it meanwhile
            pass
    _ASKED[key] = (weakref.ref(frame), weakref.ref(background), result)
    return result


def unchanged(frame: np.ndarray, background: np.ndarray) -> bool:
    """Certainly the same scene: no blob of change beyond exposure, shake and noise (the mask alone: the
    pre-gate asks this of every frame, and needs no blob statistics)."""
    return _asked(("unchanged",), frame, background, lambda: change_mask(frame, background) is None)


_WINDOWS: dict[tuple[int, int], np.ndarray] = {}


def textured(plane: np.ndarray) -> bool:
    """Whether a thumbnail's plane shows more than noise: its spread, blurred, at least MOVE_TEXTURE."""
    return float(cv2.GaussianBlur(plane.astype(np.float32), (5, 5), 0).std()) >= MOVE_TEXTURE


def phase_shift(frame: np.ndarray, before: np.ndarray) -> tuple[float, float] | None:
    """How far ``before`` shifted to show as ``frame`` (x, y, thumbnail pixels, to a fraction): the peak of their
    phase correlation, unverified. None for a view with nothing to see (a lens cap, a black night, fog): the
    correlation of its noise peaks anywhere (benchmarks/QUALITY.md, finding 80)."""
    a, b = luma(before), luma(frame)
    if a.shape != b.shape or a.size == 0 or not (textured(a) and textured(b)):
        return None
    h, w = a.shape
    window = _WINDOWS.get((h, w))
    if window is None:
        window = _WINDOWS[(h, w)] = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), window)
    return float(dx), float(dy)


def shift_of(frame: np.ndarray, before: np.ndarray, least: int = 0, pixels: int = 0
             ) -> tuple[float, float] | None:
    """Where ``before`` shows in ``frame``: its :func:`phase_shift`, where it :func:`holds`; else None."""
    got = phase_shift(frame, before)
    return got if got is not None and holds(frame, before, got, least, pixels) else None


def holds(frame: np.ndarray, before: np.ndarray, shift: tuple[float, float], least: int = 0, pixels: int = 0
          ) -> bool:
    """Whether ``before`` shifted by ``shift`` (to the pixel) shows as ``frame``: it leaves at most ``pixels`` mask
    pixels changed on the part both show (the mask of :func:`unchanged`: exposure, shake and noise aside), and the
    shift is at least ``least`` in one direction and at most half the view in both (past it, too little is left to
    tell). A thing moving before a still scene shifts by its own way and leaves the scene's marks out of place."""
    h, w = luma(frame).shape
    sx, sy = int(round(shift[0])), int(round(shift[1]))
    if max(abs(sx), abs(sy)) < least or abs(sx) > w // 2 or abs(sy) > h // 2:
        return False
    shown, was = overlap(frame, before, shift)
    mask = change_mask(np.ascontiguousarray(shown), np.ascontiguousarray(was))
    return mask is None or int(np.count_nonzero(mask)) <= pixels


def overlap(frame: np.ndarray, before: np.ndarray, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The part of two thumbnails both show, ``before`` shifted by ``shift`` (to the pixel): (of ``frame``, of
    ``before``), views of them."""
    h, w = luma(frame).shape
    sx, sy = int(round(shift[0])), int(round(shift[1]))
    # frame[y, x] shows before[y - sy, x - sx]
    return (frame[..., max(0, sy):h + min(0, sy), max(0, sx):w + min(0, sx)],
            before[..., max(0, -sy):h + min(0, -sy), max(0, -sx):w + min(0, -sx)])


def moved(frame: np.ndarray, before: np.ndarray) -> bool:
    """Whether the camera itself moved between two thumbnails: ``frame`` is ``before`` shifted as a whole by MOVE_PX
    or more (:func:`shift_of`, nothing left changed: a PTZ camera turning to its next preset, a camera knocked
    aside)."""
    return shift_of(frame, before, least=MOVE_PX) is not None
