"""Video decoding in a child process per source: a decoder that crashes costs its source, never the daemon.

Each connection of a video file or network stream runs one ``ffmpeg`` child that decodes to raw BGR frames
on a pipe (the way Frigate runs one ffmpeg per camera). OpenCV's in-process FFmpeg can corrupt the heap of
the whole daemon on a damaged file (an uncompressed DIB AVI aborts it with ``malloc_consolidate()``); in a
child the same damage ends one process, which is reported, counted and restarted like a lost camera.

The child is bounded: its address space (``RLIMIT_AS``), the frame size it may announce (``max_pixels``,
checked before a frame buffer is allocated here), and the time it may stay silent (``stall_s``). It runs at
the capture threads' lower priority and dies with the thread that started it.

Protocol with the child, which the unit tests' stand-in decoders speak too: ffmpeg's own ``-loglevel
level+info`` stderr, where the ``Output #0`` stream line (``Video: rawvideo ..., 640x360 ..., 25 fps``)
gives the size of every frame that follows on stdout as ``width*height*3`` bytes. Everything else on
stderr is native noise: logged through ``edgefilter.native`` (ffmpeg errors at WARNING, warnings at INFO,
the rest at DEBUG, a bounded number of lines per connection), with credentials in URLs redacted.

Failures carry a ``reason`` from :data:`FAILURE_REASONS`, counted in ``edgefilter_decoder_failures_total``.
"""
from __future__ import annotations

import ctypes
import fcntl
import io
import logging
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import SourceError
from .metrics import DECODER_FAILURE_REASONS as FAILURE_REASONS

log = logging.getLogger("edgefilter.decoder")
native_log = logging.getLogger("edgefilter.native")

# Failures that retrying the same input cannot fix: a file source stops at once (exit status 66 alone).
PERMANENT_REASONS = ("missing", "unreadable", "too_large")

_NATIVE_WARNINGS = 20      # distinct native warnings per connection before they are only counted
_NATIVE_LINES = 200        # distinct native lines in all (the stream description is ~20)
_EXIT_WAIT_S = 2.0         # how long a decoder that closed its output may take to exit before it is killed
# How long the reader of a decoder's stderr may take to reach its end once the decoder has exited (the pipe is
# closed then: the wait ends as soon as the lines are read). 2 s was too short on a host short of memory: a
# decoder that had announced its frames and sent one was reported as unable to read its input.
_STDERR_WAIT_S = 15.0
_PIPE_BYTES = 1 << 20      # pipe buffer asked for (Linux caps unprivileged pipes at 1 MiB by default)
_PR_SET_PDEATHSIG = 1
# ffmpeg's levels in ours: its errors are warnings here (the source's own failure is reported by the
# capture), its warnings (deprecated pixel formats, timestamps) debug.
_LEVELS = {"panic": logging.ERROR, "fatal": logging.ERROR, "error": logging.WARNING}
_LEVEL_PREFIX = re.compile(r"^(?:\[[^\]]*\] )*?\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_STREAM_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: ")
_SIZE = re.compile(r"[ ,](\d{1,9})x(\d{1,9})(?=[ ,\[]|$)")
_FPS = re.compile(r"[ ,](\d+(?:\.\d+)?) fps")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")


class DecoderError(SourceError):
    """A decoder connection failed; ``reason`` is one of :data:`FAILURE_REASONS`."""

    def __init__(self, message: str, reason: str, detail: str = ""):
        super().__init__(message)
        self.reason = reason
        self.detail = detail or message  # the decoder's own last error line, when it wrote one

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT_REASONS


def ffmpeg_executable() -> str:
    """``$EDGEFILTER_FFMPEG`` when set, else the system ffmpeg, else the binary the ``imageio-ffmpeg``
    wheel ships (so no system package is needed)."""
    found = os.environ.get("EDGEFILTER_FFMPEG") or shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise SourceError("no ffmpeg for decoding: install ffmpeg or the imageio-ffmpeg package "
                          f"(or set decoder: opencv on the source): {exc}") from None


def describe_exit(returncode: int) -> str:
    """``exit status 1`` or ``killed by SIGABRT`` (for log lines)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def scrub(text: str, url: str, shown: str) -> str:
    """``text`` with the raw ``url`` replaced by its redacted form and any ``scheme://user:pass@`` hidden."""
    if url and url != shown:
        text = text.replace(url, shown)
    return _USERINFO.sub(r"\1***@", text)


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Resolved here, in the parent: between fork and exec the child must not load libraries (dlopen locks).
_PRCTL = _libc_prctl()


def _child_setup(memory_bytes: int | None, nice: int) -> None:
    """Runs in the child between fork and exec: system calls only (no imports, no logging, no locks)."""
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if nice > 0:
        os.nice(nice)
    if _PRCTL is not None:  # die with the thread that started us: a killed daemon leaves no decoder behind
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class DecoderLimits:
    """What one decoder child may take."""

    max_pixels: int = 16_777_216   # frame width x height it may announce
    memory_mb: int = 0             # address space (RLIMIT_AS); 0: no limit
    open_timeout_s: float = 20.0   # until it announces its frame size (the first frame is decoded by then)
    stall_s: float = 10.0          # silence between frames before it is killed


class DecoderProcess:
    """One running decoder child: ``start()``, then ``read_frame()`` until None, ``close()`` always.

    ``command`` is the whole argv (``ffmpeg_command`` builds ffmpeg's); ``url`` and ``shown`` are the raw
    and the redacted input, so native log lines never show credentials.
    """

    def __init__(self, command: Sequence[str], *, name: str, url: str, shown: str, limits: DecoderLimits,
                 nice: int = 0, quiet: bool = False):
        self.command = list(command)
        self.name = name
        self.url = url
        self.shown = shown
        self.limits = limits
        self.nice = nice
        self.quiet = quiet        # a trial (hardware decoding) whose failure the caller reports in one line
        self.width = self.height = 0
        self.fps: float | None = None
        self.frames = 0
        self.last_error = ""      # the last error line the child wrote (redacted), for messages
        self._proc: subprocess.Popen | None = None
        self._stdout: io.FileIO | None = None
        self._header = threading.Event()
        self._stderr_done = threading.Event()
        self._section = ""        # "Input #0" or "Output #0" while parsing the header
        self._native_warnings = 0
        self._native_dropped = 0
        self._native_seen: set[str] = set()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        memory = self.limits.memory_mb * 1024 * 1024 if self.limits.memory_mb else None
        try:
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0, close_fds=True, preexec_fn=lambda: _child_setup(memory, self.nice))
        except OSError as exc:
            raise DecoderError(f"source {self.name!r}: cannot start decoder {self.command[0]}: "
                               f"{exc.strerror or exc}", "unreadable") from None
        self._stdout = self._proc.stdout
        try:
            fcntl.fcntl(self._stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
        except OSError:  # a lower system cap: the default 64 KiB pipe works, with more wake-ups
            pass
        threading.Thread(target=self._read_stderr, name=f"decoder-log-{self.name}", daemon=True).start()
        self._wait_for_header()

    def _wait_for_header(self) -> None:
        """Until the child says what it sends; the failure (with the child's own words) when it does not."""
        deadline = time.monotonic() + self.limits.open_timeout_s
        while not self._header.is_set():
            if self._stderr_done.is_set() or self._proc.poll() is not None:
                self._stderr_done.wait(_STDERR_WAIT_S if self._proc.poll() is not None else _EXIT_WAIT_S)
                if self._header.is_set():
                    break
                rc = self._exit_code()
                crashed = rc is not None and rc < 0
                raise DecoderError(
                    f"source {self.name!r}: decoder {'crashed' if crashed else 'cannot read'} {self.shown} "
                    f"({describe_exit(rc) if rc is not None else 'no exit status'}"
                    f"{': ' + self.last_error if self.last_error else ''})",
                    "crash" if crashed else "unreadable", self.last_error)
            if time.monotonic() >= deadline:
                self.close()
                raise DecoderError(f"source {self.name!r}: decoder sent no video header for {self.shown} "
                                   f"within {self.limits.open_timeout_s:g} s; killed it", "hang")
            self._header.wait(0.05)
        if self.width <= 0 or self.height <= 0:
            self.close()
            raise DecoderError(f"source {self.name!r}: decoder announced no frame size for {self.shown}",
                               "unreadable")
        if self.width * self.height > self.limits.max_pixels:
            self.close()
            raise DecoderError(f"source {self.name!r}: {self.shown} has {self.width}x{self.height} frames, "
                               f"more than max_pixels {self.limits.max_pixels}", "too_large")

    def read_frame(self) -> np.ndarray | None:
        """The next BGR frame; None when the child ended cleanly on a frame boundary."""
        frame = np.empty((self.height, self.width, 3), np.uint8)
        view = memoryview(frame).cast("B")
        got, size = 0, view.nbytes
        poller = select.poll()  # not select(): descriptors above 1024 are fine with many sources
        poller.register(self._stdout.fileno(), select.POLLIN)
        while got < size:
            if not poller.poll(self.limits.stall_s * 1000):
                self.close()
                raise DecoderError(f"source {self.name!r}: decoder sent nothing for {self.limits.stall_s:g} s "
                                   f"({self.shown}); killed it", "hang")
            n = self._stdout.readinto(view[got:])
            if not n:
                break
            got += n
        if got == size:
            self.frames += 1
            return frame
        rc = self._finish()
        if got:  # a partial frame: the child's output does not match the size it announced
            raise DecoderError(f"source {self.name!r}: decoder sent {got} bytes after frame {self.frames}, not "
                               f"a {self.width}x{self.height} frame ({describe_exit(rc)})", "frame_size")
        if rc == 0:
            return None
        raise DecoderError(f"source {self.name!r}: decoder {'crashed' if rc < 0 else 'failed'} on {self.shown} "
                           f"after {self.frames} frame(s) ({describe_exit(rc)}"
                           f"{': ' + self.last_error if self.last_error else ''})", "crash" if rc < 0 else "exit")

    def close(self) -> None:
        """Stop the child (SIGKILL: it holds nothing worth a graceful end) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignored
            pass
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def _finish(self) -> int:
        """The exit status of a child that closed its output (killed if it lingers)."""
        try:
            self._proc.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.close()
        self._stderr_done.wait(_STDERR_WAIT_S)  # its last words, for the message (it has exited or been killed)
        return self._proc.returncode if self._proc.returncode is not None else -signal.SIGKILL

    def _exit_code(self) -> int | None:
        try:
            return self._proc.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.close()
            return self._proc.returncode

    # ------------------------------------------------------------------ stderr: header and native noise

    def _read_stderr(self) -> None:
        try:
            for raw in iter(self._proc.stderr.readline, b""):
                self._on_line(scrub(raw.decode("utf-8", "replace").rstrip(), self.url, self.shown))
        except (OSError, ValueError):  # closed under us by close()
            pass
        finally:
            if self._native_dropped:
                native_log.debug("source %r: decoder: %d repeated or further line(s) not shown", self.name,
                                 self._native_dropped)
            self._stderr_done.set()

    def _on_line(self, line: str) -> None:
        match = _LEVEL_PREFIX.match(line)
        level_name, text = (match.group(1), line[match.end():]) if match else ("info", line)
        # Before frames flow, a failure is reported by the capture with the child's last error line: the
        # lines leading to it (refused connections, every retry) stay at debug.
        opening = self.quiet or not self._header.is_set()
        level = logging.DEBUG if opening else _LEVELS.get(level_name, logging.DEBUG)
        if level_name in _LEVELS:
            self.last_error = text.strip()[-300:]
        if not self._header.is_set():
            self._parse_header(text)
        if not text.strip():
            return
        warning = level >= logging.WARNING
        flooded = self._native_warnings >= _NATIVE_WARNINGS if warning else len(self._native_seen) >= _NATIVE_LINES
        if text in self._native_seen or (flooded and level < logging.ERROR):
            self._native_dropped += 1  # repeated per frame, or a flood: counted, said at the end
        else:
            self._native_warnings += warning
            self._native_seen.add(text)
            native_log.log(level, "source %r: decoder: %s", self.name, text.strip())

    def _parse_header(self, text: str) -> None:
        if text.startswith(("Input #", "Output #")):
            self._section = text.split(",", 1)[0]
            return
        if not _STREAM_LINE.search(text):
            return
        fps = _FPS.search(text)
        if fps:
            self.fps = float(fps.group(1))
        if self._section.startswith("Output"):
            size = _SIZE.search(text.split("Video:", 1)[1])
            if size:
                self.width, self.height = int(size.group(1)), int(size.group(2))
            self._header.set()


def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None when the header is not one
    of the formats image directories read (PNG, JPEG, BMP, PNM, WebP, TIFF) or is damaged.

    Image directories check this against ``max_pixels`` before OpenCV allocates the image, so a
    decompression bomb (a tiny file announcing 100,000 x 100,000 pixels) is refused, not decoded.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head.startswith(b"BM") and len(head) >= 26:
                return (abs(int.from_bytes(head[18:22], "little", signed=True)),
                        abs(int.from_bytes(head[22:26], "little", signed=True)))
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head[:2] in (b"II", b"MM"):
                return _tiff_size(f, head[:2])
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(f)
            if head[:1] == b"P" and head[1:2] in b"123456":
                numbers = re.findall(rb"\d+", re.sub(rb"#[^\n]*", b"", head + f.read(224))[2:])
                return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None
    except (OSError, IndexError, ValueError):
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _jpeg_size(f: io.BufferedReader) -> tuple[int, int] | None:
    f.seek(2)
    for _ in range(10_000):  # markers before the frame header; bounded for hostile files
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:  # markers without a length
            continue
        length = int.from_bytes(f.read(2), "big")
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):  # start of frame
            data = f.read(5)
            return int.from_bytes(data[3:5], "big"), int.from_bytes(data[1:3], "big")
        if length < 2:
            return None
        f.seek(length - 2, os.SEEK_CUR)
    return None


def _tiff_size(f: io.BufferedReader, order: bytes) -> tuple[int, int] | None:
    endian = "little" if order == b"II" else "big"
    f.seek(4)
    f.seek(int.from_bytes(f.read(4), endian))
    entries = int.from_bytes(f.read(2), endian)
    found: dict[int, int] = {}
    for _ in range(min(entries, 4096)):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, kind = int.from_bytes(entry[0:2], endian), int.from_bytes(entry[2:4], endian)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            found[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], endian)
    return (found[256], found[257]) if 256 in found and 257 in found else None


def ffmpeg_command(executable: str, url: str, *, hwaccel: str = "none", stream: bool = False,
                   loop: bool = False) -> list[str]:
    """ffmpeg decoding ``url``'s first video stream to raw BGR frames on stdout (``loop``: a file, forever)."""
    cmd = [executable, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"]
    if loop:  # one decoder for every pass: no restart (and no pause) at each end of the file
        cmd += ["-stream_loop", "-1"]
    if hwaccel != "none":
        cmd += ["-hwaccel", hwaccel]  # frames come back to system memory for the BGR conversion
    if stream:  # a camera's stream: probe one second of it, not ffmpeg's default five
        cmd += ["-analyzeduration", "1000000", "-probesize", "1000000"]
        if url.lower().startswith(("rtsp://", "rtsps://")):
            cmd += ["-rtsp_transport", "tcp"]
    return cmd + ["-i", url, "-map", "0:v:0", "-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]


__all__ = ["DecoderError", "DecoderLimits", "DecoderProcess", "image_size", "FAILURE_REASONS", "PERMANENT_REASONS",
           "ffmpeg_executable", "ffmpeg_command", "describe_exit", "scrub"]
