"""A deterministic synthetic camera: ``demo://?seed=1&width=640&height=360&fps=30&frames=900``.

A fixed street scene (a textured building front with windows and a door, a sidewalk, a road, a tree, a
lamp post, a bench and a bin) seen by a slightly noisy camera. Every ``SLOT_SECONDS`` of video holds at most
one visit: a person, a dog or a car enters from one side, crosses (a person or a dog may stop for a while)
and leaves, so the scene is empty between visits. On top come the nuisances a novelty filter must ignore:
sensor noise, slow lighting drift, auto-exposure steps that settle back, and short bursts of flicker.

Everything is a pure function of the options and the frame number, so any frame can be rendered on its own
and two runs give identical pixels. :attr:`DemoScene.events` is the ground truth of the visits for
benchmarks: ``(start_frame, end_frame_exclusive, description)``, a frame belonging to an event when any
part of the object is in view.

Options (all optional): ``seed`` (int, 0), ``width`` (640), ``height`` (360), ``fps`` (30), ``frames``
(finite length; default endless), ``noise`` (sensor noise sigma in grey levels, 2.5), ``lighting``
(1: drift, exposure steps and flicker; 0: steady light), ``zoom`` (visitors this many times their size
in the street view, as from a closer camera, 0.25-3; 1), ``slot`` (seconds per visit slot, at least 4; 15).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from .errors import SourceError
from .source import Source

SLOT_SECONDS = 15.0   # at most one visit per slot; the scene is empty around it
_NOISE_BANK = 16      # pre-drawn noise frames, picked pseudo-randomly per frame

_COLOURS = {  # BGR
    "red": (40, 40, 200), "blue": (190, 90, 30), "green": (60, 150, 50), "yellow": (40, 200, 230),
    "white": (235, 235, 235), "black": (30, 30, 30), "orange": (30, 130, 240), "purple": (140, 50, 120),
    "grey": (130, 130, 130), "brown": (40, 75, 120),
}
_SIDEWALK = (150, 150, 148)  # BGR: where people and dogs walk
_SKIN = ((140, 170, 220), (100, 140, 190), (60, 90, 130), (170, 200, 235))
_TROUSERS = ((60, 40, 30), (40, 40, 40), (120, 110, 100), (90, 60, 40))


class DemoEvent(NamedTuple):
    start: int        # first frame with the object in view
    end: int          # first frame after it left (exclusive)
    description: str


@dataclass(frozen=True)
class _Visit:
    kind: str           # person, dog, car
    colour: str
    start: int          # frame the trajectory starts (object just off-screen)
    x0: float           # left edge at start
    speed: float        # px per frame, signed
    stop_x: float       # left edge where it pauses
    pause: int          # frames paused
    y_foot: float       # ground contact line
    scale: float
    skin: int
    trousers: int
    visible: tuple[int, int]   # [first, last+1) frames in view
    description: str

    def x_at(self, frame: int) -> float:
        t = frame - self.start
        t_stop = (self.stop_x - self.x0) / self.speed
        if t <= t_stop:
            return self.x0 + self.speed * t
        if t <= t_stop + self.pause:
            return self.stop_x
        return self.stop_x + self.speed * (t - t_stop - self.pause)

    def moving(self, frame: int) -> bool:
        t = frame - self.start
        t_stop = (self.stop_x - self.x0) / self.speed
        return not (t_stop < t <= t_stop + self.pause)


class DemoScene:
    """Renders frame ``i`` of the synthetic camera; see the module docstring."""

    def __init__(self, seed: int = 0, width: int = 640, height: int = 360, fps: float = 30.0,
                 frames: int | None = None, noise: float = 2.5, lighting: bool = True, zoom: float = 1.0,
                 slot: float = SLOT_SECONDS):
        self.seed, self.width, self.height, self.fps = int(seed), int(width), int(height), float(fps)
        self.frames, self.noise, self.lighting = frames, float(noise), bool(lighting)
        self.zoom = float(zoom)  # visitors this many times their street-scene size (a closer camera)
        self.slot = max(1, round(float(slot) * self.fps))
        rng = np.random.default_rng([self.seed, 1])
        self._background = _background(rng, self.width, self.height)
        self._noise_pos, self._noise_neg = _noise_bank(np.random.default_rng([self.seed, 2]),
                                                       self.width, self.height, self.noise)
        phases = np.random.default_rng([self.seed, 3]).uniform(0, 2 * math.pi, 2)
        self._drift_phase = (float(phases[0]), float(phases[1]))
        self._visit = lru_cache(maxsize=64)(self._make_visit)
        self._nuisance = lru_cache(maxsize=64)(self._make_nuisance)

    # ------------------------------------------------------------------ ground truth

    @property
    def events(self) -> list[DemoEvent]:
        """The visits of a finite scene (``frames`` set); use :meth:`events_between` for an endless one."""
        if self.frames is None:
            raise ValueError("an endless demo scene has endless events; use events_between(start, stop)")
        return self.events_between(0, self.frames)

    def events_between(self, start: int, stop: int) -> list[DemoEvent]:
        """Visits in view at some frame of ``[start, stop)`` (clipped to it)."""
        out = []
        for k in range(max(0, start // self.slot), (max(start, stop - 1)) // self.slot + 1):
            v = self._visit(k)
            if v is None:
                continue
            a, b = max(v.visible[0], start), min(v.visible[1], stop)
            if a < b:
                out.append(DemoEvent(a, b, v.description))
        return out

    def objects_at(self, frame: int) -> list[tuple[str, tuple[int, int, int, int]]]:
        """``(description, (x0, y0, x1, y1))`` of each object in view at ``frame``, box clipped to the image."""
        v = self._visit(frame // self.slot)
        if v is None or not v.visible[0] <= frame < v.visible[1]:
            return []
        x0, y0, x1, y1 = _extent(v, v.x_at(frame))
        box = (max(0, int(x0)), max(0, int(y0)), min(self.width, int(math.ceil(x1))),
               min(self.height, int(math.ceil(y1))))
        return [(v.description, box)]

    # ------------------------------------------------------------------ rendering

    def render(self, frame: int) -> np.ndarray:
        gain, offset = self._light(frame)
        img = cv2.convertScaleAbs(self._background, alpha=gain, beta=offset)
        v = self._visit(frame // self.slot)
        if v is not None and v.visible[0] <= frame < v.visible[1]:
            _draw(img, v, frame, gain, offset)
        if self.noise > 0:
            # Never the same noise on consecutive frames (a "frozen" gate would drop them); period 256.
            j = (frame * 7 + (frame // _NOISE_BANK) * 3 + self.seed) % _NOISE_BANK
            cv2.add(img, self._noise_pos[j], dst=img)
            cv2.subtract(img, self._noise_neg[j], dst=img)
        return img

    def _light(self, frame: int) -> tuple[float, float]:
        if not self.lighting:
            return 1.0, 0.0
        t = frame / self.fps
        p1, p2 = self._drift_phase
        gain = 1.0 + 0.07 * math.sin(2 * math.pi * t / 97.0 + p1) + 0.03 * math.sin(2 * math.pi * t / 23.0 + p2)
        offset = 0.0
        k = frame // self.slot
        for slot in (k - 1, k):  # an exposure step settles within one slot
            if slot < 0:
                continue
            step_at, step, flicker_at, flicker_len = self._nuisance(slot)
            if step_at is not None and frame >= step_at:
                # Auto-exposure overshoots, then settles back over about a second.
                gain *= 1.0 + step * math.exp(-(frame - step_at) / (0.8 * self.fps))
            if flicker_at is not None and flicker_at <= frame < flicker_at + flicker_len:
                offset += 7.0 if (frame - flicker_at) % 2 == 0 else -5.0
        return gain, offset

    def _make_nuisance(self, k: int) -> tuple[int | None, float, int | None, int]:
        rng = np.random.default_rng([self.seed, 5, k])
        step_at = flicker_at = None
        step, flicker_len = 0.0, 0
        if rng.random() < 0.4:
            step_at = k * self.slot + int(rng.integers(0, self.slot))
            step = float(rng.choice([-1, 1]) * rng.uniform(0.08, 0.15))
        if rng.random() < 0.3:
            flicker_at = k * self.slot + int(rng.integers(0, self.slot))
            flicker_len = int(rng.integers(3, 9))
        return step_at, step, flicker_at, flicker_len

    def _make_visit(self, k: int) -> _Visit | None:
        rng = np.random.default_rng([self.seed, 4, k])
        if rng.random() >= 0.75:
            return None
        W, H, fps = self.width, self.height, self.fps
        kind = str(rng.choice(["person", "person", "person", "dog", "car", "car"]))
        colour = str(rng.choice(["brown", "black", "white", "orange"] if kind == "dog" else list(_COLOURS)))
        if kind == "car":
            y_foot = H * rng.uniform(0.84, 0.95)
            cross_s, pause_s = rng.uniform(2.5, 5.0), (rng.uniform(1.0, 3.0) if rng.random() < 0.25 else 0.0)
        else:
            y_foot = H * rng.uniform(0.66, 0.74)
            cross_s = rng.uniform(5.0, 8.0) if kind == "person" else rng.uniform(3.5, 6.0)
            pause_s = rng.uniform(1.0, 4.0) if rng.random() < 0.5 else 0.0
        scale = float(0.75 + 0.5 * (y_foot / H - 0.6) / 0.35) * self.zoom  # nearer (lower) is bigger
        probe = _Visit(kind, colour, 0, 0.0, 1.0, 0.0, 0, y_foot, scale, 0, 0, (0, 0), "")
        ex = _extent(probe, 0.0)
        obj_w = ex[2] - ex[0]
        left_to_right = bool(rng.random() < 0.5)
        dist = W + obj_w + 4
        speed = dist / (cross_s * fps)
        x0, stop_x = (-obj_w - 2, W * rng.uniform(0.25, 0.6)) if left_to_right else (W + 2, W * rng.uniform(0.2, 0.55))
        if not left_to_right:
            speed = -speed
        pause = int(round(pause_s * fps))
        total = int(math.ceil(dist / abs(speed))) + pause + 2
        room = self.slot - int(2 * fps) - total  # at least 1 s of empty scene before and after
        if room < 0:  # a very low fps: squeeze the visit into the slot
            pause, total = 0, int(math.ceil(dist / abs(speed))) + 2
            room = max(0, self.slot - total)
        start = k * self.slot + int(fps) + int(rng.integers(0, room + 1)) if room > 0 else k * self.slot
        direction = "left to right" if left_to_right else "right to left"
        verb = {"person": "walks", "dog": "runs", "car": "drives"}[kind]
        desc = f"{colour} {kind} {verb} {direction}"
        if pause:
            desc += f", stops {pause / fps:.1f} s"
        visit = _Visit(kind, colour, start, float(x0), float(speed), float(stop_x), pause, float(y_foot), scale,
                       int(rng.integers(0, len(_SKIN))), int(rng.integers(0, len(_TROUSERS))), (0, 0), desc)
        seen = [f for f in range(start, start + total + 1)
                if _in_view(_extent(visit, visit.x_at(f)), W, H)]
        if not seen:
            return None
        end = min(seen[-1] + 1, (k + 1) * self.slot)
        return dataclasses.replace(visit, visible=(seen[0], end))


# ---------------------------------------------------------------------- the fixed scene


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((max(2, h * cells // w), cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.float32)
    horizon, curb = int(0.58 * H), int(0.76 * H)
    wall = np.array(rng.choice([(150, 170, 190), (120, 140, 170), (170, 170, 165), (110, 120, 150)]), np.float32)
    img[:horizon] = wall
    img[horizon:curb] = _SIDEWALK
    img[curb:] = (75, 75, 78)                  # asphalt
    u8 = np.zeros((H, W, 3), np.uint8)
    # Bricks: mortar lines, staggered joints.
    brick_h = max(3, H // 45)
    brick_w = brick_h * 3
    for row, y in enumerate(range(0, horizon, brick_h)):
        cv2.line(u8, (0, y), (W, y), (1, 1, 1), 1)
        for x in range((row % 2) * brick_w // 2, W, brick_w):
            cv2.line(u8, (x, y), (x, min(horizon, y + brick_h)), (1, 1, 1), 1)
    img[u8[..., 0] == 1] *= 0.8
    u8[:] = 0
    # Windows with frames, and a door.
    win_w, win_h = int(0.09 * W), int(0.16 * H)
    for i in range(5):
        x = int((0.06 + i * 0.2) * W)
        if i == 2:
            cv2.rectangle(img, (x, horizon - int(0.3 * H)), (x + int(0.1 * W), horizon), (40, 55, 80), -1)
            cv2.rectangle(img, (x, horizon - int(0.3 * H)), (x + int(0.1 * W), horizon), (25, 30, 40), 2)
            cv2.circle(img, (x + int(0.085 * W), horizon - int(0.15 * H)), max(1, H // 120), (60, 170, 200), -1)
            continue
        for y in (int(0.07 * H), int(0.3 * H)):
            cv2.rectangle(img, (x, y), (x + win_w, y + win_h), (95, 70, 55), -1)
            cv2.rectangle(img, (x + 2, y + 2), (x + win_w - 2, y + win_h // 2), (135, 110, 90), -1)  # sky reflection
            cv2.rectangle(img, (x, y), (x + win_w, y + win_h), (225, 225, 220), max(1, W // 320))
            cv2.line(img, (x + win_w // 2, y), (x + win_w // 2, y + win_h), (225, 225, 220), max(1, W // 400))
    # Sidewalk slabs and curb.
    for x in range(0, W, max(8, W // 12)):
        cv2.line(img, (x, horizon), (x - int(0.05 * W), curb), (120, 120, 118), 1, cv2.LINE_AA)
    cv2.line(img, (0, int(0.67 * H)), (W, int(0.67 * H)), (128, 128, 126), 1, cv2.LINE_AA)
    cv2.rectangle(img, (0, curb - max(2, H // 90)), (W, curb), (185, 185, 180), -1)
    # Lane markings.
    for x in range(0, W, max(20, W // 6)):
        cv2.rectangle(img, (x, int(0.89 * H)), (x + max(8, W // 14), int(0.89 * H) + max(2, H // 120)),
                      (200, 205, 210), -1)
    # Tree, lamp post, bench, bin.
    tx = int(0.86 * W)
    cv2.rectangle(img, (tx - W // 110, int(0.35 * H)), (tx + W // 110, int(0.66 * H)), (40, 60, 80), -1)
    for _ in range(14):
        cx, cy = tx + int(rng.normal(0, 0.035 * W)), int(0.25 * H + rng.normal(0, 0.06 * H))
        shade = rng.uniform(0.6, 1.1)
        cv2.circle(img, (cx, cy), int(rng.uniform(0.03, 0.06) * W), (40 * shade, 110 * shade, 55 * shade), -1,
                   cv2.LINE_AA)
    lx = int(0.68 * W)
    cv2.rectangle(img, (lx - 2, int(0.2 * H)), (lx + 2, int(0.7 * H)), (45, 45, 45), -1)
    cv2.rectangle(img, (lx - W // 70, int(0.18 * H)), (lx + W // 70, int(0.22 * H)), (60, 60, 60), -1)
    cv2.rectangle(img, (lx - W // 90, int(0.22 * H)), (lx + W // 90, int(0.235 * H)), (170, 235, 245), -1)
    bx, by = int(0.14 * W), int(0.64 * H)
    cv2.rectangle(img, (bx, by - H // 30), (bx + int(0.12 * W), by - H // 45), (40, 80, 120), -1)
    cv2.rectangle(img, (bx, by - H // 14), (bx + int(0.12 * W), by - H // 20), (40, 80, 120), -1)
    for lxb in (bx + 3, bx + int(0.12 * W) - 6):
        cv2.rectangle(img, (lxb, by - H // 30), (lxb + 3, by), (35, 35, 35), -1)
    cv2.rectangle(img, (int(0.5 * W), int(0.6 * H)), (int(0.53 * W), int(0.66 * H)), (50, 90, 50), -1)
    # Texture, vignetting.
    tex = (7.0 * _smooth_noise(rng, W, H, 8) + 4.0 * _smooth_noise(rng, W, H, 40)
           + 3.0 * _smooth_noise(rng, W, H, W // 3))
    img += tex[..., None]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    img *= (1.0 - 0.18 * r2)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.6)  # optics are never pixel sharp
    return np.clip(img, 0, 255).astype(np.uint8)


def _noise_bank(rng: np.random.Generator, W: int, H: int, sigma: float) -> tuple[list, list]:
    pos, neg = [], []
    for _ in range(_NOISE_BANK if sigma > 0 else 0):
        n = rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(sigma)
        pos.append(np.clip(n, 0, 255).astype(np.uint8))
        neg.append(np.clip(-n, 0, 255).astype(np.uint8))
    return pos, neg


# ---------------------------------------------------------------------- moving objects


def _extent(v: _Visit, x: float) -> tuple[float, float, float, float]:
    """Box around everything drawn for the object (shadow and swinging limbs included), left edge at ``x``."""
    h = _height(v)
    pad = 0.04 * h + 2  # line caps and antialiasing
    width = {"person": 0.5, "dog": 1.6, "car": 2.6}[v.kind] * h + 2 * pad
    return x, v.y_foot - h - pad, x + width, v.y_foot + pad


def drawn_box(v: _Visit, frame: int) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (exclusive) of the pixels drawn for a visitor at ``frame``, its shadow aside, in
    image coordinates and unclipped (None: it draws nothing). Ground truth of whether the visitor is whole in
    view: :func:`_extent` pads for the widest swing of the limbs and for antialiasing, and a walker whose
    padding, not body, reached past the border was labelled cut (benchmarks/QUALITY.md, finding 25)."""
    x0, y0, x1, y1 = _extent(v, v.x_at(frame))
    # drawn into a canvas that holds the padded box: the visitor moved right by mx (its size follows its foot
    # line, so it is not moved up or down; no visitor reaches above the view's top)
    mx = 4 - math.floor(x0)
    canvas = np.zeros((max(0, int(math.ceil(y1))) + 9, int(math.ceil(x1 - x0)) + 9, 3), np.uint8)
    _draw(canvas, dataclasses.replace(v, x0=v.x0 + mx, stop_x=v.stop_x + mx), frame, 1.0, 0.0, shadow=False)
    ys, xs = np.nonzero(canvas.max(axis=2))
    if len(xs) == 0:
        return None
    top = int(ys.min()) if y0 >= 0 else math.floor(y0)
    return int(xs.min()) - mx, top, int(xs.max()) + 1 - mx, int(ys.max()) + 1


def _height(v: _Visit) -> float:
    """Object height in pixels; sizes follow the ground line (lower in the image is nearer and bigger)."""
    if v.kind == "person":
        return 0.27 * v.y_foot / 0.7 * v.scale
    if v.kind == "dog":
        return 0.13 * v.y_foot / 0.7 * v.scale
    return 0.22 * v.y_foot / 0.9 * v.scale


def _in_view(box: tuple[float, float, float, float], W: int, H: int) -> bool:
    x0, y0, x1, y1 = box
    return x1 > 0 and x0 < W and y1 > 0 and y0 < H


def _tint(colour: tuple, gain: float, offset: float) -> tuple:
    return tuple(float(min(255.0, max(0.0, c * gain + offset))) for c in colour)


def _shadow(img: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> None:
    x0, x1 = max(0, int(cx - rx)), min(img.shape[1], int(cx + rx) + 1)
    y0, y1 = max(0, int(cy - ry)), min(img.shape[0], int(cy + ry) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    dark = roi.copy()
    cv2.ellipse(dark, (int(cx) - x0, int(cy) - y0), (max(1, int(rx)), max(1, int(ry))), 0, 0, 360, (0, 0, 0), -1,
                cv2.LINE_AA)
    cv2.addWeighted(roi, 0.6, dark, 0.4, 0, dst=roi)


def _draw(img: np.ndarray, v: _Visit, frame: int, gain: float, offset: float, shadow: bool = True) -> None:
    x = v.x_at(frame)
    bx0, _, bx1, _ = _extent(v, x)
    cx = (bx0 + bx1) / 2
    h = _height(v)
    w = {"person": 0.32, "dog": 1.6, "car": 2.6}[v.kind] * h
    x0, x1, y1 = cx - w / 2, cx + w / 2, v.y_foot
    y0 = y1 - h
    col = _tint(_COLOURS[v.colour], gain, offset)
    moving = v.moving(frame)
    direction = 1 if v.speed > 0 else -1
    aa = cv2.LINE_AA
    P = lambda px, py: (int(round(px)), int(round(py)))  # noqa: E731 - tiny local helper
    if v.kind == "person":
        if shadow:
            _shadow(img, cx, y1, 0.2 * h, h * 0.03 + 1)
        phase = math.sin(frame * 2 * math.pi / 22.0) if moving else 0.0
        hip, shoulder = y1 - 0.47 * h, y1 - 0.82 * h
        leg = max(2, int(w * 0.22))
        trousers = _tint(_TROUSERS[v.trousers], gain, offset)
        for sgn in (1, -1):
            cv2.line(img, P(cx, hip), P(cx + sgn * phase * 0.18 * h, y1 - leg / 2), trousers, leg, aa)
        cv2.ellipse(img, P(cx, (hip + shoulder) / 2 + 0.02 * h), (max(1, int(w * 0.42)), max(1, int(0.22 * h))),
                    0, 0, 360, col, -1, aa)
        arm = max(2, int(w * 0.14))
        for sgn in (1, -1):
            cv2.line(img, P(cx, shoulder + 0.03 * h), P(cx - sgn * phase * 0.12 * h, hip + 0.02 * h),
                     _tint(_COLOURS[v.colour], gain * 0.85, offset), arm, aa)
        skin = _tint(_SKIN[v.skin], gain, offset)
        r = max(2, int(0.075 * h))
        head = P(cx + direction * 0.02 * h, shoulder - r * 1.1)
        cv2.circle(img, head, r, skin, -1, aa)
        cv2.ellipse(img, (head[0], head[1] - r // 3), (r, max(1, int(r * 0.75))), 0, 180, 360,
                    _tint((30, 35, 45), gain, offset), -1, aa)
    elif v.kind == "dog":
        if shadow:
            _shadow(img, cx, y1, w * 0.45, h * 0.03 + 1)
        phase = math.sin(frame * 2 * math.pi / 10.0) if moving else 0.0
        body_y = y1 - 0.55 * h
        cv2.ellipse(img, P(cx, body_y), (max(1, int(0.34 * w)), max(1, int(0.22 * h))), 0, 0, 360, col, -1, aa)
        leg = max(2, int(0.09 * w))
        for dx, sgn in ((-0.22, 1), (0.22, -1)):
            cv2.line(img, P(cx + dx * w, body_y), P(cx + dx * w + sgn * phase * 0.1 * w, y1), col, leg, aa)
        head = P(cx + direction * 0.36 * w, body_y - 0.25 * h)
        cv2.circle(img, head, max(2, int(0.18 * h)), col, -1, aa)
        cv2.circle(img, (head[0] + direction * max(1, int(0.1 * h)), head[1]), max(1, int(0.04 * h)),
                   _tint((20, 20, 20), gain, offset), -1, aa)
        cv2.line(img, P(cx - direction * 0.33 * w, body_y), P(cx - direction * 0.45 * w, body_y - 0.35 * h), col,
                 max(1, leg // 2 + 1), aa)
    else:
        if shadow:
            _shadow(img, cx, y1 - 0.02 * h, w * 0.5, h * 0.04 + 1)
        body_top = y1 - 0.62 * h
        cv2.rectangle(img, P(x0, body_top), P(x1, y1 - 0.2 * h), col, -1, aa)
        cabin = np.array([P(x0 + 0.2 * w, body_top), P(x0 + 0.3 * w, y0), P(x0 + 0.7 * w, y0),
                          P(x0 + 0.82 * w, body_top)], np.int32)
        cv2.fillPoly(img, [cabin], col, aa)
        glass = _tint((110, 90, 70), gain, offset)
        cv2.fillPoly(img, [np.array([P(x0 + 0.26 * w, body_top), P(x0 + 0.33 * w, y0 + 0.08 * h),
                                     P(x0 + 0.49 * w, y0 + 0.08 * h), P(x0 + 0.49 * w, body_top)], np.int32),
                           np.array([P(x0 + 0.52 * w, body_top), P(x0 + 0.52 * w, y0 + 0.08 * h),
                                     P(x0 + 0.67 * w, y0 + 0.08 * h), P(x0 + 0.76 * w, body_top)], np.int32)],
                     glass, aa)
        r = max(2, int(0.2 * h))
        tyre, hub = _tint((25, 25, 25), gain, offset), _tint((150, 150, 150), gain, offset)
        for fx in (0.2, 0.8):
            c = P(x0 + fx * w, y1 - r)
            cv2.circle(img, c, r, tyre, -1, aa)
            cv2.circle(img, c, max(1, r // 2), hub, -1, aa)
        front = x1 - 0.04 * w if direction > 0 else x0
        cv2.rectangle(img, P(front, body_top + 0.1 * h), P(front + 0.04 * w, body_top + 0.22 * h),
                      _tint((150, 230, 250), gain, offset), -1)


# ---------------------------------------------------------------------- the source


_OPTIONS = {"seed": int, "width": int, "height": int, "fps": float, "frames": int, "noise": float, "lighting": bool,
            "zoom": float, "slot": float}
_BOUNDS = {"width": (16, 7680), "height": (16, 4320), "fps": (0.1, 1000.0), "frames": (1, None),
           "noise": (0.0, 50.0), "seed": (0, None), "zoom": (0.25, 3.0), "slot": (4.0, 600.0)}


def parse_demo_url(url: str, name: str = "demo") -> dict:
    """Options of a ``demo://`` URL, checked; raises :class:`SourceError` naming a bad option."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "demo":
        raise SourceError(f"source {name!r}: not a demo URL: {url}")
    opts: dict = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise SourceError(f"source {name!r}: unknown demo option {key!r} in {url} "
                              f"(allowed: {', '.join(_OPTIONS)})")
        if key in opts:
            raise SourceError(f"source {name!r}: demo option {key!r} given twice in {url}")
        kind = _OPTIONS[key]
        try:
            if kind is bool:
                if raw.lower() not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = raw.lower() in ("1", "true", "yes", "on")
            else:
                value = kind(raw)
                if kind is float and not math.isfinite(value):
                    raise ValueError
        except ValueError:
            raise SourceError(f"source {name!r}: demo option {key}={raw!r} in {url} must be "
                              f"{'a whole number' if kind is int else 'a number' if kind is float else '0 or 1'}"
                              ) from None
        lo, hi = _BOUNDS.get(key, (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"at least {lo}" + (f" and at most {hi}" if hi is not None else "")
            raise SourceError(f"source {name!r}: demo option {key}={raw} in {url} must be {rng}")
        opts[key] = value
    return opts


class DemoSource(Source):
    """The synthetic camera as a :class:`~edgefilter.source.Source`. Live when paced in real time."""

    kind = "demo camera"

    def __init__(self, name: str, url: str, *, realtime: bool = False, loop: bool = False):
        opts = parse_demo_url(url, name)
        frames = opts.get("frames")
        super().__init__(name, url, live=realtime, finite=frames is not None and not loop,
                         fps=float(opts.get("fps", 30.0)))
        self.opts = opts
        self.loop = loop
        self.scene: DemoScene | None = None
        self._pos = 0
        self._base = 0

    def open(self) -> None:
        if self.scene is None:
            self.scene = DemoScene(**self.opts)
            self.size = (self.scene.width, self.scene.height)

    def read(self) -> tuple[int, np.ndarray] | None:
        if self.scene is None:
            raise self._error("demo camera is not open")
        frames = self.scene.frames
        if frames is not None and self._pos >= frames:
            if not self.loop:
                return None
            self._base += frames
            self._pos = 0
        index = self._base + self._pos
        img = self.scene.render(self._pos)
        self._pos += 1
        return index, img

    def describe(self) -> str:
        return f"demo camera {self.url}"
