"""Frame sources: video files, image directories, cameras, network streams and the demo camera.

A source is small on purpose (like PySceneDetect's ``VideoStream``): ``open()``, ``read()``, ``close()`` and
a few attributes. It knows nothing about threads, reconnection, sampling or pacing; that is
:class:`edgefilter.capture.Capture`'s job. ``read()`` returns ``(index, image)`` where ``index`` is the
frame's position in the source (for a file: its frame number, counting on across loops) and ``image`` is a
BGR uint8 HxWx3 array, or ``None`` at the end of a finite source. A live source that fails raises
:class:`~edgefilter.errors.SourceError`; a single corrupt frame of a file is skipped and counted in
``corrupt`` instead.

Choosing by URL (:func:`open_source`)::

    demo://?seed=1&frames=900        the synthetic camera of edgefilter.demo
    an existing directory            its image files, in natural name order
    /dev/videoN, or 0, 1, ...        a local camera (live)
    rtsp:// rtsps:// http(s):// tcp:// udp:// srt://   a network stream through FFmpeg (live)
    anything else                    a video file, relative to the config file's directory

Video files and streams are decoded by an ffmpeg child process per connection (:class:`DecodedVideoSource`,
``decoder: ffmpeg``, the default), so a decoder crash cannot take the daemon down, or by OpenCV inside the
daemon (``decoder: opencv``). Cameras are read by OpenCV.

Credentials in URLs never reach logs or error messages: everything shown goes through :func:`redact`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

from .clock import SYSTEM_CLOCK, Clock
from .config import SourceConfig
from .decoder import (DecoderError, DecoderLimits, DecoderProcess, ffmpeg_command, ffmpeg_executable, image_size,
                      native_log)
from .errors import SourceError

log = logging.getLogger("edgefilter.source")

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "tcp", "udp", "srt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
# Query parameters that commonly carry secrets in camera URLs.
_SECRET_PARAMS = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential", re.IGNORECASE)
# A file read failing this many times in a row, before its reported frame count, is at its end
# (or hopelessly broken), not at one corrupt frame.
_MAX_CORRUPT_RUN = 25


def redact(url: str) -> str:
    """``url`` safe for logs: user information and secret-looking query values replaced by ``***``."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:  # rpartition: a password may itself contain '@'
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Source:
    """Base class of every source; see the module docstring for the contract."""

    kind = "source"

    def __init__(self, name: str, url: str, *, live: bool, finite: bool, fps: float | None = None,
                 clocked: bool = False):
        self.name = name
        self.url = url
        self.live = live        # frames are dropped under backpressure instead of waited for
        self.finite = finite    # read() returns None at some point
        self.fps = fps          # native frame rate, when known
        self.clocked = clocked  # frames arrive at the device's own pace (camera, stream); never paced by us
        self.corrupt = 0        # frames skipped as undecodable so far
        self.size: tuple[int, int] | None = None  # (width, height) once known

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> tuple[int, np.ndarray] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        """What is read, for log lines (never with credentials)."""
        return f"{self.kind} {redact(self.url)}"

    def _error(self, what: str) -> SourceError:
        return SourceError(f"source {self.name!r}: {what}")


def _fps(cap: cv2.VideoCapture) -> float | None:
    fps = cap.get(cv2.CAP_PROP_FPS)
    # Containers without timing report 0, some streams report nonsense like 90000.
    return float(fps) if fps and 0.0 < fps <= 1000.0 else None


class VideoFileSource(Source):
    """A video file decoded by OpenCV (FFmpeg); ``loop`` restarts it at its end."""

    kind = "video file"

    def __init__(self, name: str, path: str, *, loop: bool = False):
        super().__init__(name, path, live=False, finite=not loop)
        self.path = path
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None  # the first frame, read by open() to prove the file decodes
        self._pos = 0        # frame number in the file of the next read
        self._base = 0       # frames of previous loops, so indices keep increasing
        self._count = 0      # frame count the container claims (0: unknown)
        self._warned_short = False

    def open(self) -> None:
        if not os.path.exists(self.path):
            raise self._error(f"video file not found: {self.path}")
        if os.path.isdir(self.path):  # open_source routes directories elsewhere; guard direct use
            raise self._error(f"{self.path} is a directory, not a video file")
        self._open_capture()

    def _open_capture(self) -> None:
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise self._error(f"cannot decode video file {self.path} (not a video OpenCV/FFmpeg can read)")
        self._count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.fps = _fps(cap)
        first = self._read_skipping(cap)
        if first is None:
            cap.release()
            raise self._error(f"cannot decode any frame of video file {self.path}")
        self._cap, self._pending = cap, _bgr(first)
        self.size = (first.shape[1], first.shape[0])

    def read(self) -> tuple[int, np.ndarray] | None:
        while True:
            if self._cap is None:
                return None
            if self._pending is not None:
                img, self._pending = self._pending, None
                return self._emit(img)
            img = self._read_skipping(self._cap)
            if img is not None:
                return self._emit(_bgr(img))
            if self._count - self._pos > 1 and not self._warned_short:  # containers may be off by one
                self._warned_short = True
                log.warning("source %r: video file %s ended at frame %d of %d (truncated?)",
                            self.name, self.path, self._pos, self._count)
            if not self.loop or self._pos == 0:
                self.close()
                return None
            self._base += self._pos
            self._pos = 0
            self._cap.release()
            self._cap = None
            self._open_capture()

    def _read_skipping(self, cap: cv2.VideoCapture) -> np.ndarray | None:
        """The next decodable frame, skipping (and counting) corrupt ones; None at the end of the file.

        FFmpeg conceals most damage itself, so a failing read() is rare; when it fails before the frame
        count the container claims and a later read succeeds, the frames in between were corrupt. A run of
        failures up to the end means the file is cut short (not counted as corrupt frames).
        """
        run = 0
        while True:
            ok, img = cap.read()
            if ok and img is not None:
                self._pos += run
                self.corrupt += run
                return img
            run += 1
            if not self._count or self._pos + run >= self._count or run >= _MAX_CORRUPT_RUN:
                return None

    def _emit(self, img: np.ndarray) -> tuple[int, np.ndarray]:
        index = self._base + self._pos
        self._pos += 1
        return index, img

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None


# Sources whose hardware decoder could not start: they decode in software from then on, said once.
_SOFTWARE_FALLBACK: set[tuple[str, str]] = set()


class DecodedVideoSource(Source):
    """A video file or network stream decoded by an ffmpeg child process (:mod:`edgefilter.decoder`).

    A file that ``loop``s is looped by its decoder (frame indices keep increasing); should that decoder
    still end cleanly, a fresh one continues. Failures raise
    :class:`~edgefilter.decoder.DecoderError` with its reason; the capture counts them and decides on retries.
    """

    def __init__(self, name: str, url: str, *, kind: str, live: bool, loop: bool = False,
                 hwaccel: str = "none", limits: DecoderLimits = DecoderLimits()):
        super().__init__(name, url, live=live, finite=not live and not loop, clocked=live)
        self.kind = kind
        self.loop = loop
        self.hwaccel = hwaccel
        self.limits = limits
        self._proc: DecoderProcess | None = None
        self._pos = 0     # frames read from the current decoder
        self._base = 0    # frames of previous loops, so indices keep increasing

    def open(self) -> None:
        if not self.live and not os.path.isfile(self.url):
            what = "is a directory, not a video file" if os.path.isdir(self.url) else "not found"
            raise DecoderError(f"source {self.name!r}: video file {what}: {self.url}", "missing")
        self._start()

    def _start(self) -> None:
        hwaccel = self.hwaccel
        if (self.name, hwaccel) in _SOFTWARE_FALLBACK:
            hwaccel = "none"
        try:
            self._proc = self._spawn(hwaccel, quiet=hwaccel != "none")
        except DecoderError as exc:
            if hwaccel == "none" or exc.reason == "missing":
                raise
            self._proc = self._spawn("none")  # when this fails too, the input is the problem: say that
            _SOFTWARE_FALLBACK.add((self.name, hwaccel))
            log.warning("source %r: hardware decoding (%s) unavailable (%s); decoding in software",
                        self.name, hwaccel, exc.detail)
        self.fps = self._proc.fps
        self.size = (self._proc.width, self._proc.height)

    def _spawn(self, hwaccel: str, quiet: bool = False) -> DecoderProcess:
        from .capture import CAPTURE_NICE  # capture imports this module
        command = ffmpeg_command(ffmpeg_executable(), self.url, hwaccel=hwaccel, stream=self.live, loop=self.loop)
        # GPU drivers reserve large address ranges: no address-space limit with hardware decoding.
        limits = self.limits if hwaccel == "none" else dataclasses.replace(self.limits, memory_mb=0)
        proc = DecoderProcess(command, name=self.name, url=self.url, shown=redact(self.url), limits=limits,
                              nice=CAPTURE_NICE, quiet=quiet)
        proc.start()
        return proc

    def read(self) -> tuple[int, np.ndarray] | None:
        while self._proc is not None:
            img = self._proc.read_frame()
            if img is not None:
                index = self._base + self._pos
                self._pos += 1
                return index, img
            self._proc.close()
            self._proc = None
            if self.live:
                raise DecoderError(f"source {self.name!r}: {self.describe()} ended", "exit")
            if not self.loop or self._pos == 0:
                return None
            self._base += self._pos
            self._pos = 0
            self._start()
        return None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()
            self._proc = None


def _natural_key(name: str) -> list:
    """frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ImageDirSource(Source):
    """The image files of a directory in natural name order; unreadable files are skipped and reported."""

    kind = "image directory"

    def __init__(self, name: str, path: str, *, loop: bool = False, max_pixels: int = 16_777_216):
        super().__init__(name, path, live=False, finite=not loop)
        self.path = path
        self.loop = loop
        self.max_pixels = max_pixels
        self._files: list[str] = []
        self._pos = 0
        self._base = 0
        self._good_this_pass = 0
        self._reported: set[str] = set()

    def open(self) -> None:
        if not os.path.isdir(self.path):
            raise self._error(f"image directory not found: {self.path}")
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise self._error(f"cannot list image directory {self.path}: {exc.strerror or exc}") from None
        self._files = sorted((n for n in names if n.lower().endswith(IMAGE_SUFFIXES)
                              and os.path.isfile(os.path.join(self.path, n))), key=_natural_key)
        if not self._files:
            raise self._error(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in directory {self.path}")

    def read(self) -> tuple[int, np.ndarray] | None:
        while True:
            if self._pos >= len(self._files):
                if not self.loop:
                    return None
                if self._good_this_pass == 0:
                    raise self._error(f"no readable image in directory {self.path}")
                self._base += len(self._files)
                self._pos, self._good_this_pass = 0, 0
            name = self._files[self._pos]
            index = self._base + self._pos
            self._pos += 1
            path = os.path.join(self.path, name)
            size = image_size(path)
            img = None
            if size is None:
                why = "unreadable image (no image header)"
            elif size[0] * size[1] > self.max_pixels or 0 in size:
                why = f"{size[0]}x{size[1]} image, over max_pixels {self.max_pixels} (decompression bomb?)"
            else:
                img = cv2.imread(path, cv2.IMREAD_COLOR)
                why = "unreadable image"
            if img is None or img.size == 0:
                self.corrupt += 1
                if name not in self._reported:  # once per file, also when looping
                    self._reported.add(name)
                    log.warning("source %r: skipping %s %s", self.name, why, path)
                continue
            self._good_this_pass += 1
            self.size = (img.shape[1], img.shape[0])
            return index, img


class CaptureDeviceSource(Source):
    """A camera (V4L2 device or index) or a network stream: live, read at the device's pace."""

    def __init__(self, name: str, url: str, target: str | int, *, kind: str,
                 api: int = cv2.CAP_ANY, params: list[int] | None = None):
        super().__init__(name, url, live=True, finite=False, clocked=True)
        self.kind = kind
        self._target = target
        self._api = api
        self._params = params or []
        self._cap: cv2.VideoCapture | None = None
        self._next = 0

    def open(self) -> None:
        try:
            cap = cv2.VideoCapture(self._target, self._api, self._params)
        except cv2.error as exc:  # some backends raise instead of returning a closed capture
            raise self._error(f"cannot open {self.kind} {redact(self.url)}: {_cv_message(exc)}") from None
        if not cap.isOpened():
            cap.release()
            raise self._error(f"cannot open {self.kind} {redact(self.url)}")
        self._cap = cap
        self.fps = _fps(cap)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None

    def read(self) -> tuple[int, np.ndarray] | None:
        if self._cap is None:
            raise self._error(f"{self.kind} {redact(self.url)} is not open")
        try:
            ok, img = self._cap.read()
        except cv2.error as exc:
            raise self._error(f"reading {self.kind} {redact(self.url)} failed: {_cv_message(exc)}") from None
        if not ok or img is None or img.size == 0:
            raise self._error(f"{self.kind} {redact(self.url)} delivered no frame (disconnected or timed out)")
        index = self._next
        self._next += 1
        self.size = (img.shape[1], img.shape[0])
        return index, _bgr(img)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _cv_message(exc: cv2.error) -> str:
    return (getattr(exc, "err", None) or str(exc)).strip().splitlines()[-1]


def _bgr(img: np.ndarray) -> np.ndarray:
    """Every source yields BGR uint8 HxWx3, whatever the decoder produced."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(np.iinfo(img.dtype).max))
                                  if np.issubdtype(img.dtype, np.integer) else 255.0)
    return img


def _quiet_opencv() -> None:
    """OpenCV (and the FFmpeg inside it) print warnings straight to stderr, which logging cannot route:
    keep them to errors unless ``edgefilter.native`` is at DEBUG. Decoder processes are logged properly."""
    level = (cv2.utils.logging.LOG_LEVEL_WARNING if native_log.isEnabledFor(logging.DEBUG)
             else cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        cv2.utils.logging.setLogLevel(level)
    except (AttributeError, cv2.error):  # a build without the logging module
        pass


def open_source(cfg: SourceConfig, base_dir: str | os.PathLike = ".", clock: Clock = SYSTEM_CLOCK) -> Source:
    """The source ``cfg.url`` names (not opened yet: call ``open()``).

    Raises :class:`SourceError` only for a URL that can never work (bad ``demo://`` options); files that do
    not exist or do not decode fail in ``open()``.
    """
    _quiet_opencv()
    url = cfg.url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "demo":
        from .demo import DemoSource  # demo imports this module
        return DemoSource(cfg.name, url, realtime=cfg.realtime, loop=cfg.loop)
    if scheme in STREAM_SCHEMES and cfg.decoder == "ffmpeg":
        return DecodedVideoSource(cfg.name, url, kind="stream", live=True, **_decoder_options(cfg))
    if scheme in STREAM_SCHEMES:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
        return CaptureDeviceSource(cfg.name, url, url, kind="stream", api=cv2.CAP_FFMPEG, params=params)
    if re.fullmatch(r"\d+", url):
        return CaptureDeviceSource(cfg.name, url, int(url), kind="camera")
    if re.fullmatch(r"/dev/video\d+", url):
        return CaptureDeviceSource(cfg.name, url, url, kind="camera")
    if scheme and scheme != "file":
        raise SourceError(f"source {cfg.name!r}: unsupported URL scheme {scheme!r} in {redact(url)} "
                          f"(use a file path, a directory, /dev/videoN, demo:// or one of "
                          f"{', '.join(s + '://' for s in STREAM_SCHEMES)})")
    path = local_path(url, base_dir)
    if os.path.isdir(path):
        return ImageDirSource(cfg.name, path, loop=cfg.loop, max_pixels=cfg.max_pixels)
    if cfg.decoder == "ffmpeg":
        return DecodedVideoSource(cfg.name, path, kind="video file", live=False, loop=cfg.loop,
                                  **_decoder_options(cfg))
    return VideoFileSource(cfg.name, path, loop=cfg.loop)


def local_path(url: str, base_dir: str | os.PathLike = ".") -> str | None:
    """The file or directory a source URL names, resolved against ``base_dir``; None for demo://,
    streams and cameras."""
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if (scheme and scheme != "file") or re.fullmatch(r"\d+|/dev/video\d+", url):
        return None
    path = os.path.expanduser(url[len("file://"):] if scheme == "file" else url)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(os.fspath(base_dir), path))


def _decoder_options(cfg: SourceConfig) -> dict:
    # The first frame must be decoded (and its size announced) within the open timeout plus the stall time.
    return {"hwaccel": cfg.hwaccel,
            "limits": DecoderLimits(max_pixels=cfg.max_pixels, memory_mb=cfg.memory_limit_mb,
                                    open_timeout_s=cfg.open_timeout_s + cfg.stall_s, stall_s=cfg.stall_s)}


__all__ = ["Source", "DecodedVideoSource", "local_path", "VideoFileSource", "ImageDirSource", "CaptureDeviceSource",
           "open_source", "redact", "STREAM_SCHEMES", "IMAGE_SUFFIXES"]
