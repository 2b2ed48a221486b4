"""The bridge's on-disk outbox: order, size and age limits (oldest first, counted), and persistence."""
from __future__ import annotations

import multiprocessing
import os
import signal

from edgefilter.bridge.outbox import Outbox
from edgefilter.clock import FakeClock


def make(path, clock=None, drops=None, **limits) -> Outbox:
    limits = {"max_bytes": 10_000, "max_age_s": 60.0, **limits}
    return Outbox(path, clock=clock or FakeClock(), on_drop=lambda reason, n: drops.append((reason, n))
                  if drops is not None else None, **limits)


def test_messages_leave_in_the_order_they_came(tmp_path):
    box = make(tmp_path / "o.sqlite")
    for i in range(5):
        box.append("frame", "cam1", f'{{"seq":{i}}}', key=f"k{i}", jpeg=b"\xff\xd8" + bytes(10))
    box.append("drift", "cam1", '{"drift":false}')
    head = box.head(10)
    assert [e.key for e in head] == ["k0", "k1", "k2", "k3", "k4", None]
    assert head[-1].kind == "drift" and head[0].jpeg == b"\xff\xd8" + bytes(10) and not head[0].stored
    box.mark_stored([head[0].id])
    assert box.head(1)[0].stored
    assert box.remove([head[0].id, head[1].id]) == 2
    assert [e.key for e in box.head(2)] == ["k2", "k3"]
    assert box.depth()[0] == 4


def test_size_limit_drops_the_oldest_first_and_reports_them(tmp_path):
    drops: list = []
    box = make(tmp_path / "o.sqlite", drops=drops, max_bytes=1000)
    for i in range(10):
        box.append("frame", "cam1", "{}", key=f"k{i}", jpeg=bytes(298))  # 300 bytes each
    assert box.depth() == (3, 900)
    assert [e.key for e in box.head(10)] == ["k7", "k8", "k9"]
    assert sum(n for reason, n in drops if reason == "full") == 7


def test_pinned_messages_outlive_the_limits_until_removed(tmp_path):
    # A message handed to the MQTT client is delivered whatever the outbox does: dropping it would count a loss.
    clock, drops = FakeClock(), []
    box = make(tmp_path / "o.sqlite", clock=clock, drops=drops, max_bytes=1000, max_age_s=10)
    for i in range(2):
        box.append("frame", "cam1", "{}", key=f"k{i}", jpeg=bytes(298))
    assert box.claim([e.id for e in box.head(1)] + [999]) == {box.head(1)[0].id}  # 999: not (or no longer) here
    for i in range(2, 10):
        box.append("frame", "cam1", "{}", key=f"k{i}", jpeg=bytes(298))
    assert [e.key for e in box.head(10)] == ["k0", "k8", "k9"]
    assert sum(n for _, n in drops) == 7
    clock.advance(11)
    assert box.expire() == 2 and [e.key for e in box.head(10)] == ["k0"]
    assert box.remove([box.head(1)[0].id]) == 1 and box.depth() == (0, 0)
    box.append("frame", "cam1", "{}", key="k10", jpeg=bytes(298))
    clock.advance(11)
    assert box.expire() == 1  # removal unpins


def test_a_message_larger_than_the_limit_still_waits_alone(tmp_path):
    box = make(tmp_path / "o.sqlite", max_bytes=100)
    box.append("frame", "cam1", "{}", key="big", jpeg=bytes(500))
    assert [e.key for e in box.head(5)] == ["big"]  # dropping the newest would lose it for nothing


def test_age_limit_expires_old_messages(tmp_path):
    clock, drops = FakeClock(), []
    box = make(tmp_path / "o.sqlite", clock=clock, drops=drops, max_age_s=10)
    box.append("drift", "cam1", '{"a":1}')
    clock.advance(6)
    box.append("drift", "cam1", '{"a":2}')
    assert box.oldest_age() == 6
    clock.advance(5)
    assert box.expire() == 1 and drops == [("expired", 1)]
    assert [e.header for e in box.head(5)] == ['{"a":2}']


def _fill_and_die(path: str, n: int) -> None:
    box = Outbox(path, max_bytes=1 << 20, max_age_s=3600)
    for i in range(n):
        box.append("frame", "cam1", "{}", key=f"k{i}", jpeg=bytes(100))
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit: what a crash leaves behind


def test_everything_appended_survives_a_killed_process(tmp_path):
    path = tmp_path / "o.sqlite"
    proc = multiprocessing.get_context("spawn").Process(target=_fill_and_die, args=(str(path), 200))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    box = make(path, max_bytes=1 << 20)
    assert box.depth() == (200, 200 * 102)
    assert [e.key for e in box.head(200)] == [f"k{i}" for i in range(200)]
