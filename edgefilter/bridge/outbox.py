"""A bounded, on-disk FIFO of messages waiting for the broker and the store.

SQLite in WAL mode: every append is committed before the bridge moves on, so a killed bridge
(SIGKILL included) finds every message it had accepted when it starts again. Rows leave in the
order they came (``id``); the size and age limits drop the oldest rows first and report how many
(the caller counts them by reason), except rows the caller has pinned: a message already handed to the
MQTT client is delivered by it whatever the outbox does, so dropping it would count a loss that never
happens (at most ``outbox.batch`` rows are pinned at a time). A frame row remembers that its JPEG is already stored
(``stored``), so a retry after a broker outage does not upload it again.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    key TEXT,
    header TEXT NOT NULL,
    jpeg BLOB,
    embedding BLOB,
    size INTEGER NOT NULL,
    stored INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass
class Entry:
    """One waiting message. ``key`` is the object key of a frame (None for drift)."""

    id: int
    created: float
    kind: str  # "frame" or "drift"
    source: str
    key: str | None
    header: str  # the daemon's header, JSON text as received
    jpeg: bytes | None
    embedding: bytes | None
    stored: bool


class Outbox:
    """Thread-safe: receivers append while the forwarder reads the head and deletes what went out."""

    def __init__(self, path: str | Path, *, max_bytes: int, max_age_s: float, clock: Clock = SYSTEM_CLOCK,
                 on_drop: Callable[[str, int], None] | None = None):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._on_drop = on_drop or (lambda reason, n: None)
        self._lock = threading.Lock()
        self._pinned: set[int] = set()  # ids with the MQTT client: the limits skip them
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            # WAL + NORMAL: a commit survives the process being killed (not a power cut), at a fraction of
            # FULL's fsync cost per message.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._bytes, self._count = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as e:
            raise StateError(f"outbox {self.path}: cannot open: {e}") from None

    # ------------------------------------------------------------------ writing

    def append(self, kind: str, source: str, header: str, *, key: str | None = None, jpeg: bytes | None = None,
               embedding: bytes | None = None) -> int:
        """Add a message at the tail; returns how many old messages the limits dropped to make room."""
        size = len(header) + len(jpeg or b"") + len(embedding or b"")
        with self._lock:
            self._db.execute("INSERT INTO outbox (created, kind, source, key, header, jpeg, embedding, size) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (self._clock.time(), kind, source, key, header, jpeg, embedding, size))
            self._bytes += size
            self._count += 1
            return self._enforce_size()

    def _enforce_size(self) -> int:  # caller holds the lock
        dropped = 0
        while self._bytes > self.max_bytes and self._count > 1:
            # A batch at a time: one DELETE per row would make a full outbox slow to trim.
            rows = self._db.execute("SELECT id, size FROM outbox ORDER BY id LIMIT ?",
                                    (64 + len(self._pinned),)).fetchall()
            over = self._bytes - self.max_bytes
            cut = []
            for row_id, size in rows:
                if over <= 0 or len(cut) >= self._count - 1:
                    break
                if row_id not in self._pinned:
                    cut.append(row_id)
                    over -= size
            if not cut:
                break  # only pinned rows left to drop: they leave when the broker acknowledges them
            dropped += self._delete(cut)
        if dropped:
            self._on_drop("full", dropped)
        return dropped

    def expire(self) -> int:
        """Drop messages older than ``max_age_s``; returns how many."""
        with self._lock:
            cutoff = self._clock.time() - self.max_age_s
            ids = [r[0] for r in self._db.execute("SELECT id FROM outbox WHERE created < ? ORDER BY id",
                                                  (cutoff,)) if r[0] not in self._pinned]
            n = self._delete(ids)
        if n:
            self._on_drop("expired", n)
        return n

    def _delete(self, ids: list[int]) -> int:  # caller holds the lock
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        freed, n = self._db.execute(f"SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE id IN ({marks})",
                                    ids).fetchone()
        self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
        self._bytes -= freed
        self._count -= n
        return n

    # ------------------------------------------------------------------ reading

    def head(self, limit: int) -> list[Entry]:
        """The oldest ``limit`` messages, oldest first."""
        return self._select("", limit)

    def _select(self, where: str, limit: int) -> list[Entry]:
        with self._lock:
            rows = self._db.execute("SELECT id, created, kind, source, key, header, jpeg, embedding, stored "
                                    f"FROM outbox {where} ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Entry(id=r[0], created=r[1], kind=r[2], source=r[3], key=r[4], header=r[5], jpeg=r[6],
                      embedding=r[7], stored=bool(r[8])) for r in rows]

    def unstored(self, limit: int) -> list[Entry]:
        """The oldest ``limit`` frames whose JPEG is not in the store yet."""
        return self._select("WHERE kind = 'frame' AND stored = 0", limit)

    def mark_stored(self, ids: list[int]) -> None:
        if ids:
            with self._lock:
                self._db.execute(f"UPDATE outbox SET stored = 1 WHERE id IN ({','.join('?' * len(ids))})", ids)

    def claim(self, ids: list[int]) -> set[int]:
        """Of these rows, those still here, pinned from now on (the limits skip them) until :meth:`remove`:
        the forwarder hands them to the MQTT client, which delivers them whatever the outbox does. A row the
        limits dropped while the forwarder was busy (an upload) is not sent: it was counted dropped."""
        if not ids:
            return set()
        with self._lock:
            marks = ",".join("?" * len(ids))
            here = {r[0] for r in self._db.execute(f"SELECT id FROM outbox WHERE id IN ({marks})", list(ids))}
            self._pinned.update(here)
            return here

    def remove(self, ids: list[int]) -> int:
        """Delete messages that went out; returns how many were still there."""
        with self._lock:
            self._pinned.difference_update(ids)
            return self._delete(list(ids))

    def depth(self) -> tuple[int, int]:
        """(messages, bytes) waiting."""
        with self._lock:
            return self._count, self._bytes

    def oldest_age(self) -> float:
        """Seconds the oldest waiting message has waited (0 when empty)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
        return 0.0 if row[0] is None else max(0.0, self._clock.time() - row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
