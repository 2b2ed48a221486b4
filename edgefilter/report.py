"""``edgefilter report DIR``: one self-contained HTML page showing what was kept, and why.

Input is a subscriber's output directory (or a benchmark run written in the same layout):

- ``manifest.jsonl`` (required): one JSON object per kept frame, the v1 message header (``source``,
  ``seq``, ``frame_index``, ``ts``, ``distance``, ``reason``, ``width``, ``height``, ...) plus ``file``,
  the JPEG's path relative to the directory, and ``received``;
- ``drift.jsonl`` (optional): drift headers (``source``, ``ts``, ``p_value``, ``drift``, ``mmd2``, ...);
- ``timeline.jsonl`` (optional): one object per processed frame (``source``, ``frame_index``, ``ts``,
  ``distance``, ``kept``, optionally ``threshold``). Subscribers only see kept frames, so without it
  the timeline shows the kept frames' distances only.

Output (``out_dir``, default ``DIR/report``): ``index.html`` (inline CSS, no scripts, images next to
it), ``contact-N.png`` sheets of the kept frames with time, source, distance and reason,
``timeline-<source>.png`` (nearest-neighbour distance, the threshold, the keeps) and
``drift-<source>.png`` (p-value over time). Plots are drawn with OpenCV and numpy only.
Lines that are not valid JSON objects with the needed keys are skipped, counted and reported.
"""
from __future__ import annotations

import datetime
import html
import json
import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import EXIT_DATAERR, EXIT_NOINPUT, EXIT_OK, EdgefilterError


class ReportError(EdgefilterError):
    """The report cannot be made: no manifest, an unreadable directory, nothing usable in it."""


MANIFEST = "manifest.jsonl"
DRIFT = "drift.jsonl"
TIMELINE = "timeline.jsonl"

SHEET_COLUMNS = 5
SHEET_ROWS = 8            # frames per contact sheet = columns x rows
THUMB_W = 240
MAX_FRAMES = 400          # contact sheets stop here (the page says how many were left out)
PLOT_W, PLOT_H = 1100, 300

_WHITE, _BLACK, _GREY, _LIGHT = (255, 255, 255), (30, 30, 30), (140, 140, 140), (225, 225, 225)
_BLUE, _RED, _ORANGE, _GREEN = (180, 100, 30), (40, 40, 220), (0, 140, 255), (60, 150, 50)
_REASON_COLOUR = {"first": _GREEN, "novel": _RED, "heartbeat": _ORANGE}


@dataclass
class _Lines:
    """Records read from one JSONL file, and what was wrong with the rest."""

    records: list[dict] = field(default_factory=list)
    bad: int = 0
    examples: list[str] = field(default_factory=list)

    def reject(self, lineno: int, why: str) -> None:
        self.bad += 1
        if len(self.examples) < 5:
            self.examples.append(f"line {lineno}: {why}")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _read_jsonl(path: Path, required: dict[str, type | tuple]) -> _Lines:
    out = _Lines()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            out.reject(n, f"not JSON ({exc.msg})")
            continue
        if not isinstance(rec, dict):
            out.reject(n, "not a JSON object")
            continue
        missing = [k for k, kind in required.items()
                   if not isinstance(rec.get(k), kind) or isinstance(rec.get(k), bool)]
        if missing:
            out.reject(n, f"missing or wrong type: {', '.join(missing)}")
            continue
        if "ts" in required and _number(rec["ts"]) is None:
            out.reject(n, "ts is not a finite number")
            continue
        out.records.append(rec)
    return out


def _fmt_ts(ts: float, origin: float) -> str:
    """Wall-clock time for epoch timestamps; seconds into the stream for stream-relative ones."""
    if ts > 1e9:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] + "Z"
    return _fmt_offset(ts)


def _fmt_offset(s: float) -> str:
    s = max(0.0, s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{sec:04.1f}" if h else f"{int(m)}:{sec:04.1f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "source"


# ----------------------------------------------------------------------------- drawing


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.45, colour=_BLACK, thick: int = 1) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


class _Axes:
    """A white canvas with a frame, ticks and a data -> pixel mapping."""

    def __init__(self, title: str, x0: float, x1: float, y0: float, y1: float, ylabel: str,
                 xfmt=lambda v: f"{v:g}", yfmt=lambda v: f"{v:g}"):
        self.img = np.full((PLOT_H, PLOT_W, 3), 255, np.uint8)
        self.left, self.right, self.top, self.bottom = 70, PLOT_W - 20, 34, PLOT_H - 40
        if x1 <= x0:
            x1 = x0 + 1.0
        if y1 <= y0:
            y1 = y0 + 1.0
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        img = self.img
        _text(img, title, (self.left, 22), 0.55, _BLACK, 1)
        for v in _nice_ticks(y0, y1, 5):
            y = self.py(v)
            cv2.line(img, (self.left, y), (self.right, y), _LIGHT, 1)
            _text(img, yfmt(v), (6, y + 4), 0.4, _GREY)
        for v in _nice_ticks(x0, x1, 8):
            x = self.px(v)
            cv2.line(img, (x, self.top), (x, self.bottom), _LIGHT, 1)
            _text(img, xfmt(v), (x - 20, self.bottom + 18), 0.4, _GREY)
        cv2.rectangle(img, (self.left, self.top), (self.right, self.bottom), _GREY, 1)
        _text(img, ylabel, (6, self.top - 8), 0.4, _GREY)

    def px(self, x: float) -> int:
        return int(round(self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)))

    def py(self, y: float) -> int:
        y = min(max(y, self.y0), self.y1)
        return int(round(self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)))

    def hline(self, y: float, colour, label: str) -> None:
        yy = self.py(y)
        for x in range(self.left, self.right, 12):  # dashed
            cv2.line(self.img, (x, yy), (min(x + 6, self.right), yy), colour, 1, cv2.LINE_AA)
        _text(self.img, label, (self.right - 8 * len(label) - 10, yy - 5), 0.4, colour)

    def series(self, xs: np.ndarray, ys: np.ndarray, colour) -> None:
        ok = np.isfinite(ys)
        if ok.sum() > PLOT_W * 2:  # many frames: draw the per-column maximum, as an envelope
            cols = np.array([self.px(x) for x in xs[ok]])
            vals = ys[ok]
            top = np.full(PLOT_W, -np.inf)
            np.maximum.at(top, cols, vals)
            pts = [(c, self.py(v)) for c, v in enumerate(top) if np.isfinite(v)]
        else:
            pts = [(self.px(x), self.py(y)) for x, y in zip(xs[ok], ys[ok])]
        if len(pts) > 1:
            cv2.polylines(self.img, [np.array(pts, np.int32)], False, colour, 1, cv2.LINE_AA)
        elif pts:
            cv2.circle(self.img, pts[0], 2, colour, -1)

    def marks(self, xs, ys, colours) -> None:
        for x, y, c in zip(xs, ys, colours):
            cv2.circle(self.img, (self.px(x), self.py(y)), 4, c, -1, cv2.LINE_AA)


def _contact_sheets(frames: list[dict], root: Path, out: Path, origin: float) -> list[str]:
    names = []
    per = SHEET_COLUMNS * SHEET_ROWS
    for s in range(0, len(frames), per):
        chunk = frames[s:s + per]
        cells = []
        for rec in chunk:
            img = None
            f = rec.get("file")
            if isinstance(f, str):
                path = (root / f)
                img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
            if img is None:
                th = np.full((THUMB_W * 9 // 16, THUMB_W, 3), 200, np.uint8)
                _text(th, "image missing", (60, th.shape[0] // 2), 0.5, _BLACK)
            else:
                h = max(1, round(img.shape[0] * THUMB_W / img.shape[1]))
                th = cv2.resize(img, (THUMB_W, min(h, THUMB_W)), interpolation=cv2.INTER_AREA)
            cap = np.full((52, THUMB_W, 3), 255, np.uint8)
            reason = str(rec.get("reason") or "?")
            _text(cap, _fmt_ts(float(rec["ts"]), origin), (4, 14), 0.4)
            _text(cap, f"{str(rec['source'])[:18]}  #{rec.get('frame_index', '?')}", (4, 30), 0.4, _GREY)
            novelty = _novelty(rec)
            _text(cap, f"{reason}  {novelty}" if novelty != "-" else reason, (4, 46), 0.42,
                  _REASON_COLOUR.get(reason, _BLACK))
            cells.append(np.vstack([th, cap]))
        ch = max(c.shape[0] for c in cells)
        rows = []
        for r in range(0, len(cells), SHEET_COLUMNS):
            row = [np.pad(c, ((0, ch - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cells[r:r + SHEET_COLUMNS]]
            row += [np.full((ch, THUMB_W, 3), 255, np.uint8)] * (SHEET_COLUMNS - len(row))
            rows.append(np.hstack([np.pad(c, ((4, 4), (4, 4), (0, 0)), constant_values=255) for c in row]))
        name = f"contact-{s // per + 1}.png"
        cv2.imwrite(str(out / name), np.vstack(rows))
        names.append(name)
    return names


def _region_of(rec: dict) -> int | None:
    """The region cell that made a frame novel (header ``region``), or None."""
    r = rec.get("region")
    return r if isinstance(r, int) and not isinstance(r, bool) else None


def _novelty(rec: dict) -> str:
    """What made a kept frame novel, for captions: the whole-image distance, and a region's change."""
    d = _whole_distance(rec)
    text = f"d={d:.3f}" if np.isfinite(d) else "-"
    region, score = _region_of(rec), _region_score(rec)
    if region is not None and score is not None:
        text += f", region {region}: {score:.1f}x noise"
    return text


def _region_score(rec: dict) -> float | None:
    """A region's change in noise units: header ``region_score``; older files put it in ``distance``."""
    if "region_score" in rec:
        return _number(rec.get("region_score"))
    return _number(rec.get("distance")) if _region_of(rec) is not None else None


def _whole_distance(rec: dict) -> float:
    """A record's whole-image cosine distance; NaN when none (older files: a region keep's distance was
    its change in noise units)."""
    d = _number(rec.get("distance"))
    old_region_keep = _region_of(rec) is not None and "region_score" not in rec
    return d if d is not None and not old_region_keep else np.nan


def _timeline(source: str, kept: list[dict], timeline: list[dict], threshold: float | None,
              out: Path, origin: float) -> list[str]:
    """The distance timeline, and a second one for region changes when any keep was made by a region:
    cosine distance and noise units on separate axes."""
    if timeline:
        xs = np.array([float(r["ts"]) for r in timeline]) - origin
        ys = np.array([_whole_distance(r) for r in timeline])
    else:
        xs = np.array([float(r["ts"]) for r in kept]) - origin
        ys = np.array([_whole_distance(r) for r in kept])
    kx = np.array([float(r["ts"]) for r in kept]) - origin
    kd = np.array([_whole_distance(r) for r in kept])
    has = np.isfinite(kd)
    finite = ys[np.isfinite(ys)]
    top = max([float(finite.max()) if len(finite) else 0.0, threshold or 0.0,
               float(kd[has].max()) if has.any() else 0.0]) * 1.15 or 1.0
    x0 = float(min(xs.min(initial=np.inf), kx.min(initial=np.inf)))
    x1 = float(max(xs.max(initial=-np.inf), kx.max(initial=-np.inf)))
    if not math.isfinite(x0):
        x0, x1 = 0.0, 1.0
    what = "every processed frame" if timeline else "kept frames only (no timeline.jsonl)"
    ax = _Axes(f"{source}: nearest-neighbour cosine distance ({what}); dots = keeps", x0, x1, 0.0, top,
               "distance", xfmt=_fmt_offset, yfmt=lambda v: f"{v:.2f}")
    ax.series(xs, ys, _BLUE)
    if threshold is not None:
        ax.hline(threshold, _RED, f"threshold {threshold:g}")
    ax.marks(kx[has], kd[has], [_REASON_COLOUR.get(str(r.get("reason")), _BLACK) for r, h in zip(kept, has) if h])
    names = [f"timeline-{_slug(source)}.png"]
    cv2.imwrite(str(out / names[0]), ax.img)
    by_region = [(x, _region_score(r)) for x, r in zip(kx, kept) if _region_of(r) is not None]
    by_region = [(x, v) for x, v in by_region if v is not None]
    if by_region:
        rx = np.array([x for x, _ in by_region])
        ry = np.array([v for _, v in by_region])
        rax = _Axes(f"{source}: keeps made by a region: its change in units of the cell's noise", x0, x1, 0.0,
                    float(ry.max()) * 1.15 or 1.0, "noise x", xfmt=_fmt_offset, yfmt=lambda v: f"{v:.0f}")
        rax.marks(rx, ry, [_BLACK] * len(rx))
        names.append(f"regions-{_slug(source)}.png")
        cv2.imwrite(str(out / names[1]), rax.img)
    return names


def _drift_plot(source: str, recs: list[dict], out: Path, origin: float, alpha: float = 0.05) -> str:
    xs = np.array([float(r["ts"]) for r in recs]) - origin
    ps = np.array([_number(r.get("p_value")) if _number(r.get("p_value")) is not None else np.nan for r in recs])
    ax = _Axes(f"{source}: drift p-value (log scale); red = drift flagged", float(xs.min()), float(xs.max()),
               -4.0, 0.0, "log10 p", xfmt=_fmt_offset, yfmt=lambda v: f"1e{v:g}")
    logp = np.log10(np.clip(ps, 1e-4, 1.0))
    ax.series(xs, logp, _BLUE)
    ax.hline(math.log10(alpha), _RED, f"p = {alpha:g}")
    flagged = [i for i, r in enumerate(recs) if r.get("drift") is True]
    ax.marks(xs[flagged], logp[flagged], [_RED] * len(flagged))
    name = f"drift-{_slug(source)}.png"
    cv2.imwrite(str(out / name), ax.img)
    return name


# ----------------------------------------------------------------------------- page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1160px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 9px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;border:1px solid #ddd}
.warn{background:#fff4e0;border:1px solid #f0c070;padding:6px 10px}
"""


def build_report(input_dir: str | Path, out_dir: str | Path | None = None, threshold: float | None = None) -> Path:
    """Write the report for ``input_dir``; returns the path of ``index.html``."""
    root = Path(input_dir)
    if not root.is_dir():
        raise ReportError(f"report input {root} is not a directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ReportError(f"report input {root} has no {MANIFEST} (expected a subscriber's output directory)")
    out = Path(out_dir) if out_dir is not None else root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report directory {out}: {exc.strerror or exc}") from None
    num = (int, float)
    manifest = _read_jsonl(manifest_path, {"source": str, "ts": num})
    drift = _read_jsonl(root / DRIFT, {"source": str, "ts": num}) if (root / DRIFT).is_file() else _Lines()
    timeline = _read_jsonl(root / TIMELINE, {"source": str, "ts": num}) if (root / TIMELINE).is_file() else _Lines()
    if not manifest.records and manifest.bad:
        raise ReportError(f"{manifest_path}: none of its {manifest.bad} line(s) is a usable kept-frame record "
                          f"({'; '.join(manifest.examples)})")
    if threshold is None:  # the timeline (or the kept frames' headers) may say which threshold was in force
        ths = [_number(r.get("threshold")) for r in (timeline.records or manifest.records)
               if _number(r.get("threshold")) is not None and _region_of(r) is None]
        threshold = float(np.median(ths)) if ths else None

    kept = sorted(manifest.records, key=lambda r: (float(r["ts"]), str(r["source"])))
    all_ts = [float(r["ts"]) for r in kept + timeline.records + drift.records]
    origin = min(all_ts) if all_ts and min(all_ts) > 1e9 else 0.0
    sources = sorted({r["source"] for r in kept} | {r["source"] for r in timeline.records}
                     | {r["source"] for r in drift.records})
    by_src: dict[str, list[dict]] = defaultdict(list)
    for r in kept:
        by_src[r["source"]].append(r)
    tl_src: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(timeline.records, key=lambda r: float(r["ts"])):
        tl_src[r["source"]].append(r)
    dr_src: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(drift.records, key=lambda r: float(r["ts"])):
        dr_src[r["source"]].append(r)

    sheets = _contact_sheets(kept[:MAX_FRAMES], root, out, origin) if kept else []
    plots = {s: _timeline(s, by_src[s], tl_src[s], threshold, out, origin) for s in sources if by_src[s] or tl_src[s]}
    drifts = {s: _drift_plot(s, dr_src[s], out, origin) for s in sources if dr_src[s]}

    e = html.escape
    span = ""
    if kept:
        span = f"{_fmt_ts(float(kept[0]['ts']), origin)} to {_fmt_ts(float(kept[-1]['ts']), origin)}"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>edgefilter report: {e(root.name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>What edgefilter kept</h1><p class='meta'>{e(str(root))} &middot; {len(kept)} kept frame(s) from "
             f"{len(sources)} source(s){' &middot; ' + e(span) if span else ''}"
             f"{f' &middot; threshold {threshold:g}' if threshold is not None else ''}</p>"]
    problems = [(MANIFEST, manifest), (DRIFT, drift), (TIMELINE, timeline)]
    for fname, lines in problems:
        if lines.bad:
            parts.append(f"<p class='warn'>{lines.bad} line(s) of {e(fname)} skipped: "
                         f"{e('; '.join(lines.examples))}</p>")
    if len(kept) > MAX_FRAMES:
        parts.append(f"<p class='warn'>contact sheets show the first {MAX_FRAMES} of {len(kept)} kept frames</p>")
    parts.append("<h2>Sources</h2><table><tr><th>source</th><th>kept</th><th>first</th><th>novel</th>"
                 "<th>heartbeat</th><th>processed (timeline)</th><th>keep ratio</th><th>drift updates</th>"
                 "<th>drift flagged</th></tr>")
    for s in sources:
        reasons = Counter(str(r.get("reason")) for r in by_src[s])
        n_tl = len(tl_src[s])
        ratio = f"{len(by_src[s]) / n_tl:.2%}" if n_tl else "-"
        flagged = sum(1 for r in dr_src[s] if r.get("drift") is True)
        parts.append(f"<tr><td>{e(s)}</td><td class='n'>{len(by_src[s])}</td><td class='n'>{reasons['first']}</td>"
                     f"<td class='n'>{reasons['novel']}</td><td class='n'>{reasons['heartbeat']}</td>"
                     f"<td class='n'>{n_tl or '-'}</td><td class='n'>{ratio}</td><td class='n'>{len(dr_src[s]) or '-'}</td>"
                     f"<td class='n'>{flagged if dr_src[s] else '-'}</td></tr>")
    parts.append("</table>")
    if plots:
        parts.append("<h2>Distance to the nearest kept frame</h2>")
        for s, names in plots.items():
            parts.append(f"<p><img src='{e(names[0])}' alt='distance timeline of {e(s)}'></p>")
            for name in names[1:]:
                parts.append(f"<p><img src='{e(name)}' alt='region changes of {e(s)}'></p>")
    if drifts:
        parts.append("<h2>Drift</h2>")
        for s, name in drifts.items():
            parts.append(f"<p><img src='{e(name)}' alt='drift p-value of {e(s)}'></p>")
    parts.append("<h2>Kept frames</h2>")
    if not sheets:
        parts.append("<p>No frame was kept.</p>")
    for name in sheets:
        parts.append(f"<p><img src='{e(name)}' alt='contact sheet'></p>")
    parts.append("<table><tr><th>time</th><th>source</th><th>frame</th><th>reason</th><th>distance</th>"
                 "<th>file</th></tr>")
    for r in kept[:MAX_FRAMES]:
        f = r.get("file") if isinstance(r.get("file"), str) else ""
        link = f"<a href='{e(_rel(out, root / f))}'>{e(f)}</a>" if f else "-"
        parts.append(f"<tr><td>{e(_fmt_ts(float(r['ts']), origin))}</td><td>{e(str(r['source']))}</td>"
                     f"<td class='n'>{e(str(r.get('frame_index', '-')))}</td><td>{e(str(r.get('reason') or '-'))}</td>"
                     f"<td class='n'>{e(_novelty(r))}</td><td>{link}</td></tr>")
    parts.append("</table></body></html>\n")
    index = out / "index.html"
    index.write_text("".join(parts), encoding="utf-8")
    return index


def _rel(frm: Path, to: Path) -> str:
    import os

    return os.path.relpath(to, frm).replace(os.sep, "/")


def cli_report(input: str | Path, out: str | Path | None = None, threshold: float | None = None) -> int:
    """``edgefilter report``: print the page's path; errors to stderr with an exit code."""
    try:
        path = build_report(input, out, threshold)
    except ReportError as exc:
        print(f"edgefilter report: {exc}", file=sys.stderr)
        missing = not Path(input).is_dir() or not (Path(input) / MANIFEST).is_file()
        return EXIT_NOINPUT if missing else EXIT_DATAERR
    print(path)
    return EXIT_OK
