"""Sources against real encoded files, image directories and broken inputs."""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import pytest

from edgefilter.config import SourceConfig
from edgefilter.demo import DemoSource
from edgefilter.errors import SourceError
from edgefilter.source import (CaptureDeviceSource, DecodedVideoSource, ImageDirSource, VideoFileSource, open_source,
                               redact)
from videos import (frame_number, make_image_dir, make_video, numbered_frame, numbered_frames,
                          static_scene, truncate)


def read_all(src, limit=10_000):
    out = []
    while len(out) < limit:
        got = src.read()
        if got is None:
            break
        out.append(got)
    return out


def cfg(url, **kw):
    return SourceConfig(name=kw.pop("name", "cam"), url=str(url), **kw)


DECODERS = {"ffmpeg": DecodedVideoSource, "opencv": VideoFileSource}


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_file_decodes_every_frame_in_order(tmp_path, suffix, decoder):
    path = make_video(tmp_path / f"clip{suffix}", numbered_frames(40), fps=20)
    src = open_source(cfg(path.name, decoder=decoder), base_dir=tmp_path)
    assert isinstance(src, DECODERS[decoder])
    assert not src.live and src.finite
    src.open()
    frames = read_all(src)
    src.close()
    assert [i for i, _ in frames] == list(range(40))
    assert [frame_number(img) for _, img in frames] == list(range(40))
    img = frames[0][1]
    assert img.dtype == np.uint8 and img.shape == (120, 160, 3)
    assert src.fps == pytest.approx(20.0)
    assert src.corrupt == 0
    assert src.read() is None  # stays at the end


@pytest.mark.parametrize("decoder", DECODERS)
def test_video_file_loop_restarts_with_increasing_indices(tmp_path, decoder):
    path = make_video(tmp_path / "clip.avi", numbered_frames(10), fps=10)
    src = open_source(cfg(path, loop=True, decoder=decoder))
    assert not src.finite
    src.open()
    frames = read_all(src, limit=25)
    src.close()
    assert [i for i, _ in frames] == list(range(25))
    assert [frame_number(img) for _, img in frames] == [i % 10 for i in range(25)]


@pytest.mark.parametrize("decoder", DECODERS)
def test_missing_file_names_source_and_path(tmp_path, decoder):
    src = open_source(cfg("nope/missing.mp4", name="door", decoder=decoder), base_dir=tmp_path)
    with pytest.raises(SourceError) as err:
        src.open()
    msg = str(err.value)
    assert "'door'" in msg and str(tmp_path / "nope" / "missing.mp4") in msg and "not found" in msg


@pytest.mark.parametrize("decoder", DECODERS)
def test_garbage_file_is_a_clear_error(tmp_path, decoder):
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    src = open_source(cfg(path, name="junk", decoder=decoder))
    with pytest.raises(SourceError) as err:
        src.open()
    assert "'junk'" in str(err.value) and str(path) in str(err.value)
    assert ("decode" if decoder == "opencv" else "cannot read") in str(err.value)


@pytest.mark.parametrize("decoder", DECODERS)
def test_empty_file_is_a_clear_error(tmp_path, decoder):
    path = tmp_path / "empty.avi"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match="empty.avi"):
        open_source(cfg(path, decoder=decoder)).open()


@pytest.mark.parametrize("decoder", DECODERS)
def test_truncated_mp4_does_not_open(tmp_path, decoder):
    # mp4v keeps its index (moov) at the end: half a file is undecodable, and says so.
    path = truncate(make_video(tmp_path / "cut.mp4", numbered_frames(40), fps=20), 0.5)
    with pytest.raises(SourceError, match="cut.mp4"):
        open_source(cfg(path, decoder=decoder)).open()


def test_truncated_avi_plays_its_first_part_in_a_decoder_process(tmp_path):
    path = truncate(make_video(tmp_path / "cut.avi", numbered_frames(40), fps=20), 0.5)
    src = open_source(cfg(path))
    src.open()
    frames = read_all(src)
    assert 10 < len(frames) < 40
    assert [frame_number(img) for _, img in frames] == [i for i, _ in frames] == list(range(len(frames)))


def test_truncated_avi_plays_its_first_part(tmp_path, caplog):
    path = truncate(make_video(tmp_path / "cut.avi", numbered_frames(40), fps=20), 0.5)
    src = open_source(cfg(path, decoder="opencv"))
    src.open()
    with caplog.at_level(logging.WARNING, logger="edgefilter.source"):
        frames = read_all(src)
    assert 10 < len(frames) < 40
    assert [frame_number(img) for _, img in frames] == [i for i, _ in frames] == list(range(len(frames)))
    assert src.corrupt == 0  # a cut, not corrupt frames
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_corrupt_frame_in_the_middle_is_skipped_and_counted(tmp_path):
    path = make_video(tmp_path / "hurt.avi", numbered_frames(30), fps=20)
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(soi) == 30  # one JPEG per frame
    assert soi[13] - soi[12] > 600
    data[soi[12]:soi[12] + 400] = bytes(400)  # frame 12 loses its JPEG headers: undecodable
    path.write_bytes(bytes(data))
    src = open_source(cfg(path, decoder="opencv"))
    src.open()
    frames = read_all(src)
    indices = [i for i, _ in frames]
    assert indices == [i for i in range(30) if i != 12]
    assert [frame_number(img) for _, img in frames] == indices  # indices stay the file's frame numbers
    assert src.corrupt == 1


def test_image_dir_sorted_naturally_with_corrupt_file_skipped(tmp_path, caplog):
    d = make_image_dir(tmp_path / "imgs", numbered_frames(12), corrupt=[5])
    (d / "notes.txt").write_text("not an image")
    src = open_source(cfg("imgs"), base_dir=tmp_path)
    assert isinstance(src, ImageDirSource) and not src.live and src.finite and src.fps is None
    src.open()
    with caplog.at_level(logging.WARNING, logger="edgefilter.source"):
        frames = read_all(src)
    assert [i for i, _ in frames] == [i for i in range(12) if i != 5]
    assert [frame_number(img) for _, img in frames] == [i for i, _ in frames]
    assert src.corrupt == 1
    assert sum("frame_0005.png" in r.getMessage() for r in caplog.records) == 1


def test_image_dir_natural_order_and_grey_images(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for i in (10, 2, 1):
        cv2.imwrite(str(d / f"f{i}.png"), cv2.cvtColor(numbered_frame(i), cv2.COLOR_BGR2GRAY))
    src = open_source(cfg(d))
    src.open()
    frames = read_all(src)
    assert [frame_number(img) for _, img in frames] == [1, 2, 10]
    assert all(img.shape == (120, 160, 3) for _, img in frames)


def test_image_dir_loop_and_all_unreadable(tmp_path):
    d = make_image_dir(tmp_path / "loop", numbered_frames(3))
    src = open_source(cfg(d, loop=True))
    src.open()
    assert [i for i, _ in read_all(src, limit=7)] == list(range(7))
    bad = make_image_dir(tmp_path / "bad", numbered_frames(3), corrupt=[0, 1, 2])
    src = open_source(cfg(bad, loop=True, name="bad"))
    src.open()
    with pytest.raises(SourceError, match="no readable image"):
        read_all(src)


def test_empty_image_dir_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        open_source(cfg(tmp_path / "empty")).open()


def test_url_routing():
    assert isinstance(open_source(cfg("demo://?frames=5")), DemoSource)
    for url in ("rtsp://cam/1", "rtsps://cam/1", "http://cam/x.mjpg", "https://cam/x", "tcp://127.0.0.1:9",
                "udp://127.0.0.1:9", "srt://127.0.0.1:9"):
        src = open_source(cfg(url))
        assert isinstance(src, DecodedVideoSource) and src.live and not src.finite and src.kind == "stream", url
        src = open_source(cfg(url, decoder="opencv"))
        assert isinstance(src, CaptureDeviceSource) and src.live and not src.finite and src.kind == "stream", url
    for url in ("0", "/dev/video3"):
        src = open_source(cfg(url))
        assert isinstance(src, CaptureDeviceSource) and src.live and src.kind == "camera"
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'"):
        open_source(cfg("ftp://host/file.mp4"))


def test_missing_camera_is_a_source_error():
    src = open_source(cfg("/dev/video97", name="cam9"))
    with pytest.raises(SourceError, match="'cam9'.*/dev/video97"):
        src.open()
    with pytest.raises(SourceError):
        src.read()


@pytest.mark.parametrize("decoder", DECODERS)
def test_refused_stream_fails_fast_with_redacted_url(decoder, caplog):
    # Nothing listens on this loopback port: the open must fail (within the open timeout), without credentials.
    src = open_source(cfg("tcp://admin:hunter2@127.0.0.1:9", open_timeout_s=2.0, read_timeout_s=1.0,
                          decoder=decoder))
    with pytest.raises(SourceError) as err:
        src.open()
    assert "hunter2" not in str(err.value) and "admin" not in str(err.value)
    assert "127.0.0.1:9" in str(err.value)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)  # native decoder lines too


def test_redact():
    assert redact("rtsp://admin:s3cr@t@10.0.0.5:554/live?channel=1") == "rtsp://***@10.0.0.5:554/live?channel=1"
    assert redact("rtsp://user@host/x") == "rtsp://***@host/x"
    assert "abc" not in redact("https://cam/x.jpg?token=abc&user=1")
    assert "pw1" not in redact("http://cam/video?password=pw1") and "user=1" in redact("https://c/x?token=a&user=1")
    assert redact("rtsp://host:554/stream") == "rtsp://host:554/stream"
    assert redact("videos/door.mp4") == "videos/door.mp4"


def test_relative_paths_resolve_against_base_dir(tmp_path):
    sub = tmp_path / "cfgdir"
    sub.mkdir()
    make_video(sub / "v.avi", [static_scene(1)] * 3, fps=5)
    src = open_source(cfg("v.avi"), base_dir=sub)
    src.open()
    assert len(read_all(src)) == 3
    assert os.path.isabs(src.url)
