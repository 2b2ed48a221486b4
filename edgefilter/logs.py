"""Logging set-up: plain text for a terminal, journald priorities under systemd, JSON on request.

Under systemd stderr goes to the journal, which files every line at priority info unless the line starts
with a syslog ``<N>`` prefix; with the prefix ``journalctl -p warning`` shows warnings and errors only.
The prefix is added only when stderr really is the journal stream (``JOURNAL_STREAM`` names its device
and inode), not when a service's stderr was redirected elsewhere.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
from typing import IO

# syslog priorities (sd-daemon.h): the journal reads them from a "<N>" line prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def journal_priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return _PRIORITY[logging.DEBUG]


def stream_is_journal(stream: IO, environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """True when ``stream`` is the journal socket systemd connected (JOURNAL_STREAM=DEVICE:INODE)."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; with a timestamp unless the journal adds its own; ``<N>`` for the journal."""

    def __init__(self, journal: bool):
        fmt = "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        # A traceback spans lines; the journal reads the prefix per line, so every line gets it.
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (Unix seconds), level, logger, message, and exc when there is one."""

    def __init__(self, journal: bool):
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        text = json.dumps(out, ensure_ascii=False)
        return f"<{journal_priority(record.levelno)}>{text}" if self.journal else text


def setup_logging(level: str, fmt: str = "text", stream: IO | None = None) -> logging.Handler:
    """Configure the root logger once (replacing earlier edgefilter handlers); returns the handler."""
    stream = stream if stream is not None else sys.stderr
    journal = stream_is_journal(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(journal) if fmt == "json" else TextFormatter(journal))
    handler._edgefilter = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_edgefilter", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("edgefilter").setLevel(level.upper())
    return handler


def enable_stack_dumps() -> None:
    """Every thread's Python stack to stderr when the process dies by SIGABRT (the service watchdog's kill),
    SIGSEGV, SIGFPE, SIGBUS or SIGILL. Call it from the main thread, before the pipeline's threads start.

    The crash signals keep faulthandler's own handler: the process is dying anyway. SIGABRT is handled in
    Python instead, in the main thread with the GIL held: faulthandler's handler walks the thread list in the
    signal handler, unlocked, and itself crashed (SIGSEGV, no stack) when a thread was ending at that moment,
    as the metrics endpoint's request threads do (2 kills in 40 with threads coming and going). The daemon's
    main thread only waits on events, so the handler runs within moments; an abort() inside a native library
    still ends the process at once (its core dump has the native stack).
    """
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr, all_threads=True)
    signal.signal(signal.SIGABRT, _dump_stacks_and_abort)


def _dump_stacks_and_abort(signum: int, frame: object) -> None:
    # Straight to the file descriptor, as faulthandler writes: no logging lock that a stuck thread might hold.
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), b"Fatal Python error: Aborted (SIGABRT: the service watchdog, or an abort)\n\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    faulthandler.disable()
    signal.signal(signal.SIGABRT, signal.SIG_DFL)
    os.abort()  # the exit status and core dump stay those of SIGABRT
