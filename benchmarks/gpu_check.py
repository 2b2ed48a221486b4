"""The CUDA path against the CPU path, on the same frames, on a machine with a GPU.

    python benchmarks/gpu_check.py [--json FILE] [--frames 1800]

It prints and checks:
- which providers onnxruntime offers and whether ``providers: auto`` really chose CUDA;
- the cosine distance between CPU and CUDA embeddings (fp32 and the fp16 variant) of the same frames,
  for the whole-image vector and for every region cell, against the filter's threshold;
- the frames the default filter (config.yaml's, on the demo street camera read from a file) keeps when
  the model runs on the CPU, on CUDA fp32 and on CUDA fp16, through the real daemon.
Exit status 1 when ``auto`` did not choose CUDA, a run did not read the whole clip, or CUDA fp32 keeps
other frames than the CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgefilter import bench  # noqa: E402
from edgefilter.config import load_config  # noqa: E402
from edgefilter.model import CUDA, Embedder, probe_providers  # noqa: E402
from edgefilter.preprocess import preprocess  # noqa: E402


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - np.sum(a * b, axis=-1)


def embed_all(embedder: Embedder, tensors: list[np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray | None]:
    vecs, regions = [], []
    for i in range(0, len(tensors), batch):
        out = embedder.embed(np.stack(tensors[i:i + batch]))
        vecs.append(out.vectors)
        if out.regions is not None:
            regions.append(out.regions)
    return np.concatenate(vecs), (np.concatenate(regions) if regions else None)


def stats(d: np.ndarray) -> dict:
    return {"max": float(d.max()), "p99": float(np.percentile(d, 99)), "mean": float(d.mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--frames", type=int, default=1800, help="length of the demo clip run through the daemon")
    ap.add_argument("--dry-run", action="store_true", help="the CPU in place of CUDA: checks this script itself")
    args = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    model = ROOT / cfg.model.path
    probe = probe_providers()
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "available": list(probe.available),
                    "cuda_ok": probe.cuda_ok, "cuda_reason": probe.cuda_reason}
    print(f"providers {probe.available}; CUDA usable: {probe.cuda_ok} {probe.cuda_reason or ''}", flush=True)
    auto = Embedder(model, providers="auto")
    report["auto_provider"] = auto.provider
    print(f"providers: auto -> {auto.provider}", flush=True)
    gpu = "cpu" if args.dry_run else "cuda"
    embedders = {"cpu": Embedder(model, providers="cpu"), "cuda-fp32": Embedder(model, providers=gpu),
                 "cuda-fp16": Embedder(model, providers=gpu, fp16=True)}
    report["files"] = {k: e.path.name for k, e in embedders.items()}

    work = Path(tempfile.mkdtemp(prefix="edgefilter-gpu-check-"))
    video = bench.demo_video(work, args.frames, 640, 360)
    images = bench.decoded_frames(video, 256)
    cpu = embedders["cpu"]
    tensors = [preprocess(im, cpu.input_size, cpu.colour) for im in images]
    ref_vec, ref_reg = embed_all(cpu, tensors, 8)
    report["embeddings"] = {}
    for name in ("cuda-fp32", "cuda-fp16"):
        vec, reg = embed_all(embedders[name], tensors, 8)
        row = {"whole": stats(cosine_distances(ref_vec, vec))}
        if reg is not None and ref_reg is not None:
            row["regions"] = stats(cosine_distances(ref_reg.reshape(-1, ref_reg.shape[-1]),
                                                    reg.reshape(-1, reg.shape[-1])))
        # The same frame embedded alone and in a batch of 8 (CUDA picks kernels per batch size).
        alone = np.concatenate([embedders[name].embed(t[None]).vectors for t in tensors[:16]])
        row["alone_vs_batch"] = stats(cosine_distances(alone, vec[:16]))
        report["embeddings"][name] = row
        print(f"{name} vs CPU, cosine distance over {len(tensors)} frames: whole {row['whole']}, regions "
              f"{row.get('regions')}; one frame alone vs in a batch {row['alone_vs_batch']}", flush=True)

    # The default filter on the demo clip, through the real daemon, with each embedder.
    # OpenCV decodes in-process: the GPU machine may have no ffmpeg, and the decoder is not what is checked.
    source = dataclasses.replace(cfg.sources[0], url=str(video), realtime=False, decoder="opencv")
    base = dataclasses.replace(cfg, sources=[source],
                               log=dataclasses.replace(cfg.log, level="warning"))
    report["kept"] = {}
    for name, emb in embedders.items():
        run = bench.run_pipeline(f"check-{name}", base, bench.TimedEmbedder(emb))
        kept = run.kept_indexes.get(cfg.sources[0].name, [])
        report["kept"][name] = {"frames": run.frames, "kept": kept, "fps": run.fps, "exit_code": run.exit_code}
        print(f"{name}: {run.frames} frames at {run.fps:.0f} frames/s, kept {kept}", flush=True)
    same32 = report["kept"]["cuda-fp32"]["kept"] == report["kept"]["cpu"]["kept"]
    same16 = report["kept"]["cuda-fp16"]["kept"] == report["kept"]["cpu"]["kept"]
    report["same_keeps"] = {"cuda-fp32": same32, "cuda-fp16": same16}
    ran = all(k["frames"] == args.frames and k["exit_code"] == 0 for k in report["kept"].values())
    ok = report["auto_provider"] == CUDA and same32 and ran
    report["ok"] = ok
    print(f"auto chose CUDA: {report['auto_provider'] == CUDA}; every run read all {args.frames} frames: {ran}; "
          f"CUDA fp32 keeps the CPU's frames: {same32}; fp16: {same16}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
