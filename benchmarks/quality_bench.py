"""Selection-quality benchmark: does edgefilter keep every new thing and almost nothing repeated?

    python benchmarks/quality_bench.py [--quick] [--data ../shared/data] [--out benchmarks/out/quality]
                                       [--write-md benchmarks/QUALITY.md] [--report STREAM]

Builds labelled streams (benchmarks/streams.py: synthetic ones always, the real clips when --data
exists), computes per distinct image the features every method needs (embeddings of the default
model and its region graph, int8 embeddings, grey thumbnails, pHash, PySceneDetect's HSV frames;
cached under --out/cache), runs edgefilter's novelty filter with its default configuration and the
baselines (benchmarks/baselines.py), sweeps each baseline's parameter for the fewest kept frames at
which it reaches 0.95 event recall, and writes results.json and results.md under --out (and the
results section of QUALITY.md with --write-md). Needs the `bench` extra (imagehash, scenedetect).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import baselines  # noqa: E402
from benchmarks.streams import Stream, asl_stream, bottle_stream, demo_stream, events_of, frames_for_recall, \
    objects_stream, render_batches, score  # noqa: E402
from edgefilter.clock import FakeClock  # noqa: E402
from edgefilter.config import FilterConfig, GatesConfig  # noqa: E402
from edgefilter.gates import ChangeGate, grey_thumbnail  # noqa: E402
from edgefilter.novelty import NoveltyFilter  # noqa: E402
from edgefilter.preprocess import preprocess  # noqa: E402

log = logging.getLogger("quality_bench")

MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
REGIONS_MODEL = ROOT / "models" / "efficientnet_lite0_regions.onnx"
INT8_MODEL = ROOT / "models" / "efficientnet_lite0_int8.onnx"
FEATURES_VERSION = 4  # 3: preprocess block-averages then bilinear; 4: 7x7x320 region cells
TARGET_RECALL = 0.95
HSV_WIDTH = 160  # PySceneDetect downscales before scoring; 160 px keeps the feature cache small

# ----------------------------------------------------------------------------- embedding


class RawEmbedder:
    """Plain onnxruntime session (for graphs without a model card, such as the int8 variant)."""

    def __init__(self, path: Path, threads: int = 2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.session.run(None, {self.input: batch})
        got = dict(zip(self.outputs, out))
        return got["embedding"].astype(np.float32), got.get("regions")


def card_embedder(path: Path):
    """edgefilter's own Embedder when it loads; the raw session otherwise (said in the log)."""
    try:
        from edgefilter.model import Embedder

        e = Embedder(path, providers="cpu", threads=2)

        def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            r = e.embed(batch)
            return r.vectors, r.regions

        run.kind = f"edgefilter.model.Embedder ({e.model_id})"
        return run
    except Exception as exc:  # model.py still being written, or the card does not fit
        log.warning("edgefilter.model.Embedder unusable for %s (%s); using a raw onnxruntime session", path, exc)
        raw = RawEmbedder(path)
        raw.kind = "onnxruntime session"
        return raw


@dataclasses.dataclass
class Features:
    vec: np.ndarray        # (K, 1280) float32, unit
    regions: np.ndarray    # (K, 49, 320) float16, unit rows (the regions graph's 7x7 cells)
    vec8: np.ndarray | None  # (K, 1280) float32 from the int8 model
    thumb: np.ndarray      # (K, 36, 64) float32 grey
    phash: np.ndarray      # (K, 8) uint8, packed 64-bit pHash
    hsv: np.ndarray        # (K, h, 160, 3) uint8


def _cache_name(stream: Stream, int8: bool) -> str:
    h = hashlib.sha1()
    h.update(repr((FEATURES_VERSION, stream.renders, int8)).encode())
    for p in (REGIONS_MODEL, INT8_MODEL if int8 else None):
        if p is not None:
            h.update(p.read_bytes()[:4096] + str(p.stat().st_size).encode())
    return f"{stream.name}-{h.hexdigest()[:12]}.npz"


def compute_features(stream: Stream, cache_dir: Path, int8: bool, embedders: dict) -> Features:
    import imagehash
    from PIL import Image

    cache = cache_dir / _cache_name(stream, int8)
    if cache.is_file():
        z = np.load(cache)
        return Features(z["vec"], z["regions"], z["vec8"] if "vec8" in z.files else None, z["thumb"], z["phash"],
                        z["hsv"])
    K = len(stream.renders)
    t0 = time.perf_counter()
    vec = np.zeros((K, 1280), np.float32)
    regions = None
    vec8 = np.zeros((K, 1280), np.float32) if int8 else None
    thumb = np.zeros((K, 36, 64), np.float32)
    phash = np.zeros((K, 8), np.uint8)
    hsv = None
    for keys, images in render_batches(stream):
        x = np.stack([preprocess(img, (224, 224)) for img in images])
        v, r = embedders["regions"](x)
        vec[keys] = v
        if regions is None:
            regions = np.zeros((K,) + r.shape[1:], np.float16)
        regions[keys] = r.astype(np.float16)
        if int8:
            v8, _ = embedders["int8"](x)
            vec8[keys] = v8
        for k, img in zip(keys, images):
            thumb[k] = grey_thumbnail(img)
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            phash[k] = np.packbits(imagehash.phash(Image.fromarray(rgb)).hash.ravel())
            small = cv2.resize(img, (HSV_WIDTH, round(img.shape[0] * HSV_WIDTH / img.shape[1])),
                               interpolation=cv2.INTER_AREA)
            if hsv is None:
                hsv = np.zeros((K,) + small.shape, np.uint8)
            hsv[k] = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    log.info("%s: %d distinct images embedded in %.0f s", stream.name, K, time.perf_counter() - t0)
    cache_dir.mkdir(parents=True, exist_ok=True)
    extra = {"vec8": vec8} if int8 else {}
    np.savez(cache, vec=vec, regions=regions, thumb=thumb, phash=phash, hsv=hsv, **extra)
    return Features(vec, regions, vec8, thumb, phash, hsv)


# ----------------------------------------------------------------------------- edgefilter's filter


@dataclasses.dataclass
class FilterRun:
    kept: list[int]              # frame indices kept, in order
    distance: np.ndarray         # per frame: distance to the nearest kept frame when decided (nan: none)
    skipped: float               # share of frames the pre-gate skipped
    decided: dict[int, int]      # kept frame -> frame after which it was published (event mode holds)
    events: list[tuple[int, int, bool]]  # event mode: (first held frame, deciding frame, kept one)
    regions: dict[int, tuple[int, float]] = dataclasses.field(default_factory=dict)  # kept by a region: (cell, change)


def run_filter(stream: Stream, vectors: np.ndarray, cfg: FilterConfig, regions: np.ndarray | None = None,
               skip_unchanged: float = 0.0, thumbs: np.ndarray | None = None, batch: int | None = None
               ) -> FilterRun:
    """edgefilter's NoveltyFilter over a stream, as the daemon feeds it (micro-batches in order, tokens,
    released()/discarded() after every batch, flush() at the end; with the pre-gate, a skipped frame
    reuses the last embedded frame's vectors). ``vectors``/``regions`` and ``thumbs`` are per render key.

    Decisions do not depend on the batch size; publication does: the daemon publishes what a batch
    released after the batch. Event mode therefore runs frame by frame (batch 1) by default, so the
    measured delay is the filter's own (from event start to the deciding frame), not the batching's."""
    name = stream.name
    batch = batch or (1 if cfg.mode == "event" else 32)
    filt = NoveltyFilter(cfg, vectors.shape[1], [name], FakeClock(),
                         region_count=regions.shape[1] if regions is not None else 0,
                         region_dim=regions.shape[2] if regions is not None else None)
    gate = ChangeGate(GatesConfig(skip_unchanged=skip_unchanged)) if skip_unchanged > 0 else None
    keys = stream.keys
    n = len(keys)
    source_key = keys.copy()
    skipped = 0
    if gate is not None:
        last = int(keys[0])
        for i in range(n):
            if gate.should_skip(thumbs[keys[i]]):
                source_key[i] = last
                skipped += 1
            else:
                last = int(keys[i])
    kept: list[int] = []
    decided: dict[int, int] = {}
    events: list[tuple[int, int, bool]] = []
    dist = np.full(n, np.nan, np.float32)  # whole-image distances (a region's change is in other units)
    by_region: dict[int, tuple[int, float]] = {}
    open_at: int | None = None

    def settle(keeps, at: int) -> None:
        nonlocal open_at
        for tok, d in keeps:
            kept.append(tok)
            decided[tok] = at
            if d.region is not None:
                by_region[tok] = (d.region, d.distance)
            else:
                dist[tok] = d.distance if d.distance is not None else np.nan
        gone = filt.discarded()
        if (keeps or gone) and open_at is not None and not filt.holding(name):
            events.append((open_at, at, bool(keeps)))
            open_at = None

    for a in range(0, n, batch):
        items = []
        for i in range(a, min(n, a + batch)):
            k = int(source_key[i])
            items.append((name, i / stream.fps, vectors[k],
                          regions[k].astype(np.float32) if regions is not None else None, i))
        for j, d in enumerate(filt.decide(items)):
            if d.keep:
                kept.append(a + j)
            if d.held and open_at is None:
                open_at = a + j
            if d.keep and d.region is not None:
                by_region[a + j] = (d.region, d.distance)
            elif d.distance is not None and d.region is None:
                dist[a + j] = d.distance
        settle(filt.released(), a + len(items) - 1)
    settle(filt.flush(), n - 1)
    return FilterRun(sorted(kept), dist, skipped / n, decided, events, by_region)


# ----------------------------------------------------------------------------- methods


def sweep_points(stream: Stream, kept_of, params) -> list[tuple[int, float, object]]:
    out = []
    for p in params:
        kept = kept_of(p)
        s = score(stream.state, stream.static, kept, novel_only=stream.novel_only)
        out.append((s.kept, s.recall, p))
    return out


def baselines_for(stream: Stream, f: Features, quick: bool) -> dict:
    n = len(stream)
    frame_vec = f.vec[stream.keys]
    res = {}
    everys = sorted({max(1, int(round(x))) for x in np.geomspace(1, n / 4, 28 if quick else 48)})
    # uniform: recall averaged over the sampling phase (no one picks the lucky phase in advance)
    pts = []
    for e in everys:
        phases = sorted({int(x) for x in np.linspace(0, e - 1, min(e, 8))})
        rs = [score(stream.state, stream.static, baselines.uniform(n, e, p), novel_only=stream.novel_only)
              for p in phases]
        pts.append((int(round(np.mean([r.kept for r in rs]))), float(np.mean([r.recall for r in rs])), e))
    res["uniform"] = pts
    res["pixel-diff"] = sweep_points(stream, lambda t: baselines.greedy(stream.keys, f.thumb, baselines.pixel_distance, t),
                                     [float(x) for x in np.geomspace(1.0, 60.0, 16 if quick else 28)])
    res["phash"] = sweep_points(stream, lambda t: baselines.greedy(stream.keys, f.phash, baselines.hamming_distance, t),
                                list(range(0, 33, 2 if quick else 1)))
    scores = baselines.content_scores(stream.keys, f.hsv)
    res["scenedetect"] = sweep_points(stream, lambda t: baselines.scene_cuts(scores, t, stream.fps),
                                      [float(x) for x in np.geomspace(1.0, 60.0, 14 if quick else 24)])
    order = baselines.k_center(frame_vec, min(n, 400))
    ks = sorted({int(round(x)) for x in np.geomspace(1, len(order), 40)})
    res["k-center (offline)"] = sweep_points(stream, lambda k: order[:k], ks)
    return res


def summarise(stream: Stream, kept, decided=None) -> dict:
    s = score(stream.state, stream.static, kept, decided, novel_only=stream.novel_only)
    c = score(stream.state, stream.static, kept, decided, novel_only=False)
    row = s.row()
    row["change_recall"] = c.recall
    row["change_events"] = c.events
    row["delay_s"] = s.delay_mean / stream.fps if s.delay_mean is not None else None
    return row


def _kd(run: FilterRun) -> tuple[list[int], dict[int, int]]:
    return run.kept, run.decided


def hold_stats(stream: Stream, run: FilterRun) -> dict:
    """Event mode's publication delay: from the frame that opened a candidate to the frame that decided
    it (frames and seconds), over every candidate; and the share of candidates that kept nothing."""
    held = np.array([b - a for a, b, _ in run.events], float)
    if not len(held):
        return {"events": 0}
    q = np.percentile(held, [50, 90, 100])
    return {"events": len(held), "kept": int(sum(k for _, _, k in run.events)),
            "frames_p50": float(q[0]), "frames_p90": float(q[1]), "frames_max": float(q[2]),
            "s_p50": float(q[0] / stream.fps), "s_p90": float(q[1] / stream.fps), "s_max": float(q[2] / stream.fps),
            "s_mean": float(held.mean() / stream.fps)}


def evaluate(stream: Stream, f: Features, quick: bool) -> dict:
    t0 = time.perf_counter()
    out: dict = {"name": stream.name, "description": stream.description, "frames": len(stream),
                 "distinct_images": len(stream.renders), "fps": stream.fps,
                 "minutes": len(stream) / stream.fps / 60,
                 "events": len([e for e in events_of(stream.state) if e.novel]),
                 "changes": len(events_of(stream.state)), "methods": {}, "sweeps": {}}
    default = FilterConfig()  # event mode, regional novelty on
    whole = dataclasses.replace(default, regional=False)  # the whole-image embedding alone
    frame = dataclasses.replace(whole, mode="frame")
    run = run_filter(stream, f.vec, default, regions=f.regions)
    out["methods"]["edgefilter"] = summarise(stream, run.kept, run.decided)
    out["edgefilter_run"] = {"kept": run.kept, "distance": run.distance, "regions": run.regions}
    out["holds"] = hold_stats(stream, run)
    run = run_filter(stream, f.vec, whole)
    out["methods"]["edgefilter whole image"] = summarise(stream, run.kept, run.decided)
    run = run_filter(stream, f.vec, frame)
    out["methods"]["edgefilter frame"] = summarise(stream, run.kept)
    # threshold sweeps, per frame and per event; region threshold sweeps
    ths = [0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25] if not quick else [0.06, 0.08, 0.1, 0.15, 0.2]
    for label, cfg in (("edgefilter threshold", frame), ("edgefilter event threshold", whole)):
        out["sweeps"][label] = [(t, summarise(stream, *_kd(run_filter(stream, f.vec, dataclasses.replace(cfg, threshold=t)))))
                                for t in ths]
    rts = [7.0, 8.0, 9.0, 10.0, 12.0] if not quick else [8.0, 9.0, 10.0]  # noise units (filter.region_threshold)
    for label, cfg in (("edgefilter regional r", frame), ("edgefilter event regional r", whole)):
        out["sweeps"][label] = [
            (rt, summarise(stream, *_kd(run_filter(stream, f.vec, dataclasses.replace(cfg, regional=True, region_threshold=rt),
                                                   regions=f.regions)))) for rt in rts]
    # pre-gate
    for g in ([4.0] if quick else [2.0, 4.0, 8.0]):
        run = run_filter(stream, f.vec, default, regions=f.regions, skip_unchanged=g, thumbs=f.thumb)
        row = summarise(stream, run.kept, run.decided)
        row["model_skipped"] = run.skipped
        out["methods"][f"edgefilter pre-gate {g:g}"] = row
    # regional novelty per frame at the default region threshold, and the neighbours of the default per event
    out["methods"]["edgefilter frame regional"] = dict(out["sweeps"]["edgefilter regional r"])[default.region_threshold]
    for rt, row in out["sweeps"]["edgefilter event regional r"]:
        if rt != default.region_threshold and abs(rt - default.region_threshold) <= 1.0:
            out["methods"][f"edgefilter r={rt:g}"] = row
    if f.vec8 is not None:  # the int8 graph has no region output
        run = run_filter(stream, f.vec8, whole)
        out["methods"]["edgefilter int8 whole image"] = summarise(stream, run.kept, run.decided)
    # the benchmark prototype the event mode was built from (same defaults, its own noise floor)
    frame_vec = f.vec[stream.keys]
    k, dec = baselines.HoldFilter().run(frame_vec)
    out["methods"]["hold-until-settled (prototype)"] = summarise(stream, k, dec)
    # baselines
    sweeps = baselines_for(stream, f, quick)
    for name, pts in sweeps.items():
        kept_n, rec, param = frames_for_recall(pts, TARGET_RECALL)
        out["methods"][name] = {"frames_for_recall": kept_n, "recall": rec, "param": param,
                                "detail": _baseline_detail(stream, f, name, param)}
    out["sweeps"].update({k: v for k, v in sweeps.items()})
    out["seconds"] = time.perf_counter() - t0
    return out


def _baseline_detail(stream: Stream, f: Features, name: str, param) -> dict:
    """Full score of a baseline at its chosen parameter."""
    n = len(stream)
    if param is None:
        return {}
    if name == "uniform":
        kept = baselines.uniform(n, param)
    elif name == "pixel-diff":
        kept = baselines.greedy(stream.keys, f.thumb, baselines.pixel_distance, param)
    elif name == "phash":
        kept = baselines.greedy(stream.keys, f.phash, baselines.hamming_distance, param)
    elif name == "scenedetect":
        kept = baselines.scene_cuts(baselines.content_scores(stream.keys, f.hsv), param, stream.fps)
    else:
        kept = baselines.k_center(f.vec[stream.keys], param)[:param]
    return summarise(stream, kept)


# ----------------------------------------------------------------------------- report of one stream


def write_stream_report(stream: Stream, run: dict, out: Path, threshold: float, region_threshold: float) -> Path:
    """Write edgefilter's run over ``stream`` in a subscriber's layout (manifest.jsonl, JPEGs, plus
    the benchmark-only timeline.jsonl) and render it with ``edgefilter report``."""
    from edgefilter.report import build_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "frames").mkdir(exist_ok=True)
    kept = set(run["kept"])
    dist = run["distance"]
    with open(out / "manifest.jsonl", "w") as man, open(out / "timeline.jsonl", "w") as tl:
        for seq, i in enumerate(sorted(kept)):
            img = stream.image(i)
            name = f"frames/{stream.name}-{i:06d}.jpg"
            cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            d = float(dist[i]) if np.isfinite(dist[i]) else None
            region, th = None, threshold
            if i in run.get("regions", {}):
                (region, d), th = run["regions"][i], region_threshold
            man.write(json.dumps({"v": 1, "source": stream.name, "seq": seq, "frame_index": i, "ts": i / stream.fps,
                                  "distance": d, "reason": "first" if d is None else "novel", "region": region,
                                  "threshold": th,
                                  "width": img.shape[1], "height": img.shape[0], "encoding": "jpeg",
                                  "model": "efficientnet_lite0", "embedding_dim": 1280, "file": name,
                                  "received": i / stream.fps}) + "\n")
        for i in range(len(stream)):
            d = float(dist[i]) if np.isfinite(dist[i]) else None
            tl.write(json.dumps({"source": stream.name, "frame_index": i, "ts": i / stream.fps, "distance": d,
                                 "kept": i in kept, "threshold": threshold}) + "\n")
    return build_report(out, out / "report", threshold)


# ----------------------------------------------------------------------------- output


def _fmt(x, nd=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"Run {meta['date']} on {meta['machine']}; {meta['mode']} mode; {meta['seconds']:.0f} s. "
             f"Embeddings: {meta['embedder']}.", ""]
    lines += ["| stream | frames (min) | events (changes) |", "| --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['name']} | {r['frames']} ({r['minutes']:.1f}) | {r['events']} ({r['changes']}) |")
    lines += ["", "**Filter methods** (default config - event mode, regional novelty - unless the row says otherwise; "
              "'whole image': `regional: false`; no per-stream "
              "tuning). recall: novel events hit; change: every change of state hit; redundant: keeps of a state "
              "after its first keep; static max: most such keeps in one stretched unchanged period; delay: mean "
              "seconds from an event's start to the decision that kept its first kept frame.", "",
              "| stream | method | recall | change | kept | keep % | redundant | static max | delay s | model skipped |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for m, row in r["methods"].items():
            if "frames_for_recall" in row:
                continue
            lines.append(f"| {r['name']} | {m} | {_fmt(row['recall'])} | {_fmt(row['change_recall'])} | {row['kept']} | "
                         f"{100 * row['keep_ratio']:.2f} | {row['redundant']} | {row['static_redundant_max']} | "
                         f"{_fmt(row['delay_s'], 1)} | {_fmt(row.get('model_skipped'))} |")
    lines += ["", "**Baselines**: fewest kept frames at which each reaches recall >= 0.95 over its parameter sweep "
              "(or its best recall, with '-' kept); the row's other columns are at that parameter.", "",
              "| stream | method | frames for 0.95 | recall | param | redundant | static max | delay s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for m, row in r["methods"].items():
            if "frames_for_recall" not in row:
                continue
            d = row["detail"] or {}
            lines.append(f"| {r['name']} | {m} | {_fmt(row['frames_for_recall'])} | {_fmt(row['recall'])} | "
                         f"{_fmt(row['param'])} | {_fmt(d.get('redundant'))} | {_fmt(d.get('static_redundant_max'))} | "
                         f"{_fmt(d.get('delay_s'), 1)} |")
    lines += ["", "**Can the target be reached at all?** A method with recall >= 0.95 keeps at least one frame for "
              "ceil(0.95 x novel events) events; when a third of the best online baseline's frames is fewer than "
              "that, no method can meet the target on that stream, however good:", "",
              "| stream | novel events | fewest frames for recall 0.95 | best online baseline (frames) | "
              "a third of it | reachable |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        base = [(row["frames_for_recall"], m) for m, row in r["methods"].items()
                if "frames_for_recall" in row and row["frames_for_recall"] is not None and "offline" not in m]
        best = min(base) if base else (None, "none reaches 0.95")
        floor = math.ceil(TARGET_RECALL * r["events"] - 1e-9)
        third = best[0] / 3 if best[0] else None
        lines.append(f"| {r['name']} | {r['events']} | {floor} | {best[1]} ({_fmt(best[0])}) | {_fmt(third)} | "
                     f"{'yes' if third is not None and third >= floor else 'no'} |")
    lines += ["", "**Target check**: recall >= 0.95, kept <= 1/3 of the frames the best online baseline needs "
              "for 0.95 (ratio), at most one redundant keep per unchanged period (static max <= 1):", "",
              "| stream | method | recall | kept | best baseline (frames) | ratio | static max <= 1 | met |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        base = [(row["frames_for_recall"], m) for m, row in r["methods"].items()
                if "frames_for_recall" in row and row["frames_for_recall"] is not None and "offline" not in m]
        best = min(base) if base else (None, "none reaches 0.95")
        for m, e in r["methods"].items():
            if "frames_for_recall" in e or "pre-gate" in m or " r=" in m:
                continue
            ratio = e["kept"] / best[0] if best[0] else None
            met = (e["recall"] >= TARGET_RECALL and ratio is not None and ratio <= 1 / 3
                   and e["static_redundant_max"] <= 1)
            lines.append(f"| {r['name']} | {m} | {_fmt(e['recall'])} | {e['kept']} | {best[1]} ({_fmt(best[0])}) | "
                         f"{_fmt(ratio)} | {'yes' if e['static_redundant_max'] <= 1 else 'no'} | "
                         f"{'yes' if met else 'no'} |")
    for key, title, p in (
            ("edgefilter threshold", "Threshold sweep, whole image, per frame (`mode: frame`, `regional: false`)", "t"),
            ("edgefilter event threshold", "Threshold sweep, whole image, per event (`mode: event`, `regional: false`)",
             "t"),
            ("edgefilter regional r", "Region threshold sweep, per frame (`regional: true`, t=0.15)", "r"),
            ("edgefilter event regional r", "Region threshold sweep, per event (the defaults but r)", "r")):
        lines += ["", f"**{title}**: recall / change recall / kept / static max:", ""]
        ths = None
        for r in results:
            sw = r["sweeps"][key]
            if ths is None:
                ths = [t for t, _ in sw]
                lines += ["| stream | " + " | ".join(f"{p}={t:g}" for t in ths) + " |",
                          "| --- | " + " | ".join("---" for _ in ths) + " |"]
            lines.append(f"| {r['name']} | " + " | ".join(
                f"{row['recall']:.2f} / {row['change_recall']:.2f} / {row['kept']} / {row['static_redundant_max']}"
                for _, row in sw) + " |")
    lines += ["", "**Event mode publication delay** (defaults): from the frame that opened a candidate to the "
              "frame that decided it, over every candidate; 'kept' counts candidates that kept a frame.", "",
              "| stream | candidates | kept | p50 s (frames) | p90 s (frames) | max s (frames) | mean s |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        h = r.get("holds") or {}
        if not h.get("events"):
            lines.append(f"| {r['name']} | 0 | 0 | - | - | - | - |")
            continue
        lines.append(f"| {r['name']} | {h['events']} | {h['kept']} | {h['s_p50']:.1f} ({h['frames_p50']:.0f}) | "
                     f"{h['s_p90']:.1f} ({h['frames_p90']:.0f}) | {h['s_max']:.1f} ({h['frames_max']:.0f}) | "
                     f"{h['s_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def write_md(path: Path, text: str) -> None:
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    body = path.read_text() if path.is_file() else f"# Selection quality\n\n{start}\n{end}\n"
    if start not in body:
        body += f"\n{start}\n{end}\n"
    a, b = body.index(start) + len(start), body.index(end)
    path.write_text(body[:a] + "\n" + text + body[b:])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared), {platform.system()} {platform.release().split('-')[0]}"


def build_streams(data: Path | None, quick: bool) -> list[Stream]:
    streams = [demo_stream(120 if quick else 360, fps=5.0),
               objects_stream(20 if quick else 90)]
    if data is not None and (data / "labels.json").is_file():
        streams.append(bottle_stream(data, 20 if quick else 120, hold_frames=2))
        streams.append(asl_stream(data, 15 if quick else 60, clips=8 if quick else None, hold_frames=2))
        # the same footage with unchanged periods of irregular length, seconds to many minutes
        streams.append(bottle_stream(data, 20 if quick else 120, hold_frames=2, spread=4.0))
        streams.append(asl_stream(data, 15 if quick else 60, clips=8 if quick else None, hold_frames=2, spread=4.0))
    else:
        log.warning("no labelled clips at %s: synthetic streams only", data)
    return streams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short streams, fewer sweep points (~2 minutes)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "quality")
    ap.add_argument("--write-md", type=Path, default=None, help="update the results section of this markdown file")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--report", default=None, help="write an edgefilter report of this stream's run under --out")
    ap.add_argument("--only", default=None, help="comma-separated stream names")
    ap.add_argument("--markdown-from", type=Path, default=None,
                    help="only render the tables again from a results.json of an earlier run")
    args = ap.parse_args(argv)
    if args.markdown_from:
        saved = json.loads(args.markdown_from.read_text())
        md = markdown(saved["streams"], saved["meta"])
        if args.write_md:
            write_md(args.write_md, md)
        print(md)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    data = args.data if args.data and args.data.is_dir() else None
    streams = build_streams(data, args.quick)
    if args.only:
        streams = [s for s in streams if s.name in args.only.split(",")]
    int8 = INT8_MODEL.is_file() and not args.no_int8 and not args.quick
    embedders = {"regions": card_embedder(REGIONS_MODEL)}
    if int8:
        embedders["int8"] = RawEmbedder(INT8_MODEL)
    results = []
    for s in streams:
        f = compute_features(s, args.out / "cache", int8, embedders)
        r = evaluate(s, f, args.quick)
        log.info("%s: %d frames, edgefilter recall %.2f kept %d (%.0f s)", s.name, len(s),
                 r["methods"]["edgefilter"]["recall"], r["methods"]["edgefilter"]["kept"], r["seconds"])
        if args.report == s.name:
            write_stream_report(s, r["edgefilter_run"], args.out / f"report-{s.name}", FilterConfig().threshold,
                                FilterConfig().region_threshold)
        results.append(r)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine(), "mode": "quick" if args.quick else "full",
            "seconds": time.perf_counter() - t0, "embedder": getattr(embedders["regions"], "kind", "?")
            + (" + int8 onnxruntime session" if int8 else "")}
    args.out.mkdir(parents=True, exist_ok=True)
    for r in results:
        r.pop("edgefilter_run", None)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "streams": results}, indent=1, default=str))
    md = markdown(results, meta)
    (args.out / "results.md").write_text(md)
    if args.write_md:
        write_md(args.write_md, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
