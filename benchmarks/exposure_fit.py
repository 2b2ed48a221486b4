"""The exposure fit of the change mask (edgefilter/novelty/view.py) where a scene has little contrast: what it sees of a
broad faint change, and on which real frame pairs a change of the fit moves the mask (benchmarks/QUALITY.md,
finding 78).

`python benchmarks/exposure_fit.py --faint [--draws 20]`
    A room of little contrast (a wall, a brighter table) where an arm's soft shadow lies over the wall by three faint
    clear bottles; then the arm gone, two bottles taken away, the light 0.985 of it, the camera a pixel aside (grey
    160x90 thumbnails, as change() compares). Prints, for each noise draw, the fitted gain and offset (the scene's
    gain is 0.985) and the change's mask pixels, then how many draws show the change (more than KNOWN_PIXELS).
`python benchmarks/exposure_fit.py --pairs STREAM ... [--data ../shared/data] --out FILE.json`
    150 frames of each corpus stream (names as corpus_bench.py gives them) against the frames 3 and 25 before: the
    change's mask pixels of each pair. Run it from two worktrees, then
`python benchmarks/exposure_fit.py --compare A.json B.json`
    per stream, how many pairs' masks differ, and those that differ by 10 pixels or more or across KNOWN_PIXELS.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgefilter.novelty.known import KNOWN_PIXELS  # noqa: E402
from edgefilter.novelty.view import VIEW_SIZE, _fit, change, view_thumbnail  # noqa: E402

PAIR_FRAMES, PAIR_GAPS = 150, (3, 25)


def faint_room(rng: np.random.Generator, shadow: bool, bottles: tuple[int, ...], gain: float, dx: int) -> np.ndarray:
    """The grey thumbnail of the room (see the module's doc): with the arm's shadow or not, these bottles (columns)."""
    w, h = VIEW_SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w), 182.2, np.float32)
    img[60:] = 210.0
    if shadow:
        img -= 47.3 * np.exp(-((x - 45) ** 2 + (y - 20) ** 2) / (2 * 27.4 ** 2))
    for bx in bottles:
        img[25:60, bx:bx + 12] -= 19.6
    img = np.roll(img * gain, dx, axis=1) + rng.normal(0, 1.56, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def faint(draws: int = 20) -> list[dict]:
    """Per noise draw: the fit of the room after against the room before, and the change's mask pixels."""
    out = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        before = faint_room(rng, True, (20, 75, 130), 1.0, 0)
        after = faint_room(rng, False, (130,), 0.985, 1)
        gain, offset = _fit(before[::2, ::2], after[::2, ::2])
        out.append({"draw": seed, "gain": round(float(gain), 3), "offset": round(float(offset), 1),
                    "pixels": change(after, before).pixels})
    return out


def pairs(names: list[str], data: Path) -> dict[str, list[int]]:
    """Per corpus stream: the mask pixels of PAIR_FRAMES frames against the frames PAIR_GAPS before."""
    from benchmarks import corpus_bench as cb

    streams = {c.stream.name: c.stream for c in cb.build_corpus(data) if c.stream.name in names}
    missing = [n for n in names if n not in streams]
    if missing:
        raise SystemExit(f"no corpus stream named {', '.join(missing)}")
    out = {}
    for name in names:
        s = streams[name]
        frames = np.random.default_rng(5).integers(max(PAIR_GAPS) + 5, len(s), PAIR_FRAMES)
        out[name] = [change(view_thumbnail(s.image(int(i))), view_thumbnail(s.image(int(i) - k))).pixels
                     for i in frames for k in PAIR_GAPS]
        s.release()
    return out


def compare(a: dict[str, list[int]], b: dict[str, list[int]]) -> list[str]:
    """Per stream in both: the pairs whose mask pixels differ, and those by 10 or more or across KNOWN_PIXELS."""
    lines = []
    for name in a:
        if name not in b:
            continue
        diff = [(x, y) for x, y in zip(a[name], b[name]) if x != y]
        big = [(x, y) for x, y in diff if abs(x - y) >= 10 or (x <= KNOWN_PIXELS) != (y <= KNOWN_PIXELS)]
        lines.append(f"{name}: {len(a[name])} pairs, {len(diff)} differ, {len(big)} by 10 pixels or more or across "
                     f"{KNOWN_PIXELS}: {big}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faint", action="store_true", help="the generated room of little contrast")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--pairs", nargs="+", metavar="STREAM", help="corpus streams whose frame pairs to measure")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, help="where --pairs writes its JSON")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two --pairs runs")
    args = ap.parse_args(argv)
    if args.faint:
        rows = faint(args.draws)
        for r in rows:
            print(r)
        print(f"the change shown (more than {KNOWN_PIXELS} mask pixels) in "
              f"{sum(r['pixels'] > KNOWN_PIXELS for r in rows)} of {len(rows)} draws")
    if args.pairs:
        got = pairs(args.pairs, args.data)
        text = json.dumps(got)
        if args.out:
            args.out.write_text(text)
        else:
            print(text)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        print("\n".join(compare(a, b)))
    if not (args.faint or args.pairs or args.compare):
        ap.error("one of --faint, --pairs, --compare")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
