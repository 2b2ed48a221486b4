"""Reference files: round trip, errors that name the file and the models, subsampling, building."""
from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from edgefilter.errors import EXIT_NOINPUT, ReferenceError_
from edgefilter.reference import Reference, build_reference, cli_build, load_reference, save_reference, subsample


def make_ref(n: int = 40, dim: int = 8, model: str = "model-a") -> Reference:
    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return Reference(vectors=v, model_id=model, description="x", segments=np.array([0, 25]),
                     inputs=["a.mp4", "b"], frames_read=n)


def test_round_trip(tmp_path):
    ref = make_ref()
    path = tmp_path / "ref.npz"
    save_reference(path, ref)
    got = load_reference(path, "model-a")
    assert np.array_equal(got.vectors, ref.vectors) and got.vectors.dtype == np.float32
    assert got.model_id == "model-a" and got.description == "ref.npz"
    assert list(got.segments) == [0, 25] and got.inputs == ["a.mp4", "b"] and got.frames_read == 40
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]  # no temporary file left behind


def test_overwrite_is_atomic_and_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ref.npz"
    save_reference(path, make_ref(model="old"))
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        save_reference(path, make_ref(model="new"))
    assert load_reference(path, "old").model_id == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(ReferenceError_, match="nope.npz: file not found"):
        load_reference(tmp_path / "nope.npz", "m")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ReferenceError_, match="bad.npz: not a readable reference file"):
        load_reference(bad, "m")
    partial = tmp_path / "partial.npz"
    np.savez(partial, vectors=np.zeros((10, 4), np.float32))
    with pytest.raises(ReferenceError_, match="partial.npz"):
        load_reference(partial, "m")
    nan = tmp_path / "nan.npz"
    ref = make_ref()
    ref.vectors[3, 1] = np.nan
    save_reference(nan, ref)
    with pytest.raises(ReferenceError_, match="NaN"):
        load_reference(nan, "model-a")


def test_model_mismatch_names_file_and_both_ids(tmp_path):
    path = tmp_path / "day.npz"
    save_reference(path, make_ref(model="efficientnet_lite0-abc"))
    with pytest.raises(ReferenceError_) as exc:
        load_reference(path, "mobilenet-xyz")
    msg = str(exc.value)
    assert "day.npz" in msg and "efficientnet_lite0-abc" in msg and "mobilenet-xyz" in msg


def test_subsample_is_deterministic_contiguous_and_bounded():
    v = np.arange(10_000, dtype=np.float32)[:, None]
    idx, segs = subsample(v, 2000, seed=3, run=300)
    idx2, segs2 = subsample(v, 2000, seed=3, run=300)
    assert np.array_equal(idx, idx2) and np.array_equal(segs, segs2)
    assert len(idx) == 2000 and len(np.unique(idx)) == 2000 and np.all(np.diff(idx) > 0)
    # runs of consecutive frames, each starting at a recorded segment
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    assert list(segs) == [0] + list(breaks)
    assert all(b - a <= 300 for a, b in zip(list(segs), list(segs[1:]) + [2000]))
    # the runs cover the whole recording, not just its start
    assert idx.min() < 1500 and idx.max() > 8500
    other, _ = subsample(v, 2000, seed=4, run=300)
    assert not np.array_equal(idx, other)
    small, s = subsample(v[:100], 2000)
    assert len(small) == 100 and list(s) == [0]


def test_subsample_keeps_runs_inside_inputs():
    v = np.zeros((5000, 2), np.float32)
    bounds = [0, 1000, 1800, 5000]
    idx, segs = subsample(v, 1200, seed=0, run=200, segments=np.array(bounds[:-1]))
    for a, b in zip(list(segs), list(segs[1:]) + [len(idx)]):
        run = idx[a:b]
        seg = np.searchsorted(bounds, run[0], side="right") - 1
        assert run[-1] < bounds[seg + 1]


@dataclass
class FakeResult:
    vectors: np.ndarray


class FakeEmbedder:
    model_id = "fake-model"
    dim = 3
    input_size = (32, 24)
    colour = "RGB"

    def __init__(self):
        self.batches = []

    def embed(self, batch):
        assert batch.dtype == np.uint8 and batch.shape[1:] == (24, 32, 3)
        self.batches.append(len(batch))
        v = batch.reshape(len(batch), -1, 3).mean(1).astype(np.float32) + 1.0
        return FakeResult(v / np.linalg.norm(v, axis=1, keepdims=True))


def write_video(path, frames: int, colour: tuple[int, int, int]):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert w.isOpened()
    for i in range(frames):
        img = np.full((48, 64, 3), colour, np.uint8)
        img[:, : (i % 64)] = 255
        w.write(img)
    w.release()


def test_build_from_video_and_image_directory(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    write_video(video, 45, (0, 0, 200))
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(7):
        cv2.imwrite(str(images / f"{i:03d}.png"), np.full((30, 40, 3), (200, 0, 0), np.uint8))
    emb = FakeEmbedder()
    out = tmp_path / "ref.npz"
    ref = build_reference([str(video), str(images)], emb, out, max_n=1000, progress=True)
    assert ref.vectors.shape == (52, 3) and ref.frames_read == 52
    assert list(ref.segments) == [0, 45]
    assert max(emb.batches) <= 32
    # BGR red video frames and BGR blue images embed differently (colour order went through preprocess)
    assert not np.allclose(ref.vectors[0], ref.vectors[-1])
    loaded = load_reference(out, "fake-model")
    assert np.array_equal(loaded.vectors, ref.vectors) and loaded.inputs == [str(video), str(images)]
    assert capsys.readouterr().err == ""  # not a TTY: no progress line


def test_build_subsamples_large_inputs(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, 60, (10, 20, 30))
    ref = build_reference([str(video)], FakeEmbedder(), tmp_path / "r.npz", max_n=20, progress=False)
    assert len(ref.vectors) == 20 and ref.frames_read == 60


def test_cli_build_reports_a_bad_input(tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("edgefilter.model")
    fake.Embedder = types.SimpleNamespace(from_config=lambda cfg, **kw: FakeEmbedder())
    monkeypatch.setitem(sys.modules, "edgefilter.model", fake)
    rc = cli_build(str(tmp_path / "r.npz"), [str(tmp_path / "missing.mp4")], None)
    assert rc == EXIT_NOINPUT
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "r.npz")


def test_cli_build_writes_the_file(tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("edgefilter.model")
    fake.Embedder = types.SimpleNamespace(from_config=lambda cfg, **kw: FakeEmbedder())
    monkeypatch.setitem(sys.modules, "edgefilter.model", fake)
    video = tmp_path / "clip.avi"
    write_video(video, 12, (0, 100, 0))
    assert cli_build(str(tmp_path / "r.npz"), [str(video)], None) == 0
    assert "12 vectors of 12 frames" in capsys.readouterr().out
    assert load_reference(tmp_path / "r.npz", "fake-model").vectors.shape == (12, 3)
