"""Atomic state files: round trip, model mismatch, corruption, and kill -9 in the middle of writes."""
from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgefilter.errors import StateError
from edgefilter.state import load_state, save_state, state_path

ROOT = Path(__file__).resolve().parent.parent


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    payload = {"vectors": rng.standard_normal((50, 8)).astype(np.float32),
               "keys": np.arange(50, dtype=np.int64), "empty": np.zeros((0, 8), np.float16),
               "info": {"threshold": 0.15, "last": None, "names": ["a", "b"]}, "count": 3}
    path = save_state(tmp_path, "novelty", payload, "model-a", now=123.0)
    assert path == tmp_path / "novelty.npz" and path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["novelty.npz"]  # no temp file left behind
    back = load_state(tmp_path, "novelty", "model-a")
    assert set(back) == set(payload)
    for key in ("vectors", "keys", "empty"):
        assert back[key].dtype == payload[key].dtype and np.array_equal(back[key], payload[key])
    assert back["info"] == payload["info"] and back["count"] == 3


def test_missing_file_is_none(tmp_path):
    assert load_state(tmp_path, "novelty", "m") is None
    assert load_state(tmp_path / "not-there", "novelty", "m") is None


def test_other_model_is_discarded_with_a_warning(tmp_path, caplog):
    save_state(tmp_path, "novelty", {"x": np.ones(3)}, "effnet-v1")
    with caplog.at_level(logging.WARNING, logger="edgefilter.state"):
        assert load_state(tmp_path, "novelty", "effnet-v2") is None
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert "effnet-v1" in warning[0].getMessage() and "effnet-v2" in warning[0].getMessage()
    assert state_path(tmp_path, "novelty").exists()  # discarded, not destroyed


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_file_raises_and_is_set_aside(tmp_path, damage):
    path = save_state(tmp_path, "novelty", {"x": np.arange(100000, dtype=np.float32)}, "m")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40  # inside the array's bytes: only the checksums can tell
    else:
        data = bytearray(b"not a zip file at all")
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="novelty.npz") as err:
        load_state(tmp_path, "novelty", "m")
    assert "corrupt" in str(err.value)
    assert not path.exists()
    aside = tmp_path / "novelty.npz.corrupt"
    assert aside.read_bytes() == bytes(data)
    assert load_state(tmp_path, "novelty", "m") is None  # the daemon then starts empty


def test_array_changed_under_a_valid_zip_is_caught_by_the_checksum(tmp_path):
    import zipfile
    path = save_state(tmp_path, "novelty", {"x": np.arange(10, dtype=np.int64)}, "m")
    # rewrite one member with different values but a correct zip CRC
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io
    buf = io.BytesIO()
    np.save(buf, np.arange(10, dtype=np.int64) * 2)
    members["x.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(StateError, match="checksum"):
        load_state(tmp_path, "novelty", "m")


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(StateError, match="pickle"):
        save_state(tmp_path, "novelty", {"x": np.array([object()])}, "m")


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from edgefilter.state import save_state
    folder = sys.argv[1]
    gen = 0
    while True:
        gen += 1
        big = np.full((600, 1280), gen, dtype=np.float32)  # ~3 MB per write
        save_state(folder, "novelty", {"big": big, "gen": gen, "keys": np.arange(gen % 97)}, "m")
        print(gen, flush=True)
""")


def test_kill_minus_nine_during_writes_leaves_old_or_new_state(tmp_path):
    rnd = random.Random(1234)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    last_seen = 0
    mid_write = 0
    rounds = 0
    # Kill at random moments until at least two kills landed inside a write (bounded: 60 rounds).
    while rounds < 6 or (mid_write < 2 and rounds < 60):
        rounds += 1
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                                env=env, text=True)
        try:
            proc.stdout.readline()  # at least one complete write in this round
            time.sleep(rnd.uniform(0.0, 0.15))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        mid_write += any(p.suffix == ".tmp" for p in tmp_path.iterdir())
        state = load_state(tmp_path, "novelty", "m")
        assert state is not None
        gen = state["gen"]
        assert gen >= 1
        assert state["big"].shape == (600, 1280) and np.all(state["big"] == gen)
        assert np.array_equal(state["keys"], np.arange(gen % 97))
        last_seen = gen
    assert last_seen >= 1
    assert mid_write >= 2, f"no kill landed inside a write in {rounds} rounds"  # else the test proves nothing
    # a crash may leave a temp file, never a damaged state file; the next save clears the leftovers
    save_state(tmp_path, "novelty", {"gen": 0}, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["novelty.npz"]
