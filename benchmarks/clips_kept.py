"""Kept/total frames of the real daemon at the default configuration on the clips in ../shared/data.

Each clip runs through the real pipeline (capture, gates, model, filter, JPEG, ZeroMQ) as a file source
read as fast as it goes; the counts come from the daemon's own metrics. The clips are read from
``--data`` (default ../shared/data beside the repository) and never copied into it.

    python benchmarks/clips_kept.py [--data ../shared/data] [--threshold T] [--mode frame|event]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgefilter.config import Config, MetricsConfig, PublishConfig, SourceConfig  # noqa: E402
from edgefilter.daemon import Daemon  # noqa: E402


def run_clip(path: Path, filter_cfg, port: int) -> tuple[int, int, float]:
    cfg = Config(sources=[SourceConfig(name="clip", url=str(path))], filter=filter_cfg,
                 publish=PublishConfig(bind=f"tcp://127.0.0.1:{port}"), metrics=MetricsConfig(bind=None),
                 base_dir=str(ROOT))
    daemon = Daemon(cfg, registry=CollectorRegistry())
    t0 = time.monotonic()
    daemon.run()
    seconds = time.monotonic() - t0
    m = daemon.metrics
    return (int(m.value("edgefilter_frames_kept_total", source="clip")),
            int(m.value("edgefilter_frames_captured_total", source="clip")), seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--mode", choices=["frame", "event"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Path(args.data)
    clips = sorted(data.glob("*.mp4")) + sorted((data / "asl").glob("*.mkv"))
    if not clips:
        print(f"no clips under {data}", file=sys.stderr)
        return 66
    f = Config().filter
    if args.threshold is not None:
        f = dataclasses.replace(f, threshold=args.threshold)
    if args.mode is not None:
        f = dataclasses.replace(f, mode=args.mode)
    print(f"filter: threshold {f.threshold}, mode {f.mode}")
    print(f"{'clip':28s} {'kept':>5s} {'total':>6s}")
    total_kept = total = 0
    for i, clip in enumerate(clips):
        kept, n, _ = run_clip(clip, f, 47000 + i)
        total_kept += kept
        total += n
        print(f"{clip.relative_to(data)!s:28s} {kept:5d} {n:6d}")
    print(f"{'all':28s} {total_kept:5d} {total:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
