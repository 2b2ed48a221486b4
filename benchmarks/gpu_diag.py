"""Why the daemon on CUDA runs slower end to end than on the CPU (found 2026-12-04 on an H200): one
source, the same clip, the same daemon, one model setting changed at a time.

    python benchmarks/gpu_diag.py [--json FILE] [--frames 600] [--hd-frames 300] [--dry-run]

First (``--hd-frames``), one 1920x1080 source at batch 32, every model call timed: as shipped (one input shape,
cuDNN's heuristic search) in the process's first CUDA run and again, as before (several shapes, exhaustive
search), and fp16. Then rows at 640x360: the CPU model; CUDA as shipped; with several input shapes; with several
shapes and the exhaustive search; with onnxruntime's default CPU pool (a spinning thread per core); the model's
outputs cached per batch size (the pipeline's own ceiling on this machine). Each row gives frames/s, the mean batch, the model call's p50 / p99 and the
CPU seconds by thread group. Then: the model alone called from a worker thread at batch sizes 1-8, and
which nodes onnxruntime placed on which provider (from its profile).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgefilter import bench  # noqa: E402
from edgefilter.config import load_config  # noqa: E402
from edgefilter.model import CPU, CUDA_OPTIONS, Embedder  # noqa: E402
from edgefilter.preprocess import preprocess  # noqa: E402


class CachedOutputs:
    """The real model's outputs, computed once per batch size: what the pipeline does without a model."""

    def __init__(self, inner: Embedder):
        self.inner, self.cache = inner, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def warm_up(self) -> None:
        pass

    def embed(self, batch):
        if len(batch) not in self.cache:
            self.cache[len(batch)] = self.inner.embed(batch)
        return self.cache[len(batch)]


class CallLog:
    """The embedder with every call's batch size, padded size, duration and calling thread recorded, from the
    first call on (the bench's stage split shows only percentiles)."""

    def __init__(self, inner: Embedder):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, batch):
        t0 = time.perf_counter()
        out = self.inner.embed(batch)
        ms = (time.perf_counter() - t0) * 1000
        self.calls.append((len(batch), self.inner.padded_size(len(batch)), ms, threading.current_thread().name))
        return out

    def summary(self) -> dict:
        by_size: dict[int, list[float]] = collections.defaultdict(list)
        for _, padded, ms, _ in self.calls:
            by_size[padded].append(ms)
        return {"first_calls": [(n, p, round(ms, 2), t) for n, p, ms, t in self.calls[:12]],
                "by_padded_size": {p: {"calls": len(v), "median_ms": round(float(np.median(v)), 2),
                                       "max_ms": round(max(v), 2), "over_100ms": sum(x > 100 for x in v)}
                                   for p, v in sorted(by_size.items())}}


class ShapesBefore(Embedder):
    """On a GPU, batches padded to 1, 2, 4, ... max_batch: the input shapes before 2026-12-04 evening (the
    session switches between them; microsoft/onnxruntime#23006)."""

    def batch_sizes(self) -> list[int]:
        return sorted({1, self.max_batch} | {b for b in (2, 4, 8, 16, 32, 64, 128, 256) if b < self.max_batch})


def with_session(e: Embedder, provider_options: dict | None = None, threads: int = 1, spinning: bool = False,
                 profile: str | None = None) -> Embedder:
    """The same embedder with its onnxruntime session rebuilt under other options (by default as shipped:
    a one-thread pool that does not spin; ``provider_options`` None: the CUDA options as shipped, {}: none,
    i.e. onnxruntime's exhaustive cuDNN search)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    providers = e._session.get_providers()
    cuda = dict(CUDA_OPTIONS) if provider_options is None else provider_options
    opts = [cuda if p == "CUDAExecutionProvider" else {} for p in providers]
    e._session = ort.InferenceSession(str(e.path), so, providers=list(zip(providers, opts)))
    return e


def placement(e: Embedder, tensors: list[np.ndarray], work: Path) -> dict:
    """Nodes by provider, from onnxruntime's profile of a few runs."""
    p = with_session(Embedder(e.path, providers="cpu" if e.provider == CPU else "cuda"),
                     profile=str(work / "ort-profile"))
    for _ in range(3):
        p.embed(np.stack(tensors[:4]))
    events = json.loads(Path(p._session.end_profiling()).read_text())
    by_provider: dict[str, set] = collections.defaultdict(set)
    for ev in events:
        args = ev.get("args", {})
        if ev.get("cat") == "Node" and "provider" in args:
            by_provider[args["provider"]].add(f"{args.get('op_name')}:{ev['name'].rsplit('_kernel_time', 1)[0]}")
    return {k: sorted(v) for k, v in by_provider.items()}


def threaded_calls(e: Embedder, tensors: list[np.ndarray], seconds: float = 1.5, worker: bool = True) -> dict:
    """Model calls/s per batch size, from a worker thread (as the daemon's embed thread calls the session
    that its main thread made and warmed) or from the main thread."""
    out = {}

    def run():
        for n in (1, 2, 4, 8):
            batch = np.stack(tensors[:n])
            e.embed(batch)
            k, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 4:
                e.embed(batch)
                k += 1
            out[n] = k / (time.perf_counter() - t0)

    if not worker:
        run()
        return out
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--dry-run", action="store_true", help="the CPU in place of CUDA: checks this script itself")
    ap.add_argument("--hd-frames", type=int, default=300,
                    help="first, before any other CUDA use in the process: the daemon on one 1920x1080 source at "
                         "batch 32 (fp32, fp32 again, fp16), every model call timed; 0: skip")
    args = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    cfg = dataclasses.replace(cfg, log=dataclasses.replace(cfg.log, level="warning"))
    model = ROOT / cfg.model.path
    gpu = "cpu" if args.dry_run else "cuda"
    work = Path(tempfile.mkdtemp(prefix="edgefilter-gpu-diag-"))
    video = bench.demo_video(work, args.frames, 640, 360)
    tensors = [preprocess(im, (224, 224), "RGB") for im in bench.decoded_frames(video, 16)]
    rows = {
        "cpu": lambda: Embedder(model, providers="cpu"),
        "cuda as shipped": lambda: Embedder(model, providers=gpu),
        "cuda, several input shapes": lambda: ShapesBefore(model, providers=gpu),
        "cuda, several shapes, exhaustive search": lambda: with_session(ShapesBefore(model, providers=gpu), {}),
        "cuda, onnxruntime's default CPU pool": lambda: with_session(Embedder(model, providers=gpu), None,
                                                                     threads=0, spinning=True),
        "cached outputs (no model)": lambda: CachedOutputs(Embedder(model, providers=gpu)),
    }
    source = dataclasses.replace(cfg.sources[0], url=str(video), realtime=False, decoder="opencv")
    run_cfg = dataclasses.replace(cfg, sources=[source], gates=dataclasses.replace(cfg.gates, skip_unchanged=0.0))
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "frames": args.frames, "rows": {}, "hd": {}}
    if args.hd_frames > 0:
        # The 1080p benches were slow in the first daemon run of a process (model calls of up to a second
        # while the embed thread sat on the CPU): is it the first run, the batch size, or fp16?
        hd = dataclasses.replace(run_cfg, sources=[dataclasses.replace(
            source, url=str(bench.demo_video(work, args.hd_frames, 1920, 1080)))],
            embed=dataclasses.replace(cfg.embed, max_batch=32))
        fp16 = model.with_name(model.stem + "_fp16.onnx")
        hd_rows = (("1080p fp32 as shipped, first CUDA run of the process", Embedder, {}, False),
                   ("1080p fp32 as shipped, again", Embedder, {}, False),
                   ("1080p fp32, several shapes, exhaustive (before)", ShapesBefore, {}, True),
                   ("1080p fp16 as shipped", Embedder, {"fp16": True} if fp16.is_file() else {}, False))
        for name, kind, kw, exhaustive in hd_rows:
            emb = kind(model, providers=gpu, max_batch=32, **kw)
            log = CallLog(with_session(emb, {}) if exhaustive else emb)
            t0 = time.perf_counter()
            log.warm_up()
            warm_s = time.perf_counter() - t0
            log.calls.clear()
            run = bench.run_pipeline(name, hd, bench.TimedEmbedder(log))
            report["hd"][name] = {"fps": run.fps, "mean_batch": run.mean_batch, "warm_up_s": warm_s,
                                  "thread_cpu_s": run.thread_cpu_s, **log.summary()}
            print(f"{name:<42} {run.fps:7.1f} frames/s, batch {bench._f(run.mean_batch)}, warm-up {warm_s:.1f} s; "
                  f"calls by padded size {log.summary()['by_padded_size']}", flush=True)
            print(f"  first calls (n, padded, ms, thread): {log.summary()['first_calls']}", flush=True)
    for name, make in rows.items():
        emb = make()
        run = bench.run_pipeline(name, run_cfg, bench.TimedEmbedder(emb))
        model_ms = run.stage_ms["model (batch call)"]
        report["rows"][name] = {"fps": run.fps, "mean_batch": run.mean_batch, "model_ms": model_ms,
                                "thread_cpu_s": run.thread_cpu_s, "frames": run.frames}
        busy = ", ".join(f"{g.split(' (')[0]} {v:.1f}" for g, v in run.thread_cpu_s.items() if v >= 0.1)
        print(f"{name:<40} {run.fps:7.1f} frames/s, batch {bench._f(run.mean_batch)}, model p50/p99 "
              f"{bench._f(model_ms['p50'], '.2f')}/{bench._f(model_ms['p99'], '.2f')} ms; CPU s: {busy}", flush=True)
    e = Embedder(model, providers=gpu)
    report["main_thread_calls_per_s"] = threaded_calls(e, tensors, worker=False)
    report["threaded_calls_per_s"] = threaded_calls(e, tensors)
    for where, key in (("the main thread", "main_thread_calls_per_s"), ("a worker thread", "threaded_calls_per_s")):
        print(f"model alone from {where}, calls/s by batch size:",
              {k: round(v) for k, v in report[key].items()}, flush=True)
    report["placement"] = placement(e, tensors, work)
    for prov, nodes in report["placement"].items():
        print(f"{prov}: {len(nodes)} nodes" + (f": {', '.join(nodes[:20])}" if prov.startswith("CPU") else ""),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
