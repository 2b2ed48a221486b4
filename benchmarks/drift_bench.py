"""Drift benchmark: streams with a shift injected at a known frame, embedded with the real model.

    python3 benchmarks/drift_bench.py [--window 50] [--alibi-python PATH] [--out benchmarks/out/drift]

Footage: ../shared/data/bottle-detection.mp4 (a fixed camera; Intel IoT devkit sample videos, CC BY 4.0)
and the ASL clips as "a scene the reference never saw", when present; synthetic frames otherwise.
The first 600 frames form the reference. Each stream replays frames 600-899 unchanged (the part
where false alarms are counted), then frames 900-1189 with a shift: night (dark, blue, noisy),
fog (grey veil and blur), camera moved (rotated, shifted, zoomed), or another scene (ASL clips);
a fifth stream has no shift. Windows are consecutive, non-overlapping, ``--window`` frames.

Reported per stream: false alarms before the shift (windows flagged at alpha 0.05), detection
delay in windows (0: the first window after the shift is flagged), and the cost of one update as
a share of the time the model took to embed the window's frames. Also the cost at the default
config (window 300, reference 2000). The same embeddings go to alibi-detect 0.13's MMDDrift
(offline permutation test) and MMDDriftOnline (expected run time) when an interpreter with
alibi-detect is given (``--alibi-python``; it pins numpy < 2, so keep it in its own venv).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# The drift update runs beside the model: one BLAS thread avoids two pools fighting over 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
REF_END, SHIFT_AT, END = 600, 900, 1189


# --------------------------------------------------------------------------- footage


def read_video(path: Path, limit: int | None = None) -> list[np.ndarray]:
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def synthetic_frames(n: int, seed: int = 0, hue: int = 0) -> list[np.ndarray]:
    """A fixed camera over a textured room; objects come and go and lighting flickers."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = 360, 640
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 0.2 + 40 + hue) % 255, (yy * 0.3 + 60) % 255, 120 + 40 * np.sin(xx / 50.0)], -1)
    base = base.astype(np.uint8)
    cv2.rectangle(base, (60, 200), (600, 340), (90, 70, 50), -1)  # a table
    objects = [(int(rng.integers(80, 560)), tuple(int(c) for c in rng.integers(0, 255, 3))) for _ in range(3)]
    frames = []
    for t in range(n):
        img = base.copy()
        for k, (x, colour) in enumerate(objects):
            if (t // 150 + k) % 4 != 0:  # objects leave and return
                cv2.rectangle(img, (x, 140), (x + 40, 230), colour, -1)
        if (t // 60) % 5 == 2:  # a hand reaches in
            cv2.circle(img, (int(320 + 200 * np.sin(t / 15.0)), 120), 35, (150, 170, 210), -1)
        img = cv2.convertScaleAbs(img, alpha=1.0 + 0.03 * np.sin(t / 7.0))
        img = cv2.add(img, rng.integers(0, 6, img.shape, dtype=np.uint8))
        frames.append(img)
    return frames


def night(img):
    import cv2
    dark = cv2.convertScaleAbs(img, alpha=0.3, beta=0)
    dark[:, :, 0] = cv2.add(dark[:, :, 0], 25)  # blue cast of the night lights
    noise = np.random.default_rng(int(img[0, 0, 0])).normal(0, 6, img.shape)
    return np.clip(dark + noise, 0, 255).astype(np.uint8)


def fog(img):
    import cv2
    veil = cv2.addWeighted(img, 0.45, np.full_like(img, 200), 0.55, 0)
    return cv2.GaussianBlur(veil, (9, 9), 0)


def moved(img):
    import cv2
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.15)
    m[:, 2] += (40, -25)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def footage() -> tuple[str, list[np.ndarray], list[np.ndarray]]:
    """(description, the camera's frames, frames of another scene)."""
    clip = DATA / "bottle-detection.mp4"
    if clip.exists():
        frames = read_video(clip)
        other: list[np.ndarray] = []
        for p in sorted((DATA / "asl").glob("*.mkv")):
            other += read_video(p, 60)
            if len(other) >= END - SHIFT_AT:
                break
        if len(frames) >= END and len(other) >= END - SHIFT_AT:
            return "../shared/data bottle-detection.mp4 + asl/*.mkv (Intel IoT devkit, CC BY 4.0)", frames, other
    return "synthetic frames", synthetic_frames(END, 0), synthetic_frames(END - SHIFT_AT, 1, hue=90)


# --------------------------------------------------------------------------- embedding


def embed_all(embedder, frames: list[np.ndarray], batch: int = 8) -> tuple[np.ndarray, float]:
    """Embeddings and seconds per frame of model time (preprocessing excluded)."""
    from edgefilter.preprocess import preprocess
    size, colour = tuple(embedder.input_size), getattr(embedder, "colour", "RGB")
    out, model_s = [], 0.0
    for i in range(0, len(frames), batch):
        x = np.stack([preprocess(f, size, colour) for f in frames[i:i + batch]])
        t = time.perf_counter()
        out.append(np.asarray(embedder.embed(x).vectors, np.float32))
        model_s += time.perf_counter() - t
    return np.concatenate(out), model_s / len(frames)


# --------------------------------------------------------------------------- evaluation


def evaluate(model, stream: np.ndarray, shift_at: int | None, window: int) -> dict:
    flags, costs, ps = [], [], []
    for i in range(len(stream) // window):
        t = time.perf_counter()
        s = model.compare(stream[i * window:(i + 1) * window])
        costs.append(time.perf_counter() - t)
        ps.append(s["p_value"])
        flags.append(s["p_value"] <= 0.05)
    before = len(flags) if shift_at is None else shift_at // window
    after = [i for i in range(before, len(flags)) if flags[i]]
    return {"windows_before": before, "false_alarms": int(sum(flags[:before])),
            "delay": (after[0] - before) if after else None, "windows_after": len(flags) - before,
            "update_s": float(np.median(costs)), "p_values": [round(p, 4) for p in ps]}


def run_alibi(python: str, payload: Path, window: int) -> dict | str:
    try:
        out = subprocess.run([python, __file__, "--alibi-worker", str(payload), "--window", str(window)],
                             capture_output=True, text=True, timeout=420)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"alibi-detect run failed: {exc}"
    if out.returncode != 0:
        return "alibi-detect run failed: " + out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "?"
    return json.loads(out.stdout.strip().splitlines()[-1])


def alibi_worker(payload: str, window: int) -> None:
    """Runs under the alibi-detect interpreter: offline MMDDrift and MMDDriftOnline on the embeddings."""
    from alibi_detect.cd import MMDDrift, MMDDriftOnline
    data = np.load(payload)
    ref = data["reference"]
    names = [str(n) for n in data["names"]]
    res: dict = {}
    t = time.perf_counter()
    offline = MMDDrift(ref, backend="pytorch", p_val=0.05, n_permutations=100)
    res["offline_init_s"] = time.perf_counter() - t
    ert = 25 * window  # one false alarm per 25 windows expected
    t = time.perf_counter()
    online = MMDDriftOnline(ref, ert=ert, window_size=window, backend="pytorch", n_bootstraps=2000, verbose=False)
    res["online_init_s"] = time.perf_counter() - t
    for name in names:
        x = data[f"stream_{name}"]
        shift = int(data[f"shift_{name}"])
        n_win = len(x) // window
        before = n_win if shift < 0 else shift // window
        flags, costs = [], []
        for i in range(n_win):
            t = time.perf_counter()
            flags.append(bool(offline.predict(x[i * window:(i + 1) * window])["data"]["is_drift"]))
            costs.append(time.perf_counter() - t)
        after = [i for i in range(before, n_win) if flags[i]]
        online.reset_state()
        alarms_before, detect, step_cost = 0, None, []
        for j in range(len(x)):
            t = time.perf_counter()
            drift = online.predict(x[j])["data"]["is_drift"]
            step_cost.append(time.perf_counter() - t)
            if drift:
                if shift < 0 or j < shift:
                    alarms_before += 1
                    online.reset_state()
                elif detect is None:
                    detect = j - shift
                    break
        res[name] = {"offline_false_alarms": int(sum(flags[:before])), "offline_windows_before": before,
                     "offline_delay": (after[0] - before) if after else None,
                     "offline_update_s": float(np.median(costs)),
                     "online_alarms_before": alarms_before, "online_frames_before": shift if shift >= 0 else len(x),
                     "online_delay_frames": detect, "online_step_s": float(np.median(step_cost))}
    print(json.dumps(res))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--alibi-python", default=None, help="interpreter with alibi-detect 0.13 installed")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "drift"))
    ap.add_argument("--alibi-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.alibi_worker:
        alibi_worker(args.alibi_worker, args.window)
        return 0
    sys.path.insert(0, str(REPO))
    from edgefilter.config import Config
    from edgefilter.drift import ReferenceModel
    from edgefilter.model import Embedder
    from edgefilter.reference import Reference

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    what, frames, other = footage()
    embedder = Embedder.from_config(Config())
    print(f"footage: {what}; model {embedder.model_id}", flush=True)
    streams_frames = {
        "no shift": frames[REF_END:END],
        "night": frames[REF_END:SHIFT_AT] + [night(f) for f in frames[SHIFT_AT:END]],
        "fog + blur": frames[REF_END:SHIFT_AT] + [fog(f) for f in frames[SHIFT_AT:END]],
        "camera moved": frames[REF_END:SHIFT_AT] + [moved(f) for f in frames[SHIFT_AT:END]],
        "unseen scene": frames[REF_END:SHIFT_AT] + other[:END - SHIFT_AT],
    }
    ref_vec, per_frame = embed_all(embedder, frames[:REF_END])
    normal_vec, pf2 = embed_all(embedder, frames[REF_END:SHIFT_AT])
    streams = {}
    model_s = [per_frame, pf2]
    for name, fr in streams_frames.items():
        if name == "no shift":
            tail, pf = embed_all(embedder, fr[SHIFT_AT - REF_END:])
        else:
            tail, pf = embed_all(embedder, fr[SHIFT_AT - REF_END:])
        model_s.append(pf)
        streams[name] = np.concatenate([normal_vec, tail])
    embed_s = float(np.median(model_s))
    print(f"embedding: {1 / embed_s:.0f} img/s of model time ({time.perf_counter() - t0:.0f} s so far)", flush=True)

    m = args.window
    reference = Reference(ref_vec, embedder.model_id, f"frames 0-{REF_END}")
    t = time.perf_counter()
    model = ReferenceModel(reference, window=m, permutations=200, components=8)
    build_s = time.perf_counter() - t
    results = {name: evaluate(model, x, None if name == "no shift" else SHIFT_AT - REF_END, m)
               for name, x in streams.items()}

    # cost at the default config: window 300 against a 2000-vector reference
    rng = np.random.default_rng(0)
    big = np.concatenate([ref_vec] * 4)[:2000] + rng.normal(0, 0.01, (2000, ref_vec.shape[1])).astype(np.float32)
    t = time.perf_counter()
    big_model = ReferenceModel(Reference(big, embedder.model_id, "tiled"), window=300, permutations=200,
                               components=8)
    big_build_s = time.perf_counter() - t
    w300 = streams["no shift"][:300]
    big_model.compare(w300)
    costs = []
    for _ in range(10):
        t = time.perf_counter()
        big_model.compare(w300)
        costs.append(time.perf_counter() - t)
    default_cost = float(np.median(costs))

    alibi: dict | str = "not run (no --alibi-python)"
    if args.alibi_python:
        payload = out / "embeddings.npz"
        arrays = {"reference": ref_vec, "names": np.array([n.replace(" ", "_") for n in streams])}
        for name, x in streams.items():
            key = name.replace(" ", "_")
            arrays[f"stream_{key}"] = x
            arrays[f"shift_{key}"] = np.array(-1 if name == "no shift" else SHIFT_AT - REF_END)
        np.savez(payload, **arrays)
        alibi = run_alibi(args.alibi_python, payload, m)

    # ---- report
    lines = [f"window {m} frames, reference {len(ref_vec)} frames ({len(ref_vec) / m:.0f} windows), "
             f"shift after {(SHIFT_AT - REF_END) // m} windows; model time {embed_s * 1000:.2f} ms/frame",
             "", "| stream | false alarms before shift | delay (windows) | update | share of embedding |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        delay = "-" if name == "no shift" else ("missed" if r["delay"] is None else str(r["delay"]))
        fa = f"{r['false_alarms']}/{r['windows_before']}"
        if name == "no shift":
            fa = f"{r['false_alarms']}/{r['windows_before']} (whole stream)"
        lines.append(f"| {name} | {fa} | {delay} | {r['update_s'] * 1000:.1f} ms | "
                     f"{r['update_s'] / (m * embed_s) * 100:.1f}% |")
    lines += ["", f"reference model build (once): {build_s:.2f} s; default config (window 300, reference 2000): "
              f"build {big_build_s:.2f} s, update {default_cost * 1000:.1f} ms = "
              f"{default_cost / (300 * embed_s) * 100:.2f}% of embedding 300 frames ({300 * embed_s:.2f} s)"]
    if isinstance(alibi, dict):
        lines += ["", "alibi-detect 0.13 (pytorch backend, same embeddings):", "",
                  "| stream | MMDDrift false alarms | MMDDrift delay | MMDDrift update | "
                  "MMDDriftOnline alarms before shift (ERT 25 windows) | MMDDriftOnline delay (frames) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name in streams:
            a = alibi[name.replace(" ", "_")]
            d = "-" if name == "no shift" else ("missed" if a["offline_delay"] is None else a["offline_delay"])
            od = "-" if name == "no shift" else ("missed" if a["online_delay_frames"] is None
                                                  else a["online_delay_frames"])
            lines.append(f"| {name} | {a['offline_false_alarms']}/{a['offline_windows_before']} | {d} | "
                         f"{a['offline_update_s'] * 1000:.0f} ms | {a['online_alarms_before']} in "
                         f"{a['online_frames_before']} frames | {od} |")
        lines.append(f"\nalibi init: MMDDrift {alibi['offline_init_s']:.1f} s, "
                     f"MMDDriftOnline {alibi['online_init_s']:.1f} s")
    else:
        lines += ["", f"alibi-detect: {alibi}"]
    text = "\n".join(lines)
    print(text)
    (out / "results.json").write_text(json.dumps({"footage": what, "model": embedder.model_id, "window": m,
                                                  "embed_s_per_frame": embed_s, "results": results,
                                                  "default_update_s": default_cost, "alibi": alibi,
                                                  "machine": platform.node(), "cpus": os.cpu_count(),
                                                  "date": time.strftime("%Y-%m-%d")}, indent=1))
    (out / "table.md").write_text(text + "\n")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
