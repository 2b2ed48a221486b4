"""Labels: what the classifier output costs, and what the default model calls the frames of real clips.

1. Cost: the default regions graph with its ``probabilities`` output against the same graph cut back to
   ``embedding`` + ``regions`` (onnx.utils.extract_model, so the two differ only by the classifier),
   timed side by side in one run, rounds interleaved, best round kept per graph and batch size.
2. Top labels: every ``--every``-th frame of each clip in ``--data`` (default ../shared/data), the
   most frequent top-1 labels per clip and the group words that reach ``rules.label_min_score``.

    python benchmarks/labels_bench.py [--data ../shared/data] [--seconds 2] [--rounds 3] [--every 15]
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgefilter.config import RulesConfig  # noqa: E402
from edgefilter.labels import imagenet  # noqa: E402
from edgefilter.model import Embedder  # noqa: E402
from edgefilter.preprocess import preprocess  # noqa: E402

MODEL = ROOT / "models" / "efficientnet_lite0_regions.onnx"


def frames_per_second(session, outputs: list[str], batch: np.ndarray, seconds: float) -> float:
    session.run(outputs, {"images": batch})
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(outputs, {"images": batch})
        n += len(batch)
    return n / (time.perf_counter() - start)


def cost(seconds: float, rounds: int) -> None:
    import onnx.utils
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        without = Path(tmp) / "without_classifier.onnx"
        onnx.utils.extract_model(str(MODEL), str(without), ["images"], ["embedding", "regions"])
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the daemon runs it
        graphs = {"with classifier": (ort.InferenceSession(str(MODEL), opts, providers=["CPUExecutionProvider"]),
                                      ["embedding", "regions", "probabilities"]),
                  "without": (ort.InferenceSession(str(without), opts, providers=["CPUExecutionProvider"]),
                              ["embedding", "regions"])}
        rng = np.random.default_rng(0)
        best = {(name, b): 0.0 for name in graphs for b in (1, 8)}
        for _ in range(rounds):
            for b in (1, 8):
                x = rng.integers(0, 256, (b, 224, 224, 3), dtype=np.uint8)
                for name, (session, outputs) in graphs.items():
                    best[name, b] = max(best[name, b], frames_per_second(session, outputs, x, seconds))
    print("| batch | with classifier (frames/s) | without (frames/s) | with / without |")
    print("| --- | --- | --- | --- |")
    for b in (1, 8):
        w, wo = best["with classifier", b], best["without", b]
        print(f"| {b} | {w:.0f} | {wo:.0f} | {w / wo:.3f} |")


def clip_frames(path: Path, every: int):
    import cv2

    cap = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            yield frame
        i += 1
    cap.release()


def top_labels(data: Path, every: int) -> None:
    embedder = Embedder(MODEL, providers="cpu")
    vocab = imagenet()
    min_score = RulesConfig().label_min_score
    clips = [data / "bottle-detection.mp4", *sorted((data / "road").glob("*.avi")), *sorted((data / "asl").glob("*.mkv"))]
    print("| clip | frames looked at | most frequent top-1 labels (share of frames) | groups reaching "
          f"{min_score} (share) |")
    print("| --- | --- | --- | --- |")
    asl_top, asl_groups, asl_n = collections.Counter(), collections.Counter(), 0
    for clip in clips:
        if not clip.exists():
            continue
        batch = np.stack([preprocess(f, embedder.input_size, "RGB") for f in clip_frames(clip, every)])
        probs = embedder.embed(batch).probabilities
        top = collections.Counter(vocab.top(p, 1)[0]["name"] for p in probs)
        groups = collections.Counter(g for p in probs for g in vocab.groups if vocab.score(p, g) >= min_score)
        if clip.parent.name == "asl":  # 20 short clips of one room: one row for all of them
            asl_top.update(top), asl_groups.update(groups)
            asl_n += len(probs)
            continue
        print(row(clip.name, len(probs), top, groups))
    if asl_n:
        print(row("asl/*.mkv (20 clips)", asl_n, asl_top, asl_groups))


def row(name: str, n: int, top: collections.Counter, groups: collections.Counter) -> str:
    t = ", ".join(f"{k} ({v / n:.0%})" for k, v in top.most_common(4))
    g = ", ".join(f"{k} ({v / n:.0%})" for k, v in groups.most_common(4)) or "none"
    return f"| {name} | {n} | {t} | {g} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--every", type=int, default=15, help="look at every N-th frame of each clip")
    args = ap.parse_args()
    cost(args.seconds, args.rounds)
    print()
    top_labels(args.data, args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
