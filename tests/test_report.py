"""edgefilter report: an HTML page and PNGs from a subscriber's output directory."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgefilter.errors import EXIT_DATAERR, EXIT_NOINPUT, EXIT_OK, EdgefilterError
from edgefilter.report import ReportError, build_report, cli_report

T0 = 1_763_900_000.0


def _frame(i: int) -> np.ndarray:
    img = np.full((90, 160, 3), 40 + 30 * i, np.uint8)
    cv2.circle(img, (30 + 20 * i, 45), 12, (0, 0, 255), -1)
    return img


def _subscriber_dir(tmp_path, garbled: bool = True, timeline: bool = True, drift: bool = True):
    d = tmp_path / "kept"
    (d / "cam1").mkdir(parents=True)
    lines = []
    for i, (src, reason, dist) in enumerate([("cam1", "first", None), ("cam1", "novel", 0.31),
                                             ("cam1", "heartbeat", 0.02), ("cam2", "first", None)]):
        name = f"cam1/{i:04d}.jpg"
        cv2.imwrite(str(d / name), _frame(i))
        lines.append(json.dumps({"v": 1, "source": src, "seq": i, "frame_index": 10 * i, "ts": T0 + 5 * i,
                                 "distance": dist, "reason": reason, "width": 160, "height": 90, "encoding": "jpeg",
                                 "model": "m@1", "embedding_dim": 1280, "file": name, "received": T0 + 5 * i + 0.1}))
    if garbled:
        lines.insert(2, '{"source": "cam1", "ts": ')       # cut short
        lines.append('{"source": "cam1"}')                  # no ts
        lines.append("[1, 2]")                              # not an object
    (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    if timeline:
        with open(d / "timeline.jsonl", "w") as f:
            for n in range(200):
                f.write(json.dumps({"source": "cam1", "frame_index": n, "ts": T0 + n * 0.1,
                                    "distance": 0.05 + 0.3 * (n == 50), "kept": n == 50, "threshold": 0.2}) + "\n")
    if drift:
        with open(d / "drift.jsonl", "w") as f:
            for n in range(20):
                f.write(json.dumps({"source": "cam1", "ts": T0 + n, "mmd2": 0.01, "p_value": 0.5 if n < 15 else 0.001,
                                    "drift": n >= 15}) + "\n")
    return d


def test_report_page_and_pngs(tmp_path):
    d = _subscriber_dir(tmp_path)
    index = build_report(d, tmp_path / "out")
    assert index == tmp_path / "out" / "index.html"
    page = index.read_text()
    assert "4 kept frame(s) from 2 source(s)" in page
    assert "3 line(s) of manifest.jsonl skipped" in page and "line 3: not JSON" in page
    assert "threshold 0.2" in page            # taken from the timeline when not given
    for name in ("contact-1.png", "timeline-cam1.png", "timeline-cam2.png", "drift-cam1.png"):
        assert f"src='{name}'" in page
        img = cv2.imread(str(tmp_path / "out" / name))
        assert img is not None and img.shape[0] > 50
    assert "<script" not in page
    assert "href='../kept/cam1/0001.jpg'" in page
    # the timeline has the red threshold line and red/green/orange keep marks on a white canvas
    tl = cv2.imread(str(tmp_path / "out" / "timeline-cam1.png")).astype(int)
    red = (tl[..., 2] > 180) & (tl[..., 1] < 90) & (tl[..., 0] < 90)
    assert red.sum() > 100
    # contact sheet: one cell per kept frame (5 columns), the frames' own pixels included
    sheet = cv2.imread(str(tmp_path / "out" / "contact-1.png"))
    assert sheet.shape[1] >= 5 * 240


def test_report_defaults_to_a_report_folder_and_takes_the_threshold_argument(tmp_path):
    d = _subscriber_dir(tmp_path, garbled=False, timeline=False, drift=False)
    index = build_report(d, threshold=0.33)
    assert index == d / "report" / "index.html"
    page = index.read_text()
    assert "skipped" not in page and "threshold 0.33" in page and "Drift" not in page
    assert (d / "report" / "timeline-cam1.png").is_file()


def test_missing_images_and_an_empty_manifest(tmp_path):
    d = _subscriber_dir(tmp_path, garbled=False)
    for p in (d / "cam1").iterdir():
        p.unlink()
    assert (build_report(d, tmp_path / "o1").parent / "contact-1.png").is_file()
    e = tmp_path / "empty"
    e.mkdir()
    (e / "manifest.jsonl").write_text("")
    page = build_report(e).read_text()
    assert "No frame was kept." in page and "0 kept frame(s)" in page


def test_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(ReportError, match="no manifest.jsonl"):
        build_report(tmp_path)
    assert issubclass(ReportError, EdgefilterError)
    with pytest.raises(ReportError, match="not a directory"):
        build_report(tmp_path / "nope")
    assert cli_report(tmp_path) == EXIT_NOINPUT
    assert "no manifest.jsonl" in capsys.readouterr().err
    (tmp_path / "manifest.jsonl").write_text("garbage\n{}\n")
    with pytest.raises(ReportError, match="none of its 2 line"):
        build_report(tmp_path)
    assert cli_report(tmp_path) == EXIT_DATAERR
    d = _subscriber_dir(tmp_path)
    assert cli_report(d, tmp_path / "r") == EXIT_OK
    assert capsys.readouterr().out.strip().endswith("index.html")


def test_a_frame_kept_for_a_region_is_labelled_and_does_not_stretch_the_distance_axis(tmp_path):
    d = tmp_path / "kept"
    (d / "cam").mkdir(parents=True)
    lines = []
    for i, (dist, region, th) in enumerate([(None, None, 0.15), (0.3, None, 0.15), (12.04, 5, 9.0)]):
        name = f"cam/{i:04d}.jpg"
        cv2.imwrite(str(d / name), _frame(i))
        lines.append(json.dumps({"v": 1, "source": "cam", "seq": i, "frame_index": i, "ts": T0 + 5 * i,
                                 "distance": dist, "reason": "first" if i == 0 else "novel", "region": region,
                                 "threshold": th, "file": name}))
    (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    page = build_report(d, tmp_path / "out").read_text()
    assert "region 5: 12.0x noise" in page and "d=0.300" in page
    assert "threshold 0.15" in page  # the whole-image threshold, not the region one
    # the axis runs to about 0.3 x 1.15, not to 12: the region keep sits on the threshold line
    tl = cv2.imread(str(tmp_path / "out" / "timeline-cam.png")).astype(int)
    red = (tl[..., 2] > 180) & (tl[..., 1] < 90) & (tl[..., 0] < 90)
    rows = np.flatnonzero(red.sum(1) > 100)  # the threshold line spans the plot
    assert len(rows) and rows.mean() < tl.shape[0] * 0.75  # well above the bottom (it would hug it on a 0-14 axis)


def test_region_changes_get_their_own_axis_and_distance_keeps_its_meaning(tmp_path):
    # v1 headers since region_score: distance is always the whole-image cosine distance
    d = tmp_path / "kept"
    (d / "cam").mkdir(parents=True)
    lines = []
    for i, (dist, region, score) in enumerate([(None, None, None), (0.3, None, None), (0.04, 5, 12.04),
                                               (0.05, 9, 30.0)]):
        name = f"cam/{i:04d}.jpg"
        cv2.imwrite(str(d / name), _frame(i))
        lines.append(json.dumps({"v": 1, "source": "cam", "seq": i, "frame_index": i, "ts": T0 + 5 * i,
                                 "distance": dist, "reason": "first" if i == 0 else "novel", "region": region,
                                 "region_score": score, "threshold": 0.15, "file": name}))
    (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    page = build_report(d, tmp_path / "out").read_text()
    assert "d=0.040, region 5: 12.0x noise" in page and "d=0.050, region 9: 30.0x noise" in page
    assert "regions-cam.png" in page and (tmp_path / "out" / "regions-cam.png").is_file()
