"""Labelled streams for the quality benchmark, and how a selection of kept frames is scored.

A :class:`Stream` is a long sequence of frames, each one a *render key*: an index into the stream's
table of :class:`Render` specs (an origin frame plus a perturbation). Long unchanged periods are
built by repeating a few origin frames under a small bank of perturbations, so a stream of many
minutes needs only a few thousand distinct images to be embedded: a key that repeats reuses its
features. Consecutive frames never share a key (a real camera never sends the same pixels twice).

Every frame carries a ground-truth ``state`` (what is in view: a person, a table state, a visitor;
None for transitional frames such as a hand moving a bottle) and a ``static`` flag (part of a
stretched unchanged period). Events, recall, redundancy and delay all follow from those labels;
see :func:`events_of` and :func:`score`.

Origins: the synthetic demo camera (``edgefilter.demo``), a synthetic scene where small objects
are left and taken away, and, when ``../shared/data`` is present, the ASL clips and the bottle clip
(read from there, never copied).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

# ----------------------------------------------------------------------------- perturbations


@dataclass(frozen=True)
class Perturb:
    """What a real camera does to a frame: exposure and flicker (gain/offset), sensor noise,
    compression, shake. Applied in that order."""

    gain: float = 1.0
    offset: float = 0.0
    noise: float = 0.0     # Gaussian sigma in grey levels
    seed: int = 0          # noise pattern
    jpeg: int = 0          # JPEG quality of a re-encode; 0: none
    dx: int = 0            # jitter in pixels
    dy: int = 0

    def apply(self, img: np.ndarray) -> np.ndarray:
        out = img
        if self.gain != 1.0 or self.offset != 0.0:
            out = cv2.convertScaleAbs(out, alpha=self.gain, beta=self.offset)
        if self.dx or self.dy:
            m = np.float32([[1, 0, self.dx], [0, 1, self.dy]])
            out = cv2.warpAffine(out, m, (out.shape[1], out.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        if self.noise > 0:
            rng = np.random.default_rng(self.seed)
            n = rng.normal(0.0, self.noise, out.shape).astype(np.float32)
            out = np.clip(out.astype(np.float32) + n, 0, 255).astype(np.uint8)
        if self.jpeg:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg)])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.ascontiguousarray(out)


EXPOSURE_LEVELS = (0.8, 1.0, 1.2)  # auto-exposure steps: gain held for tens of seconds


class Nuisance:
    """Draws perturbations: a piecewise-constant exposure level plus per-frame flicker, noise,
    JPEG and jitter. ``bank`` perturbations are a fixed set per exposure level (for repeats)."""

    def __init__(self, seed: int, fps: float, bank: int = 6, step_s: tuple[float, float] = (20.0, 45.0)):
        self.rng = np.random.default_rng(seed)
        self.fps = fps
        self.bank_size = bank
        self.step_s = step_s
        self.level = 1
        self._next_step = self._draw_step()
        self._frame = 0
        brng = np.random.default_rng([seed, 99])
        self._bank = [[self._draw(brng, lvl) for _ in range(bank)] for lvl in range(len(EXPOSURE_LEVELS))]
        self._last_j = -1

    def _draw_step(self) -> int:
        return int(self.rng.uniform(*self.step_s) * self.fps)

    def _draw(self, rng: np.random.Generator, level: int) -> Perturb:
        flicker = 1.0 + rng.uniform(-0.08, 0.08)
        return Perturb(gain=round(EXPOSURE_LEVELS[level] * flicker, 3), offset=round(float(rng.uniform(-6, 6)), 1),
                       noise=round(float(rng.uniform(2.0, 6.0)), 1), seed=int(rng.integers(1 << 30)),
                       jpeg=int(rng.choice([0, 50, 70, 85])), dx=int(rng.integers(-3, 4)), dy=int(rng.integers(-2, 3)))

    def tick(self) -> None:
        """Advance one frame of stream time (exposure steps happen here)."""
        self._frame += 1
        if self._frame >= self._next_step:
            self._frame = 0
            self._next_step = self._draw_step()
            self.level = int(self.rng.choice([l for l in range(len(EXPOSURE_LEVELS)) if l != self.level]))

    def fresh(self) -> Perturb:
        """A perturbation used once (a frame that is itself new)."""
        return self._draw(self.rng, self.level)

    def banked(self) -> tuple[int, Perturb]:
        """A perturbation from the bank of the current level, never the same index twice in a row."""
        j = int(self.rng.integers(self.bank_size - 1))
        if j >= self._last_j >= 0:
            j += 1
        self._last_j = j
        return j, self._bank[self.level][j]


# ----------------------------------------------------------------------------- origins


class Origin:
    """Frames of one clip or synthetic scene, by frame number (BGR uint8)."""

    name: str

    def frame(self, n: int) -> np.ndarray:
        raise NotImplementedError


class VideoOrigin(Origin):
    """A video file, decoded whole on first use and released with :meth:`release`."""

    def __init__(self, name: str, path: Path, step: int = 1):
        self.name, self.path, self.step = name, Path(path), step
        self._frames: dict[int, np.ndarray] | None = None
        cap = cv2.VideoCapture(str(self.path))
        self.count = 0
        while cap.grab():  # containers' frame counts can be wrong (mkv): count what decodes
            self.count += 1
        cap.release()

    def _load(self) -> dict[int, np.ndarray]:
        cap = cv2.VideoCapture(str(self.path))
        frames: dict[int, np.ndarray] = {}
        n = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if n % self.step == 0:
                frames[n] = img
            n += 1
        cap.release()
        self.count = n
        return frames

    def frame(self, n: int) -> np.ndarray:
        if self._frames is None:
            self._frames = self._load()
        return self._frames[n]

    def release(self) -> None:
        self._frames = None


class DemoOrigin(Origin):
    def __init__(self, name: str, scene):
        self.name, self.scene = name, scene

    def frame(self, n: int) -> np.ndarray:
        return self.scene.render(n)


LOOKS = ("mirror", "night", "small", "rain", "haze")


class LookOrigin(Origin):
    """Another camera's look at an origin's frames, in the order given: ``mirror`` (flipped left to right:
    things come in at the other border), ``night`` (an IR camera at night: grey, half the contrast, which
    auto-gain lifts off black, and more sensor noise), ``small`` (half the width and height: a 320x180
    camera), ``rain`` (an overcast day's light and streaks of falling drops, new ones in every frame: see
    :func:`in_rain`), ``haze`` (fog or a milky dome cover: see :func:`in_haze`). For the streams first run in
    findings 34 (mirror, night, small) and 78 (rain, haze): the defaults met no such camera while they were made."""

    NIGHT_CONTRAST, NIGHT_LIFT, NIGHT_NOISE = 0.5, 60.0, 5.0

    def __init__(self, inner: Origin, looks: Sequence[str]):
        unknown = [x for x in looks if x not in LOOKS]
        if unknown:
            raise ValueError(f"unknown look {unknown} (known: {', '.join(LOOKS)})")
        self.inner, self.looks = inner, tuple(looks)
        self.name = "+".join((inner.name,) + self.looks)
        self.count = getattr(inner, "count", None)

    def frame(self, n: int) -> np.ndarray:
        img = self.inner.frame(n)
        for look in self.looks:
            if look == "mirror":
                img = img[:, ::-1]
            elif look == "night":
                img = at_night(img, n)
            elif look == "haze":
                img = in_haze(img)
            elif look == "small":
                img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img)

    def weather(self, image: np.ndarray, n: int, seed: int) -> np.ndarray:
        """What falls between the camera and frame ``n`` of the scene in the render with perturbation seed
        ``seed`` (a held scene repeats its frames, its rain does not): rain when the look has it, after the
        others (at night the IR lamp lights the drops)."""
        return in_rain(image, n, seed) if "rain" in self.looks else image

    def release(self) -> None:
        if hasattr(self.inner, "release"):
            self.inner.release()


def at_night(image: np.ndarray, n: int) -> np.ndarray:
    """``image`` (BGR) as an IR camera at night sees it (:class:`LookOrigin`'s ``night``), with the sensor noise of
    frame ``n``."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * LookOrigin.NIGHT_CONTRAST + LookOrigin.NIGHT_LIFT
    g += np.random.default_rng([n, 17]).normal(0.0, LookOrigin.NIGHT_NOISE, g.shape).astype(np.float32)
    return cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


RAIN_DENSITY = 1.1e-3     # streaks per pixel: about 250 in a 640x360 frame, a steady rain close to the lens
RAIN_LIGHT = 0.85         # an overcast day's light against a clear one


def in_rain(image: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``image`` (BGR) with streaks of falling rain lit against it, 12-28 px long at 640 px wide and blown
    a little off the vertical, drawn anew for frame ``n`` of the scene and perturbation seed ``seed``; by day
    under an overcast sky (RAIN_LIGHT; at night the IR lamp's light is the same)."""
    h, w = image.shape[:2]
    scale = w / 640.0
    rng = np.random.default_rng([n, seed, 23])
    k = int(RAIN_DENSITY * w * h)
    x0, y0 = rng.uniform(0, w, k), rng.uniform(-30 * scale, h, k)
    length, angle = rng.uniform(12, 28, k) * scale, np.deg2rad(rng.normal(78.0, 3.0, k))
    x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
    lit = rng.uniform(25, 60, k)
    drops = np.zeros((h, w), np.float32)
    for a, b, c, d, v in zip(x0.astype(int), y0.astype(int), x1.astype(int), y1.astype(int), lit):
        cv2.line(drops, (int(a), int(b)), (int(c), int(d)), float(v), max(1, round(scale)), cv2.LINE_AA)
    out = image.astype(np.float32) * RAIN_LIGHT + drops[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


HAZE_VEIL, HAZE_CLEAR = (205.0, 200.0, 196.0), 0.45   # BGR of the veil; the share of the scene's light let through


def in_haze(image: np.ndarray) -> np.ndarray:
    """``image`` (BGR) through fog or a dome cover gone milky: the veil's light over every pixel (a bright grey,
    a little blue) leaves HAZE_CLEAR of the scene's contrast, and the scattered light softens its edges."""
    out = image.astype(np.float32) * HAZE_CLEAR + np.float32(HAZE_VEIL) * (1.0 - HAZE_CLEAR)
    out = cv2.GaussianBlur(out, (0, 0), 1.2 * image.shape[1] / 640.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def looked(origin: Origin, looks: Sequence[str]) -> Origin:
    """``origin`` through :class:`LookOrigin` (itself when ``looks`` is empty)."""
    return LookOrigin(origin, looks) if looks else origin


def look_suffix(looks: Sequence[str]) -> str:
    return "".join(f"-{x}" for x in looks)


def rate_suffix(fps: float) -> str:
    """A stream name's frame-rate part: none at the corpus's usual 10 fps, "-30fps" at 30."""
    return "" if fps == 10.0 else f"-{fps:g}fps"


LOOK_WORDS = {"mirror": "mirrored", "night": "an IR camera at night", "small": "320x180", "rain": "in the rain",
              "haze": "through haze"}


def look_words(looks: Sequence[str]) -> str:
    """What a stream's description adds for its looks ("" for none)."""
    return f"; seen by another camera: {', '.join(LOOK_WORDS[x] for x in looks)}" if looks else ""


class ObjectsOrigin(Origin):
    """A static street (the demo background, no visitors) where small objects are left and taken
    away. Frame ``n`` is the scene with the object set ``states[n]``."""

    OBJECTS = {  # name: (x, y, w, h, BGR, shape) in a 640x360 frame; 0.2 % to 1.5 % of the image each
        "bag": (250, 280, 34, 40, (40, 40, 160), "rect"),
        "box": (430, 290, 56, 44, (60, 110, 170), "rect"),
        "ball": (120, 315, 22, 22, (30, 200, 230), "ellipse"),
        "cone": (540, 270, 26, 48, (20, 120, 250), "triangle"),
        "case": (330, 300, 70, 36, (90, 90, 90), "rect"),
        "bottle": (60, 290, 12, 34, (60, 160, 60), "rect"),
    }

    def __init__(self, name: str, states: Sequence[tuple[str, ...]], seed: int = 3):
        from edgefilter.demo import DemoScene

        self.name, self.states = name, list(states)
        scene = DemoScene(seed=seed, width=640, height=360, fps=30.0, noise=0.0, lighting=False)
        empty = next(f for f in range(0, 10_000, 7) if not scene.objects_at(f))
        self.background = scene.render(empty)

    def frame(self, n: int) -> np.ndarray:
        img = self.background.copy()
        for obj in self.states[n]:
            x, y, w, h, colour, shape = self.OBJECTS[obj]
            shade = tuple(int(c * 0.6) for c in colour)
            if shape == "rect":
                cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
                cv2.rectangle(img, (x, y), (x + w, y + h), shade, 2)
            elif shape == "ellipse":
                cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)
            else:
                pts = np.array([[x + w // 2, y], [x, y + h], [x + w, y + h]], np.int32)
                cv2.fillPoly(img, [pts], colour)
            cv2.ellipse(img, (x + w // 2, y + h + 2), (w // 2 + 3, 4), 0, 0, 360, (40, 40, 40), -1)  # shadow
        return img


# ----------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class Render:
    origin: str
    frame: int
    perturb: Perturb


@dataclass
class Stream:
    name: str
    fps: float
    description: str
    renders: list[Render]            # distinct images; keys index this
    keys: np.ndarray                 # (n,) int: the render shown at each frame
    state: list[str | None]          # ground truth per frame (None: transitional, not an event)
    static: np.ndarray               # (n,) bool: part of a stretched unchanged period
    origins: dict[str, Origin] = field(default_factory=dict)
    novel_only: bool = True          # events are first appearances of a state (a returning state is a repeat)
    hand: np.ndarray | None = None   # (n,) bool: a hand in view moving things (labelled), where known

    def __len__(self) -> int:
        return len(self.keys)

    def image(self, i: int) -> np.ndarray:
        """The perturbed BGR image of frame ``i``."""
        return self.render_image(int(self.keys[i]))

    def release(self) -> None:
        """Free the decoded frames of video origins (they decode again on next use)."""
        for o in self.origins.values():
            if hasattr(o, "release"):
                o.release()

    def render_image(self, key: int) -> np.ndarray:
        r = self.renders[key]
        origin = self.origins[r.origin]
        img = origin.frame(r.frame)
        if isinstance(origin, LookOrigin):  # the weather before the camera: rain falls anew in every render
            img = origin.weather(img, r.frame, r.perturb.seed)
        return r.perturb.apply(img)


def render_batches(stream: Stream, size: int = 16) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Every distinct render of a stream once, as (keys, images) batches of at most ``size``, in origin then
    frame order (a video decodes forward once); an origin's decoded frames are freed when the renders move
    past it, and all of them at the end."""
    order = sorted(range(len(stream.renders)), key=lambda k: (stream.renders[k].origin, stream.renders[k].frame))
    keys: list[int] = []
    images: list[np.ndarray] = []
    current = None
    for k in order:
        origin = stream.renders[k].origin
        if current is not None and origin != current and hasattr(stream.origins[current], "release"):
            stream.origins[current].release()
        current = origin
        keys.append(k)
        images.append(stream.render_image(k))
        if len(keys) == size:
            yield keys, images
            keys, images = [], []
    if keys:
        yield keys, images
    stream.release()


class StreamBuilder:
    """Appends frames to a stream, deduplicating render specs."""

    def __init__(self, name: str, fps: float, description: str, seed: int):
        self.name, self.fps, self.description = name, fps, description
        self.nuisance = Nuisance(seed, fps)
        self._render_no: dict[Render, int] = {}
        self.renders: list[Render] = []
        self.keys: list[int] = []
        self.state: list[str | None] = []
        self.static: list[bool] = []
        self.origins: dict[str, Origin] = {}

    def _key(self, r: Render) -> int:
        k = self._render_no.get(r)
        if k is None:
            k = self._render_no[r] = len(self.renders)
            self.renders.append(r)
        return k

    def perturbation(self, p: Perturb) -> Perturb:
        """The perturbation of the next frame, as drawn (subclasses add to it, e.g. a daylight ramp)."""
        return p

    def add(self, origin: Origin, frame: int, state: str | None, perturb: Perturb | None = None) -> None:
        """One frame shown once, with a fresh perturbation unless given."""
        self.origins[origin.name] = origin
        p = self.perturbation(perturb if perturb is not None else self.nuisance.fresh())
        self.keys.append(self._key(Render(origin.name, frame, p)))
        self.state.append(state)
        self.static.append(False)
        self.nuisance.tick()

    def hold(self, origin: Origin, frames: Sequence[int], seconds: float, state: str | None) -> None:
        """A long unchanged period: ping-pong over ``frames`` under banked perturbations."""
        self.origins[origin.name] = origin
        cycle = list(frames) + list(frames[-2:0:-1]) if len(frames) > 1 else list(frames)
        for i in range(int(round(seconds * self.fps))):
            _, p = self.nuisance.banked()
            self.keys.append(self._key(Render(origin.name, cycle[i % len(cycle)], self.perturbation(p))))
            self.state.append(state)
            self.static.append(True)
            self.nuisance.tick()

    def build(self, novel_only: bool = True) -> Stream:
        return Stream(self.name, self.fps, self.description, self.renders, np.asarray(self.keys, np.int64),
                      self.state, np.asarray(self.static, bool), self.origins, novel_only)


def demo_stream(seconds: float, fps: float = 5.0, seed: int = 1) -> Stream:
    """The synthetic demo camera: visitors cross a street; lighting drift, exposure steps, flicker and
    noise are the demo's own; JPEG and jitter are added. Every frame is distinct."""
    from edgefilter.demo import DemoScene

    n = int(round(seconds * fps))
    scene = DemoScene(seed=seed, fps=fps, frames=n)
    origin = DemoOrigin("demo", scene)
    b = StreamBuilder("synthetic-demo", fps, f"edgefilter demo camera (seed {seed}), {fps:g} fps", seed)
    state: list[str] = ["empty"] * n
    for k, ev in enumerate(scene.events):
        for f in range(ev.start, ev.end):
            state[f] = f"visit {k}: {ev.description}"
    rng = np.random.default_rng([seed, 5])
    for f in range(n):
        p = Perturb(jpeg=int(rng.choice([0, 60, 80])), dx=int(rng.integers(-2, 3)), dy=int(rng.integers(-2, 3)))
        b.add(origin, f, state[f], p)
    s = b.build()
    s.static = np.array([st == "empty" for st in state], bool)
    return s


OBJECT_STATES = [(), ("bag",), ("bag", "box"), ("box",), ("box", "ball"), ("box", "ball", "cone"),
                 ("ball", "cone"), (), ("case",), ("case", "bottle"), ("box",)]
# how long each state lasts, in units of hold_s: irregular, as real events are (a uniform sampler
# tuned to one fixed period would otherwise look better than it is)
OBJECT_HOLDS = [1.0, 0.25, 2.0, 0.5, 1.5, 0.3, 1.0, 2.5, 0.4, 1.2, 0.8]


def objects_stream(hold_s: float, fps: float = 10.0, seed: int = 2) -> Stream:
    """Small objects left in a static street and taken away, each state held ``hold_s`` seconds;
    two states come back later (the empty street, the box alone)."""
    origin = ObjectsOrigin("objects", OBJECT_STATES)
    b = StreamBuilder("synthetic-objects", fps, f"small objects left/taken in a static scene, {hold_s:g} s per state",
                      seed)
    for n, objs in enumerate(OBJECT_STATES):
        name = "+".join(objs) or "empty"
        b.add(origin, n, name)  # the first frame of a state: the change itself
        b.hold(origin, [n], hold_s * OBJECT_HOLDS[n], name)
    return b.build()


def load_labels(data: Path) -> dict:
    return json.loads((Path(data) / "labels.json").read_text())


def hold_lengths(hold_s: float, spread: float, count: int, seed: int) -> list[float]:
    """``count`` hold durations: all ``hold_s`` when ``spread`` is 1, else log-uniform between
    ``hold_s / spread`` and ``hold_s * spread`` (seeded). Real unchanged periods last anything from
    seconds to hours; with one fixed length, uniform sampling at that period catches every state
    with one frame each and looks far better than it is on a real camera."""
    if spread <= 1.0:
        return [hold_s] * count
    rng = np.random.default_rng([seed, 7])
    return [float(hold_s * math.exp(x)) for x in rng.uniform(-math.log(spread), math.log(spread), count)]


def asl_stream(data: Path, hold_s: float, fps: float = 10.0, seed: int = 0, clips: int | None = None,
               hold_frames: int = 4, spread: float = 1.0, looks: Sequence[str] = ()) -> Stream:
    """Shuffled ASL clips (new person = new event), each followed by a hold of its last frames
    (``hold_s`` each, or irregular with ``spread`` > 1: see :func:`hold_lengths`).

    Consecutive clips of the same person are one event (the state does not change). With the
    default ``novel_only`` a person who comes back later is a repeat, not a new event.
    """
    labels = load_labels(data)["asl"]["clips"]
    rng = np.random.default_rng(seed)
    names = sorted(labels)
    order = [names[i] for i in rng.permutation(len(names))]
    if clips is not None:
        order = order[:clips]
    step = max(1, int(round(30.0 / fps)))
    holds = hold_lengths(hold_s, spread, len(order), seed)
    name = (f"asl-shuffle{seed}" if spread <= 1.0 else f"asl-irregular{seed}") + rate_suffix(fps) + look_suffix(looks)
    what = f"{hold_s:g} s hold after each" if spread <= 1.0 else f"holds of {min(holds):.0f}-{max(holds):.0f} s"
    b = StreamBuilder(name, fps, f"{len(order)} ASL clips shuffled (seed {seed}), {fps:g} fps, {what}"
                      f"{look_words(looks)}", seed)
    for clip, hold in zip(order, holds):
        origin = looked(VideoOrigin(f"asl/{clip}", Path(data) / "asl" / f"{clip}.mkv", step), looks)
        person = labels[clip]
        frames = list(range(0, origin.count, step))
        for f in frames:
            b.add(origin, f, f"person {person}")
        b.hold(origin, frames[-hold_frames:], hold, f"person {person}")
    return b.build()


def bottle_stream(data: Path, hold_s: float, fps: float = 10.0, seed: int = 0, hold_frames: int = 4,
                  margin: int = 6, spread: float = 1.0, looks: Sequence[str] = (), hold_margin: int | None = None
                  ) -> Stream:
    """The bottle clip, each table state stretched by ``hold_s`` seconds; hands in view are transitional
    (no state) and marked (``Stream.hand``). Frames within ``margin`` of a label boundary are unlabelled too
    (labels are +-5 frames); the hold's frames stay ``hold_margin`` (default: ``margin``) clear of the next hand."""
    hold_margin = margin if hold_margin is None else hold_margin
    lab = load_labels(data)["bottle-detection.mp4"]
    step = max(1, int(round(30.0 / fps)))
    origin = looked(VideoOrigin("bottle", Path(data) / "bottle-detection.mp4", step), looks)
    segments = table_segments(lab)
    holds = hold_lengths(hold_s, spread, len(segments), seed)
    name = (f"bottle-seed{seed}" if spread <= 1.0 else f"bottle-irregular{seed}") + rate_suffix(fps) + look_suffix(looks)
    what = f"{hold_s:g} s hold per table state" if spread <= 1.0 else f"holds of {min(holds):.0f}-{max(holds):.0f} s"
    b = StreamBuilder(name, fps, f"bottle clip, {fps:g} fps, {what}{look_words(looks)}", seed)
    for f in range(0, origin.count, step):
        seg = next((s for s in segments if s[0] <= f < s[1]), None)
        state = None
        if seg is not None and seg[0] + (margin if seg[0] > 0 else 0) <= f < seg[1] - margin:
            state = seg[2]
        b.add(origin, f, state)
        # the hold goes at the end of the settled part of a table state (before the next hand arrives): after its
        # last frame hold_margin clear of that hand
        if seg is not None and state is not None and f < seg[1] - hold_margin <= f + step:
            first = seg[0] + (hold_margin if seg[0] else 0)
            settled = [g for g in range(0, seg[1] - hold_margin, step) if g >= first]
            b.hold(origin, settled[-hold_frames:], holds[segments.index(seg)], state)
    return with_hands(b.build(), lab)


def table_segments(lab: dict) -> list[tuple[int, int, str]]:
    """The bottle clip's labelled table states: (first frame, end frame, "table " + bottles), in clip order."""
    return sorted([(a, e, "table " + s["bottles"]) for s in lab["table_state"] for a, e in [s["frames"]]])


def with_hands(stream: Stream, lab: dict) -> Stream:
    """The stream with its frames that show a hand marked (``Stream.hand``). A kept frame with a hand in view is no
    picture of a table state: the state it brings is the hand gone."""
    stream.hand = np.array([any(a <= stream.renders[k].frame < e for a, e in lab["hand_in_view"])
                            for k in stream.keys.tolist()], bool)
    return stream


def bottle_clip(data: Path) -> Stream:
    """The bottle clip as it is: every frame at its own 29.8 fps, no perturbation, labelled as ``bottle_stream``
    labels it (margin 0). What ``keep-check bottle-detection.mp4`` runs through the daemon."""
    lab = load_labels(data)["bottle-detection.mp4"]
    origin = VideoOrigin("bottle", Path(data) / "bottle-detection.mp4", 1)
    b = StreamBuilder("bottle-clip", 29.8, "the bottle clip as it is, 29.8 fps, no perturbation", 0)
    segments = table_segments(lab)
    for f in range(origin.count):
        seg = next((s for s in segments if s[0] <= f < s[1]), None)
        b.add(origin, f, seg[2] if seg else None, Perturb())
    return with_hands(b.build(), lab)


def fitted(image: np.ndarray, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """``image`` cut to the aspect of ``size`` about its centre and scaled to it."""
    h, w = image.shape[:2]
    tw, th = size
    if w * th > h * tw:
        cw = h * tw // th
        image = image[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = w * th // tw
        image = image[(h - ch) // 2:(h - ch) // 2 + ch]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class PanoramaOrigin(Origin):
    """A wide scene that a PTZ camera patrols: 640x360 stills side by side. Frame ``n`` is the 640 px window
    whose left edge is at ``n // BLUR`` px, smeared along the pan by the motion blur of ``n % BLUR`` px."""

    BLUR = 64

    def __init__(self, name: str, panels: Sequence[np.ndarray]):
        self.name = name
        self.panorama = np.ascontiguousarray(np.hstack([fitted(p) for p in panels]))

    @classmethod
    def frame_of(cls, x: int, blur: int = 0) -> int:
        return int(x) * cls.BLUR + min(int(blur), cls.BLUR - 1)

    def frame(self, n: int) -> np.ndarray:
        x, blur = divmod(int(n), self.BLUR)
        img = self.panorama[:, x:x + 640]
        return cv2.blur(img, (blur, 1)) if blur > 1 else img.copy()


# Stills a patrolling camera may look at, one of each kind of scene: (clip, frame). The road's frames are empty.
PATROL_SCENES = {
    "table": [("bottle-detection.mp4", 0), ("bottle-detection.mp4", 1100)],
    "road": [("road/sparse-road.avi", 20), ("road/sparse-road.avi", 270)],
    "highway": [("road/busy-highway-1.avi", 100), ("road/busy-highway-2.avi", 400)],
    "room": [("asl/book.mkv", 0), ("asl/milk.mkv", 0), ("asl/school.mkv", 0)],
}
PATROL_SHUTTER = 0.25  # the share of a frame's time the shutter is open: a pan of 40 px a frame smears 10 px


def still(path: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    for _ in range(n + 1):
        ok, img = cap.read()
    cap.release()
    if not ok:
        raise ValueError(f"{path}: no frame {n}")
    return img


def panorama(data: Path, name: str, rng: np.random.Generator, looks: Sequence[str]) -> tuple[list[str], Origin]:
    """One still of each kind in PATROL_SCENES, their order and which still drawn by ``rng``, side by side
    (:class:`PanoramaOrigin` ``name``, seen through ``looks``); and the kinds in that order."""
    kinds = [str(k) for k in rng.permutation(sorted(PATROL_SCENES))]
    picks = [PATROL_SCENES[k][int(rng.integers(len(PATROL_SCENES[k])))] for k in kinds]
    return kinds, looked(PanoramaOrigin(name, [still(Path(data) / c, f) for c, f in picks]), looks)


def patrol_stream(data: Path, seed: int = 0, fps: float = 10.0, rounds: int = 3, looks: Sequence[str] = ()
                  ) -> Stream:
    """A PTZ camera on a preset tour over a still wide scene (:class:`PanoramaOrigin`: a table, a road, a highway
    and a room, in an order drawn by ``seed``): it dwells 8-30 s at each preset (camera nuisance and its shake as in
    any hold), pans to the next in 1.5-3 s with the motion blur of its speed, and after the last pans back over
    the others to the first, ``rounds`` times. A frame within 32 px of a preset (95 % of it in view) is that view's
    state; the others are the pan's mixed views, marked in ``Stream.hand`` (a keep there is no picture of a view).
    Each view is new once: the later rounds repeat the first."""
    rng = np.random.default_rng([seed, 79])
    kinds, origin = panorama(data, f"patrol{seed}", rng, looks)
    presets = [640 * i for i in range(len(kinds))]
    name = f"patrol-seed{seed}" + rate_suffix(fps) + look_suffix(looks)
    b = StreamBuilder(name, fps, f"a PTZ camera's tour of {len(kinds)} presets ({', '.join(kinds)}), {rounds} rounds, "
                      f"{fps:g} fps{look_words(looks)}", seed)

    def label(x: float) -> str | None:
        near = [i for i, p in enumerate(presets) if abs(x - p) <= 32]
        return f"view {near[0]}: {kinds[near[0]]}" if near else None

    def pan(a: int, z: int, seconds: float) -> None:
        n = max(2, int(round(seconds * fps)))
        speed = abs(z - a) / n
        for i in range(1, n):
            x = int(round(a + (z - a) * i / n))
            b.add(origin, PanoramaOrigin.frame_of(x, speed * PATROL_SHUTTER), label(x))
            moving.append(label(x) is None)

    moving: list[bool] = []
    for _ in range(rounds):
        for i, p in enumerate(presets):
            before = len(b.keys)
            b.hold(origin, [PanoramaOrigin.frame_of(p)], float(np.exp(rng.uniform(np.log(8.0), np.log(30.0)))),
                   label(p))
            moving.extend([False] * (len(b.keys) - before))
            if i + 1 < len(presets):
                pan(p, presets[i + 1], float(rng.uniform(1.5, 3.0)))
        pan(presets[-1], presets[0], float(rng.uniform(3.0, 5.0)))
    s = b.build()
    s.hand = np.asarray(moving, bool)
    return s


def survey_stream(data: Path, seed: int = 0, fps: float = 10.0, legs: int = 3, looks: Sequence[str] = (),
                  speeds: tuple[float, float] = (60.0, 240.0)) -> Stream:
    """A camera that never stops (a drone surveying a strip, a camera on a vehicle) over patrol_stream's wide scene
    (four stills of the real clips, in an order drawn by ``seed``): it flies the strip end to end, ``legs`` times,
    turning back at each end without a pause, each leg at a steady speed drawn from ``speeds`` (px/s of 640; 60-240: a
    view's width every 2.7-10.7 s; other speeds name the stream ``-fast``), with the motion blur of its speed and
    camera nuisance in every frame. A frame's state is the still that fills most of it; each still is new in the first
    leg, and a keep of it after its first is redundant (the later legs fly over what was seen). No frame is still and
    no frame is marked: a frame in motion is the only picture such a camera gives (:func:`ground_shown` scores how
    much of the strip the keeps show)."""
    rng = np.random.default_rng([seed, 80])
    kinds, origin = panorama(data, f"survey{seed}", rng, looks)
    far = 640 * (len(kinds) - 1)
    name = f"survey-seed{seed}" + ("-fast" if speeds != (60.0, 240.0) else "") + rate_suffix(fps) + look_suffix(looks)
    b = StreamBuilder(name, fps, f"a camera that never stops over {len(kinds)} scenes ({', '.join(kinds)}), {legs} "
                      f"legs, {fps:g} fps{look_words(looks)}", seed)
    x, ends = 0.0, [far, 0]
    for leg in range(legs):
        speed = float(rng.uniform(*speeds)) / fps  # px a frame
        z = ends[leg % 2]
        while True:
            i = min(len(kinds) - 1, int((x + 320) // 640))
            b.add(origin, PanoramaOrigin.frame_of(int(round(x)), speed * PATROL_SHUTTER), f"view {i}: {kinds[i]}")
            if x == z:
                break
            x = min(x + speed, z) if z > x else max(x - speed, z)
    return b.build()


# ----------------------------------------------------------------------------- scoring


def ground_shown(stream: Stream, kept: Sequence[int]) -> float | None:
    """The share of a panorama's ground (:class:`PanoramaOrigin`, seen through any look) that the ``kept`` frames'
    640 px windows show between them: what a camera that moves over it leaves unshown is a gap in the data. None for
    a stream that is no walk over a panorama."""
    def panorama_of(o: Origin) -> Origin:
        return panorama_of(o.inner) if isinstance(o, LookOrigin) else o
    wide = {n: panorama_of(o) for n, o in stream.origins.items()}
    if not wide or not all(isinstance(o, PanoramaOrigin) for o in wide.values()) or len(wide) != 1:
        return None
    (name, origin), = wide.items()
    shown = np.zeros(origin.panorama.shape[1], bool)
    for k in kept:
        r = stream.renders[int(stream.keys[k])]
        x = r.frame // PanoramaOrigin.BLUR
        shown[x:x + 640] = True
    return float(shown.mean())



@dataclass(frozen=True)
class Event:
    start: int
    end: int       # exclusive
    state: str
    novel: bool    # first appearance of the state in the stream


def events_of(state: Sequence[str | None]) -> list[Event]:
    """Maximal runs of one non-None state. Unlabelled frames between two runs of the same state do
    not split it; a run whose state was seen before is not novel."""
    events: list[Event] = []
    seen: set[str] = set()
    cur: str | None = None
    start = last = 0
    for i, s in enumerate(state):
        if s is None:
            continue
        if s != cur:
            if cur is not None:
                events.append(Event(start, last + 1, cur, cur not in seen))
                seen.add(cur)
            cur, start = s, i
        last = i
    if cur is not None:
        events.append(Event(start, last + 1, cur, cur not in seen))
    return events


@dataclass
class Score:
    frames: int
    kept: int
    events: int            # events scored (novel ones, or every change when novel_only is off)
    hit: int
    recall: float
    redundant: int         # keeps of a state after its first keep (anywhere)
    static_redundant_max: int   # most keeps inside one stretched unchanged period after the state's first keep
    static_redundant: int       # the same, summed over periods
    delay_mean: float | None    # frames from event start to the first keep (or decision) inside it
    delay_max: int | None
    missed: list[str]

    @property
    def keep_ratio(self) -> float:
        return self.kept / self.frames if self.frames else 0.0

    def row(self) -> dict:
        d = dict(self.__dict__)
        d["keep_ratio"] = self.keep_ratio
        return d


def score(state: Sequence[str | None], static: Sequence[bool], kept: Iterable[int],
          decided: dict[int, int] | None = None, novel_only: bool = True) -> Score:
    """Score a selection. ``kept``: frame indices kept. ``decided``: kept frame -> frame at which the
    method decided to keep it (methods that hold a candidate publish later); delay counts to that.

    - recall: share of events with at least one kept frame inside [start, end);
    - redundant: keeps of a state after its first keep;
    - static_redundant(_max): keeps inside a run of static frames, after the state's first keep (the
      target says at most one per repeated unchanged period);
    - delay: frames from an event's start to its first keep (to the decision when ``decided``).
    """
    n = len(state)
    kept = sorted(set(int(k) for k in kept))
    decided = decided or {}
    keep_mask = np.zeros(n, bool)
    keep_mask[kept] = True
    events = [e for e in events_of(state) if e.novel or not novel_only]
    hit, delays, missed = 0, [], []
    for e in events:
        ks = np.flatnonzero(keep_mask[e.start:e.end])
        if len(ks):
            hit += 1
            first = e.start + int(ks[0])
            delays.append(max(decided.get(first, first), first) - e.start)
        else:
            missed.append(f"{e.state} @{e.start}")
    first_keep: dict[str, int] = {}
    redundant = 0
    for k in kept:
        s = state[k]
        if s is None:
            continue
        if s in first_keep:
            redundant += 1
        else:
            first_keep[s] = k
    static = np.asarray(static, bool)
    per_run: list[int] = []
    i = 0
    while i < n:
        if not static[i]:
            i += 1
            continue
        j = i
        while j < n and static[j] and state[j] == state[i]:
            j += 1
        s = state[i]
        fk = first_keep.get(s) if s is not None else None
        per_run.append(sum(1 for k in np.flatnonzero(keep_mask[i:j]) + i if fk is not None and k > fk))
        i = j
    return Score(frames=n, kept=len(kept), events=len(events), hit=hit,
                 recall=hit / len(events) if events else 1.0, redundant=redundant,
                 static_redundant_max=max(per_run, default=0), static_redundant=sum(per_run),
                 delay_mean=float(np.mean(delays)) if delays else None,
                 delay_max=int(max(delays)) if delays else None, missed=missed)


def frames_for_recall(points: Sequence[tuple[int, float, object]], target: float = 0.95) -> tuple[int | None, float, object]:
    """From a sweep's (kept, recall, parameter) points: the fewest kept frames reaching ``target``
    recall, as (kept, recall, parameter); when none does, (None, best recall, its parameter)."""
    ok = [p for p in points if p[1] >= target - 1e-9]
    if ok:
        best = min(ok, key=lambda p: (p[0], -p[1]))
        return best[0], best[1], best[2]
    if not points:
        return None, 0.0, None
    best = max(points, key=lambda p: (p[1], -p[0]))
    return None, best[1], best[2]
