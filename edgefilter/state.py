"""Atomic, checked persistence of state across restarts (``<dir>/<name>.npz``).

A save writes a temporary file in the same folder, flushes and fsyncs it, renames it over the old
file (``os.replace`` is atomic on POSIX) and fsyncs the folder so the rename itself is durable. A
crash at any moment leaves the old complete file or the new complete one.

The file is a plain ``.npz`` (read with ``allow_pickle=False``; never pickle): the caller's arrays, its
JSON-able values in one JSON document, and a header with a format version, the model id, the creation
time and a SHA-256 of everything else, so a torn or altered file is detected rather than half-loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StateError

log = logging.getLogger(__name__)

FORMAT = "edgefilter-state"
FORMAT_VERSION = 1
_HEADER = "__header__"
_JSON = "__json__"


def state_path(directory: str | os.PathLike, name: str) -> Path:
    return Path(directory) / f"{name}.npz"


def _digest(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"\0{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def save_state(directory: str | os.PathLike, name: str, payload: dict[str, Any], model_id: str,
               now: float | None = None) -> Path:
    """Write ``payload`` (numpy arrays and JSON-able values) to ``<directory>/<name>.npz`` atomically."""
    folder = Path(directory)
    path = state_path(folder, name)
    arrays: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    for key, value in payload.items():
        if key in (_HEADER, _JSON):
            raise StateError(f"state key {key!r} is reserved ({path})")
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise StateError(f"state array {key!r} has dtype object, which would need pickle ({path})")
            arrays[key] = value
        else:
            plain[key] = value
    try:
        arrays[_JSON] = _text_array(json.dumps(plain, sort_keys=True, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise StateError(f"state {name!r} has a value that is neither an array nor JSON: {exc} ({path})") from None
    header = {"format": FORMAT, "version": FORMAT_VERSION, "name": name, "model_id": model_id,
              "created": time.time() if now is None else now}
    header["sha256"] = _digest(arrays, header)
    arrays[_HEADER] = _text_array(json.dumps(header, sort_keys=True))

    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f".{name}.*.tmp"):  # left by a crash mid-write; one writer per name
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    except OSError as exc:
        raise StateError(f"cannot write state to {folder}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StateError(f"cannot write state file {path}: {exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_state(directory: str | os.PathLike, name: str, model_id: str) -> dict[str, Any] | None:
    """Read ``<directory>/<name>.npz``.

    Returns None when there is no file, or when it was made with another model (logged as a WARNING
    naming both ids). A corrupt or unreadable file is renamed to ``<name>.npz.corrupt`` (kept for a
    post-mortem, never deleted) and :class:`StateError` is raised naming it.
    """
    path = state_path(directory, name)
    if not path.exists():
        return None
    try:
        header, payload = _read(path)
    except _Corrupt as exc:
        aside = _set_aside(path)
        where = f"; moved to {aside}" if aside else ""
        raise StateError(f"state file {path} is corrupt or unreadable: {exc}{where}") from None
    if header.get("model_id") != model_id:
        log.warning("state file %s was made with model %r, not the running model %r: discarded",
                    path, header.get("model_id"), model_id)
        return None
    return payload


class _Corrupt(Exception):
    pass


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _Corrupt(f"{type(exc).__name__}: {exc}") from None
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
        plain = json.loads(arrays[_JSON].tobytes().decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise _Corrupt(f"no readable header ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Corrupt("not an edgefilter state file")
    if header.get("version") != FORMAT_VERSION:
        raise _Corrupt(f"format version {header.get('version')!r}, this edgefilter reads {FORMAT_VERSION}")
    expected = header.pop("sha256", None)
    if expected != _digest(arrays, header):
        raise _Corrupt("checksum mismatch")
    arrays.pop(_JSON)
    payload: dict[str, Any] = dict(plain)
    payload.update(arrays)
    return header, payload


def _set_aside(path: Path) -> Path | None:
    aside = path.with_name(path.name + ".corrupt")
    if aside.exists():
        aside = path.with_name(f"{path.name}.{int(time.time())}.corrupt")
    try:
        os.replace(path, aside)
    except OSError as exc:
        log.error("cannot move corrupt state file %s aside: %s", path, exc)
        return None
    return aside
