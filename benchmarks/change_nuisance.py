"""Does the change test (edgefilter/novelty/view.py) stay quiet under camera nuisance, and see a removal?

`python benchmarks/change_nuisance.py [--data ../shared/data] [--levels 16 8 6 4]`

- 300 frames of the demo street (its synthetic 1-px edges are the worst case) and 100 frames of the real
  road clip (when --data has it), each under a random exposure gain 0.8-1.2, offset +-6, sensor noise
  sigma 2-6, JPEG (none, q50, q70) and a shake of up to 3 px, against the unperturbed frame: how many
  show a blob of change (should be 0), and the largest blob;
- the same two seen by an IR camera at night (`streams.LookOrigin`: grey, half the contrast, 5 grey levels more
  sensor noise), each frame with its own noise: what a level that follows the scene's contrast (half of
  MIN_LEVEL at night) would have to stay quiet under (benchmarks/QUALITY.md, finding 42);
- the bottle clip (when --data has it): the right-hand bottle taken away (frame 954 against frame 0),
  changed mask pixels (should be well above the 23 that `novelty/known.py` treats as the same scene);
- what a frame shows (`view.change`, colour too, its least level following the scene's contrast): 100 frames of
  the demo street and of the road, by day and at night, under the same nuisance (should be 0; finding 43);
- ``--levels``: for each least level L (in place of `view.MIN_LEVEL`), 100 frames of the demo street by day and at
  night and of the road at night under the same nuisance: the margin each level leaves (finding 42).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.streams import Perturb, at_night  # noqa: E402
from edgefilter.demo import DemoScene  # noqa: E402
from edgefilter.novelty import view  # noqa: E402
from edgefilter.novelty.view import change, change_mask, least_level, view_thumbnail  # noqa: E402


def changed(frame: np.ndarray, background: np.ndarray) -> int:
    mask = change_mask(view_thumbnail(frame), view_thumbnail(background))
    return 0 if mask is None else int(mask.sum())


def shown_pixels(frame: np.ndarray, background: np.ndarray) -> int:
    """Changed pixels of what the frame shows (view.change: colour too, the least level of the scene's contrast)."""
    return change(view_thumbnail(frame), view_thumbnail(background)).pixels


def nuisance(rng: np.random.Generator, seed: int) -> Perturb:
    return Perturb(gain=float(rng.uniform(0.8, 1.2)), offset=float(rng.uniform(-6, 6)),
                   noise=float(rng.uniform(2, 6)), seed=seed, jpeg=int(rng.choice([0, 50, 70])),
                   dx=int(rng.integers(-3, 4)), dy=int(rng.integers(-3, 4)))


def perturbed(rng: np.random.Generator, frame: np.ndarray, background: np.ndarray, night: bool, count: int
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (frame under nuisance, background) pairs; ``night``: through the IR camera, each frame with its own
    sensor noise, against the background's first."""
    if not night:
        return [(nuisance(rng, i).apply(frame), background) for i in range(count)]
    dark = at_night(background, 0)
    return [(nuisance(rng, i).apply(at_night(frame, i + 1)), dark) for i in range(count)]


def frame_of(path: Path, n: int) -> np.ndarray | None:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, n)
    ok, img = cap.read()
    cap.release()
    return img if ok else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--levels", type=float, nargs="*", default=[], help="least levels to try (grey levels)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    scene = DemoScene(seed=3, width=640, height=360, fps=30.0, noise=0.0, lighting=False)
    empty = scene.render(next(f for f in range(0, 10_000, 7) if not scene.objects_at(f)))
    counts = [changed(f, b) for f, b in perturbed(rng, empty, empty, False, 300)]
    print(f"demo street: {sum(c > 0 for c in counts)} of 300 perturbed frames show change (largest {max(counts)} px)")
    counts = [changed(f, b) for f, b in perturbed(rng, empty, empty, True, 300)]
    print(f"demo street at night: {sum(c > 0 for c in counts)} of 300 perturbed frames show change "
          f"(largest {max(counts)} px)")
    road = args.data / "road" / "sparse-road.avi"
    road_a, road_b = frame_of(road, 10), frame_of(road, 20)
    if road_a is not None and road_b is not None:  # frames 10 and 20: the empty road
        counts = [changed(f, b) for f, b in perturbed(rng, road_b, road_a, False, 100)]
        print(f"road: {sum(c > 0 for c in counts)} of 100 perturbed frames show change (largest {max(counts)} px)")
        counts = [changed(f, b) for f, b in perturbed(rng, road_b, road_a, True, 100)]
        print(f"road at night: {sum(c > 0 for c in counts)} of 100 perturbed frames show change "
              f"(largest {max(counts)} px)")
    bottle = args.data / "bottle-detection.mp4"
    a, b = frame_of(bottle, 0), frame_of(bottle, 954)
    if a is not None and b is not None:
        print(f"bottle: the right-hand bottle taken away (frame 954 against 0): {changed(b, a)} mask px")
    scenes = [("demo street", empty, empty, False), ("demo street at night", empty, empty, True)]
    if road_a is not None and road_b is not None:
        scenes += [("road", road_b, road_a, False), ("road at night", road_b, road_a, True)]
    rng = np.random.default_rng(1)
    for name, frame, background, night in scenes:
        pairs = perturbed(rng, frame, background, night, 100)
        counts = [shown_pixels(f, b) for f, b in pairs]
        print(f"what a frame shows, {name} (least level {least_level(view_thumbnail(pairs[0][1])):.1f}): "
              f"{sum(c > 0 for c in counts)} of 100 perturbed frames show change (largest {max(counts)} px)")
    for level in args.levels:
        view.MIN_LEVEL, kept_level = level, view.MIN_LEVEL
        rng = np.random.default_rng(0)
        cases = [(empty, empty, False), (empty, empty, True)]
        if road_a is not None and road_b is not None:
            cases.append((road_b, road_a, True))
        shown = [sum(changed(f, b) > 0 for f, b in perturbed(rng, *case, 100)) for case in cases]
        view.MIN_LEVEL = kept_level
        print(f"least level {level:g}: frames of 100 that show change: demo street {shown[0]}, at night {shown[1]}"
              + (f", road at night {shown[2]}" if len(shown) > 2 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
