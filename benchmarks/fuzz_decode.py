"""Fuzz campaign for per-source decoding (issue 12): damaged videos must cost their source, never the daemon.

Makes small real videos (H.264 MP4, MPEG-4 Part 2 MP4, MJPEG AVI, uncompressed DIB AVI, FFV1 MKV, plus
../shared/data/faults/*.avi when present), mutates them into ``--count`` files (bit flips, truncations,
overwritten headers, a wrong container, absurd frame sizes patched into the headers), then:

1. runs every file through edgefilter's capture layer (``Capture`` with the ffmpeg decoder process, as the
   daemon runs it) in this one process, ``--parallel`` at a time, *beside a good source* that must deliver
   every one of its frames, in order, while the bad files come and go; and counts decoder failures by reason;
2. decodes every file with in-process OpenCV in a worker process that is restarted whenever a file kills
   it: the files that would have taken the whole daemon down before;
3. runs the whole daemon (model, filter, publisher) with ``--daemon-files`` of those files as sources at
   once beside a finite demo source, whose every frame must reach the model.

Usage: python3 -m benchmarks.fuzz_decode [--count 1000] [--parallel 4] [--seed 1] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry

from edgefilter.capture import Capture
from edgefilter.config import BackoffConfig, SourceConfig
from edgefilter.decoder import ffmpeg_executable
from edgefilter.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
SHARED_FAULTS = ROOT.parent / "shared" / "data" / "faults"
MUTATIONS = ("bitflip", "truncate", "header", "container", "size")


def make_seeds(workdir: Path) -> list[Path]:
    ffmpeg = ffmpeg_executable()
    src = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "2"]
    recipes = {"h264.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10"],
               "mpeg4.mp4": ["-c:v", "mpeg4", "-q:v", "5"],
               "mjpeg.avi": ["-c:v", "mjpeg", "-q:v", "5"],
               "dib.avi": ["-c:v", "rawvideo", "-pix_fmt", "bgr24", "-s", "48x48"],
               "ffv1.mkv": ["-c:v", "ffv1"]}
    seeds = []
    for name, codec in recipes.items():
        out = workdir / f"seed-{name}"
        subprocess.run([ffmpeg, "-nostdin", "-y", "-loglevel", "error", *src, *codec, str(out)], check=True)
        seeds.append(out)
    seeds += sorted(SHARED_FAULTS.glob("*.avi")) if SHARED_FAULTS.is_dir() else []
    return seeds


def _patch_sizes(data: bytearray, rng: random.Random) -> None:
    """Absurd width/height where containers keep them: AVI avih/strf, MP4 tkhd/avc1/mp4v, Matroska."""
    huge = rng.choice([65535, 1 << 20, 0x7FFFFFFF, 0])
    for tag, offsets, fmt in ((b"avih", (40, 44), "<I"), (b"strf", (8, 12), "<i"), (b"tkhd", (80, 84), ">H"),
                              (b"avc1", (28, 30), ">H"), (b"mp4v", (28, 30), ">H")):
        pos = data.find(tag)
        if pos < 0:
            continue
        for off in offsets:
            at = pos + off
            size = 2 if fmt.endswith("H") else 4
            if at + size <= len(data):
                data[at:at + size] = (huge & (0xFFFF if size == 2 else 0xFFFFFFFF)).to_bytes(
                    size, "big" if fmt.startswith(">") else "little")
    for marker in (b"\xb0", b"\xba"):  # Matroska PixelWidth/PixelHeight, 2-byte values
        pos = data.find(marker + b"\x82")
        if pos >= 0 and pos + 4 <= len(data):
            data[pos + 2:pos + 4] = b"\xff\xff"


def mutate(seed: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    data = bytearray(seed)
    if kind == "bitflip":
        for _ in range(rng.choice([1, 4, 16, 64, 256])):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data), ".bin"
    if kind == "truncate":
        return bytes(data[:rng.randrange(1, len(data))]), ".bin"
    if kind == "header":
        start = rng.randrange(0, min(len(data), 512))
        n = rng.randrange(1, 64)
        data[start:start + n] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(data), ".bin"
    if kind == "container":  # another container's magic on this payload, or two files spliced
        magic = rng.choice([b"RIFF\x00\x00\x00\x00AVI LIST", b"\x00\x00\x00\x18ftypisom", b"\x1aE\xdf\xa3",
                            b"\x47\x40\x00\x10"])
        return magic + bytes(data[len(magic):]), ".bin"
    _patch_sizes(data, rng)
    for _ in range(rng.choice([0, 0, 2, 8])):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data), ".bin"


def make_corpus(workdir: Path, seeds: list[Path], count: int, rng: random.Random) -> list[tuple[Path, str]]:
    blobs = [(p, p.read_bytes()) for p in seeds]
    corpus = []
    for i in range(count):
        seed_path, blob = rng.choice(blobs)
        kind = MUTATIONS[i % len(MUTATIONS)]
        data, _ = mutate(blob, kind, rng)
        out = workdir / f"fuzz-{i:05d}-{kind}{seed_path.suffix}"
        out.write_bytes(data)
        corpus.append((out, kind))
    return corpus


# ---------------------------------------------------------------- 1: the capture layer, beside a good source

class _Sink:
    def __init__(self):
        self.indices: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def __call__(self, frame, live):
        with self.lock:
            self.indices.setdefault(frame.source, []).append(frame.index)
        return True


def run_captures(corpus: list[tuple[Path, str]], good: Path, parallel: int, stall_s: float) -> dict:
    metrics = Metrics(CollectorRegistry())
    sink = _Sink()
    fast = BackoffConfig(initial_s=0.05, max_s=0.1)
    # The good source plays in real time, looping, for the whole campaign; it must not miss a frame.
    good_cap = Capture(SourceConfig(name="good", url=str(good), realtime=True, loop=True), sink, metrics)
    good_cap.start()
    pending = list(enumerate(corpus))
    running: list[tuple[Capture, float]] = []
    started = time.perf_counter()
    hung_captures = 0
    while pending or running:
        while pending and len(running) < parallel:
            i, (path, _kind) = pending.pop(0)
            name = f"f{i:05d}"
            metrics.init_source(name)
            cap = Capture(SourceConfig(name=name, url=str(path), stall_s=stall_s, open_timeout_s=stall_s,
                                       file_retries=0, backoff=fast), sink, metrics)
            cap.start()
            running.append((cap, time.monotonic()))
        time.sleep(0.01)
        still = []
        for cap, t0 in running:
            if cap.join(0):
                continue
            if time.monotonic() - t0 > 6 * stall_s + 10:  # the capture itself stuck: a harness failure
                hung_captures += 1
                cap.stop()
                continue
            still.append((cap, t0))
        running = still
    elapsed = time.perf_counter() - started
    good_cap.stop()
    good_cap.join(10)
    # One pass over the registry (metrics.value() walks all of it, a thousand sources times over).
    failures: dict[str, Counter] = {}
    for family in metrics.decoder_failures.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                failures.setdefault(sample.labels["source"], Counter())[sample.labels["reason"]] += int(sample.value)
    reasons = Counter()
    for counts in failures.values():
        reasons.update(counts)
    failed_files = sum(1 for name in failures if name != "good")
    frames_bad = sum(len(v) for k, v in sink.indices.items() if k != "good")
    good_indices = sink.indices.get("good", [])
    return {"files": len(corpus), "seconds": round(elapsed, 1), "files_with_decoder_failure": failed_files,
            "failures_by_reason": dict(reasons), "frames_from_damaged_files": frames_bad,
            "captures_stuck": hung_captures, "good_frames_expected_at_25fps": int(elapsed * 25),
            "good_frames_received": len(good_indices),
            "good_frames_in_order_without_gap": good_indices == list(range(len(good_indices))),
            "good_source_errors": metrics.value("edgefilter_source_errors_total", source="good")}


# ---------------------------------------------------------------- 2: in-process OpenCV, for comparison

_WORKER = r"""
import sys, cv2
cv2.setLogLevel(0) if hasattr(cv2, "setLogLevel") else None
for line in sys.stdin:
    path = line.strip()
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    n = 0
    while cap.isOpened() and n < 2000:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    print(n, flush=True)
"""


def run_opencv_inprocess(corpus: list[tuple[Path, str]], timeout_s: float) -> dict:
    """Files that kill (or hang) a process decoding them with OpenCV, as the daemon did before."""
    killers: list[dict] = []
    hangs = 0
    i = 0
    started = time.perf_counter()
    while i < len(corpus):
        worker = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        while i < len(corpus):
            path, kind = corpus[i]
            worker.stdin.write(f"{path}\n")
            worker.stdin.flush()
            answer = _readline(worker, timeout_s)
            i += 1
            if answer is None:
                try:
                    worker.wait(2.0)  # a dead worker's exit status may take a moment to be seen
                except subprocess.TimeoutExpired:
                    hangs += 1
                    worker.kill()
                    worker.wait()
                if worker.returncode is not None and worker.returncode < 0 and worker.returncode != -9:
                    killers.append({"file": path.name, "mutation": kind, "signal": -worker.returncode})
                break
        else:
            worker.stdin.close()
            worker.wait(10)
    return {"files": len(corpus), "seconds": round(time.perf_counter() - started, 1),
            "files_killing_the_process": len(killers), "files_hanging_over_timeout": hangs,
            "killers": killers[:20], "all_killers": killers}


# ---------------------------------------------------------------- 3: the whole daemon, with files that killed OpenCV

def run_daemon(files: list[Path], good_frames: int = 300) -> dict:
    """The real daemon (model, filter, publisher) in this process, one demo source of ``good_frames``
    frames beside every file as a source of its own; every demo frame must reach the model."""
    from edgefilter.config import parse_config
    from edgefilter.daemon import Daemon

    sources = [f"  - {{name: good, url: 'demo://?frames={good_frames}&seed=3'}}"]
    sources += [f"  - {{name: f{i:03d}, url: '{path}', file_retries: 0}}" for i, path in enumerate(files)]
    cfg = parse_config("sources:\n" + "\n".join(sources) + "\npublish: {bind: 'tcp://127.0.0.1:0'}\n"
                       "log_level: error\n")
    metrics_registry = CollectorRegistry()
    started = time.perf_counter()
    code = Daemon(cfg, registry=metrics_registry).run()
    value = lambda name, **labels: metrics_registry.get_sample_value(name, labels) or 0.0
    return {"file_sources": len(files), "exit_status": code, "seconds": round(time.perf_counter() - started, 1),
            "good_frames": good_frames,
            # through the model, or past it by the pre-gate as certainly unchanged
            "good_frames_processed": int(value("edgefilter_frames_embedded_total", source="good")
                                         + value("edgefilter_frames_gated_total", source="good")),
            "good_frames_captured": int(value("edgefilter_frames_captured_total", source="good")),
            "file_frames_embedded": int(sum(value("edgefilter_frames_embedded_total", source=f"f{i:03d}")
                                            for i in range(len(files)))),
            "file_sources_failed": int(sum(1 for i in range(len(files))
                                           if value("edgefilter_source_errors_total", source=f"f{i:03d}")))}


def _readline(proc: subprocess.Popen, timeout_s: float) -> str | None:
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout_s)
    return box[0] if box and box[0] else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stall-s", type=float, default=3.0, help="per-file decoder silence limit")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    ap.add_argument("--daemon-files", type=int, default=40,
                    help="then run the whole daemon with this many of the files that killed OpenCV (0: skip)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="edgefilter-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        seeds = make_seeds(workdir)
        corpus = make_corpus(workdir, seeds, args.count, rng)
        good = workdir / "good.avi"
        subprocess.run([ffmpeg_executable(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=160x120:rate=25", "-frames:v", "250", "-c:v", "mjpeg", str(good)], check=True)
        by_kind = Counter(kind for _, kind in corpus)
        print(f"corpus: {len(corpus)} files from {len(seeds)} seeds ({dict(by_kind)}) in {workdir}", flush=True)
        logging.basicConfig(level=logging.CRITICAL)  # a thousand failing sources: the counts tell it
        captured = run_captures(corpus, good, args.parallel, args.stall_s)
        print("decoder processes beside a good source:", json.dumps(captured), flush=True)
        inproc = run_opencv_inprocess(corpus, timeout_s=10.0)
        print("in-process OpenCV:", json.dumps({k: v for k, v in inproc.items() if k != "all_killers"}), flush=True)
        result = {"seeds": [p.name for p in seeds], "mutations": dict(by_kind), "decoder_process": captured,
                  "opencv_in_process": inproc}
        killers = [workdir / k["file"] for k in inproc["all_killers"]][:args.daemon_files]
        if killers:
            result["daemon"] = run_daemon(killers)
            print("the daemon with files that killed OpenCV:", json.dumps(result["daemon"]), flush=True)
        del inproc["all_killers"]
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
        ok = (captured["good_frames_in_order_without_gap"] and captured["captures_stuck"] == 0
              and captured["good_source_errors"] == 0
              and result.get("daemon", {}).get("good_frames_processed", 300) == 300)
        return 0 if ok else 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
