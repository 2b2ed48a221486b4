"""Novelty filter: exact decisions against a brute-force reference, windows, scopes, heartbeat,
budget, regions, reconfiguration and restart from saved state (frame mode); event mode: one keep
per event, the settled frame, max_hold_s, flush, and the held-frame bookkeeping."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgefilter.clock import FakeClock
from edgefilter.config import FilterConfig, WindowConfig
from edgefilter.novelty import Decision, NoveltyFilter, RollingIndex

DIM = 32


def FrameConfig(**kw) -> FilterConfig:  # noqa: N802 (reads like the class it builds)
    """Per-frame decisions: what these tests check (event mode has its own tests below)."""
    return FilterConfig(mode="frame", **kw)



def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def rand_unit(rng: np.random.Generator, n: int | None = None, dim: int = DIM) -> np.ndarray:
    return unit(rng.standard_normal((dim,) if n is None else (n, dim)))


def near(rng: np.random.Generator, v: np.ndarray, sigma: float) -> np.ndarray:
    return unit(v + sigma * rng.standard_normal(v.shape) / np.sqrt(v.shape[-1]))


def run(f: NoveltyFilter, items: list, batch: int = 8) -> list[Decision]:
    out: list[Decision] = []
    for i in range(0, len(items), batch):
        out.extend(f.decide(items[i:i + batch]))
    return out


class GreedyReference:
    """The filter's rules, one frame at a time, by brute force in float64."""

    def __init__(self, threshold: float, window: WindowConfig, scope: str):
        self.t, self.window, self.scope = threshold, window, scope
        self.kept: dict[str, list[tuple[np.ndarray, float]]] = {}
        self.newest: dict[str, float] = {}

    def _evict(self, name: str) -> None:
        kept = self.kept[name]
        while len(kept) > self.window.size:
            kept.pop(0)
        cutoff = self.newest[name] - self.window.seconds
        self.kept[name] = [(v, ts) for v, ts in kept if ts >= cutoff]

    def decide(self, source: str, ts: float, v: np.ndarray) -> tuple[bool, float | None]:
        name = "*" if self.scope == "global" else source
        self.kept.setdefault(name, [])
        self.newest[name] = max(self.newest.get(name, -np.inf), ts)
        self._evict(name)
        kept = self.kept[name]
        if not kept:
            d = None
        else:
            d = float(np.min(1.0 - np.stack([k for k, _ in kept]).astype(np.float64) @ v.astype(np.float64)))
        keep = d is None or d > self.t
        if keep:
            kept.append((v, ts))
            self._evict(name)
        return keep, d


def clustered_stream(seed: int, n: int, sources: list[str], fps: float = 2.0) -> list:
    """Frames around a few scene centres with varying noise, so NN distances straddle the threshold."""
    rng = np.random.default_rng(seed)
    centres = rand_unit(rng, 6)
    items = []
    for i in range(n):
        c = centres[rng.integers(len(centres))]
        items.append((sources[i % len(sources)], i / fps, near(rng, c, rng.uniform(0.1, 0.9)), None))
    return items


@pytest.mark.parametrize("scope", ["source", "global"])
@pytest.mark.parametrize("window", [WindowConfig(size=10000, seconds=1e9), WindowConfig(size=12, seconds=40.0)])
def test_decisions_and_distances_match_greedy_reference(scope, window):
    sources = ["a", "b", "c"]
    items = clustered_stream(7, 600, sources)
    cfg = FrameConfig(threshold=0.15, window=window, scope=scope)
    f = NoveltyFilter(cfg, DIM, sources)
    ref = GreedyReference(0.15, window, scope)
    got = run(f, items, batch=8)
    kept = 0
    for (source, ts, v, _), dec in zip(items, got):
        keep, d = ref.decide(source, ts, v)
        assert dec.keep == keep, (source, ts, dec, d)
        if d is None:
            assert dec.distance is None and dec.reason == "first"
        else:
            assert dec.distance == pytest.approx(d, abs=1e-5)
            assert dec.reason == ("novel" if keep else None)
        assert dec.threshold == 0.15
        kept += keep
    assert 30 < kept < 570  # the stream exercises both outcomes
    assert all(f.index_size(s) <= window.size for s in sources)


def test_in_batch_ordering_two_identical_new_frames():
    rng = np.random.default_rng(1)
    f = NoveltyFilter(FrameConfig(), DIM, ["a"])
    base, new = rand_unit(rng), rand_unit(rng)
    f.decide([("a", 0.0, base, None)])
    got = f.decide([("a", 1.0, new, None), ("a", 1.5, new, None), ("a", 2.0, base, None)])
    assert [d.keep for d in got] == [True, False, False]
    assert got[1].distance == pytest.approx(0.0, abs=1e-6)
    assert f.index_size("a") == 2


def test_scope_source_vs_global():
    rng = np.random.default_rng(2)
    v = rand_unit(rng)
    per_source = NoveltyFilter(FrameConfig(scope="source"), DIM, ["a", "b"])
    shared = NoveltyFilter(FrameConfig(scope="global"), DIM, ["a", "b"])
    batch = [("a", 0.0, v, None), ("b", 0.1, near(rng, v, 0.05), None)]
    assert [d.keep for d in per_source.decide(batch)] == [True, True]
    got = shared.decide(batch)
    assert [d.keep for d in got] == [True, False]
    assert got[1].distance is not None and got[1].distance < 0.15
    assert shared.index_size("a") == shared.index_size("b") == 1
    assert per_source.index_size("a") == per_source.index_size("b") == 1


def test_window_evicts_by_size_oldest_first():
    rng = np.random.default_rng(3)
    f = NoveltyFilter(FrameConfig(window=WindowConfig(size=3, seconds=1e9)), DIM, ["a"])
    vs = rand_unit(rng, 5)
    got = f.decide([("a", float(i), v, None) for i, v in enumerate(vs)])
    assert all(d.keep for d in got)
    assert f.index_size("a") == 3
    # the two oldest left, so they are novel again; the newest three are not
    again = f.decide([("a", 10.0, vs[4], None), ("a", 11.0, vs[0], None)])
    assert [d.keep for d in again] == [False, True]


def test_window_evicts_by_seconds_relative_to_newest_ts():
    clock = FakeClock()
    rng = np.random.default_rng(4)
    v, w = rand_unit(rng), rand_unit(rng)
    f = NoveltyFilter(FrameConfig(window=WindowConfig(size=100, seconds=60.0)), DIM, ["a"], clock=clock)
    t0 = clock.time()
    assert f.decide([("a", t0, v, None)])[0].keep
    assert not f.decide([("a", t0 + 59.0, v, None)])[0].keep
    assert f.decide([("a", t0 + 30.0, w, None)])[0].keep
    got = f.decide([("a", t0 + 61.0, v, None)])[0]  # v (kept at t0) has aged out; w has not
    assert got.keep and got.reason == "novel" and f.index_size("a") == 2


def test_rolling_index_size_seconds_and_reuse():
    rng = np.random.default_rng(5)
    idx = RollingIndex(DIM, WindowConfig(size=50, seconds=100.0))
    vs = rand_unit(rng, 400)
    for i, v in enumerate(vs):
        idx.add(v, float(i))
        assert len(idx) == min(i + 1, 50)
    d, k = idx.search(vs[-5:])
    assert np.allclose(d[:, 0], 0.0, atol=1e-6) and list(k[:, 0]) == [395, 396, 397, 398, 399]
    d, k = idx.search(vs[:1])  # evicted: its nearest is some other vector
    assert k[0, 0] != 0 and d[0, 0] > 0.1
    idx.evict(460.0)  # everything older than ts 360 goes
    assert len(idx) == 40
    assert idx._vectors.shape[0] <= 128  # slots are reused, storage stays bounded


def test_a_repeated_search_answers_for_the_kept_set_as_it_is_now():
    """The same query twice (a frame the pre-gate skipped carries the last embedding) reuses the answer only
    while nothing was kept or evicted in between."""
    rng = np.random.default_rng(6)
    idx = RollingIndex(DIM, WindowConfig(size=3, seconds=100.0))
    far, query = rand_unit(rng), rand_unit(rng)
    idx.add(far, 0.0)
    d_far, k_far = idx.search(query)
    assert (idx.search(query)[1] == k_far).all()
    close = idx.add(near(rng, query, 0.01), 1.0)  # kept since: the same query now finds it
    d, k = idx.search(query)
    assert k[0, 0] == close and d[0, 0] < 0.01 < d_far[0, 0]
    for i in range(3):  # the close one is evicted by size: gone from the answer
        idx.add(rand_unit(rng), 2.0 + i)
    assert close not in idx.search(query, count=3)[1]
    idx.evict(200.0)  # and by age: nothing left
    assert idx.search(query)[1].size == 0 or (idx.search(query)[1] < 0).all()


def test_heartbeat_keeps_a_static_source():
    rng = np.random.default_rng(6)
    v = rand_unit(rng)
    f = NoveltyFilter(FrameConfig(max_interval_s=10.0), DIM, ["a"])
    got = run(f, [("a", float(t), near(rng, v, 0.01), None) for t in range(35)])
    kept = [(t, d.reason) for t, d in enumerate(got) if d.keep]
    assert kept == [(0, "first"), (10, "heartbeat"), (20, "heartbeat"), (30, "heartbeat")]
    off = NoveltyFilter(FrameConfig(), DIM, ["a"])
    assert sum(d.keep for d in run(off, [("a", float(t), v, None) for t in range(35)])) == 1


def random_walk(seed: int, minutes: float, fps: float, step: float, dim: int = 16) -> list:
    rng = np.random.default_rng(seed)
    x = rand_unit(rng, dim=dim).astype(np.float64)
    items = []
    for i in range(int(minutes * 60 * fps)):
        x = x + rng.standard_normal(dim) * step / np.sqrt(dim)
        x /= np.linalg.norm(x)
        items.append(("a", i / fps, x.astype(np.float32), None))
    return items


@pytest.mark.parametrize("budget", [2.0, 12.0])
def test_budget_converges_to_the_keep_rate(budget):
    items = random_walk(11, 60, 2.0, 0.15)
    cfg = FrameConfig(threshold=0.15, budget_per_minute=budget, window=WindowConfig(size=50, seconds=600))
    f = NoveltyFilter(cfg, 16, ["a"])
    got = run(f, items)
    kept_ts = np.array([it[1] for it, d in zip(items, got) if d.keep])
    late = ((kept_ts >= 1800) & (kept_ts < 3600)).sum() / 30.0  # keeps per minute, second half hour
    assert late == pytest.approx(budget, rel=0.15)
    fixed = sum(d.keep for d in run(NoveltyFilter(dataclasses.replace(cfg, budget_per_minute=None), 16, ["a"]),
                                    items)) / 60.0
    assert abs(fixed - budget) > 0.3 * budget  # the fixed threshold alone would miss the budget
    assert cfg.threshold_min <= f.threshold("a") <= cfg.threshold_max


def test_budget_never_forces_keeps_on_a_static_stream():
    rng = np.random.default_rng(12)
    v = rand_unit(rng, dim=16)
    cfg = FrameConfig(threshold=0.15, budget_per_minute=10.0)
    f = NoveltyFilter(cfg, 16, ["a"])
    got = run(f, [("a", i / 2.0, near(rng, v, 0.02), None) for i in range(3600)])
    assert sum(d.keep for d in got) == 1
    assert f.threshold("a") == pytest.approx(cfg.threshold_min)


CELLS, CELL_DIM = 16, 24  # a 4x4 grid of region cells, narrower than the whole-image vector (like 49 x 320)


def cell_scene(seed: int, frames: int, sigma: float = 0.05):
    """A still camera: the whole image and every region cell jitter by ``sigma`` (noise, compression)."""
    rng = np.random.default_rng(seed)
    whole, cells = rand_unit(rng), rand_unit(rng, CELLS, CELL_DIM)
    noisy = [(near(rng, whole, 0.02), near(rng, cells, sigma)) for _ in range(frames)]
    return rng, whole, cells, noisy


def with_object(rng, cells: np.ndarray, at: int) -> np.ndarray:
    """The same cells with a small new object in cell ``at`` (the whole image hardly changes)."""
    out = near(rng, cells, 0.05)
    out[at] = near(rng, rand_unit(rng, dim=CELL_DIM), 0.05)
    return out


def regional_filter(cfg: FilterConfig) -> NoveltyFilter:
    return NoveltyFilter(cfg, DIM, ["a"], region_count=CELLS, region_dim=CELL_DIM)


def warm(f: NoveltyFilter, noisy: list, t0: float = 0.0) -> float:
    """Feed a still scene until the source's cell noise is learnt; returns the next timestamp."""
    got = run(f, [("a", t0 + i / FPS, w, c, i) for i, (w, c) in enumerate(noisy)])
    assert got[0].reason == "first" and not any(d.keep for d in got[1:])
    return t0 + len(noisy) / FPS


def test_regional_finds_a_small_object():
    rng, whole, cells, noisy = cell_scene(13, 120)
    on, off = regional_filter(FrameConfig(regional=True)), regional_filter(FrameConfig(regional=False))
    t = warm(on, noisy)
    warm(off, noisy)
    frame = ("a", t, near(rng, whole, 0.02), with_object(rng, cells, 5))
    got_off, got_on = off.decide([frame])[0], on.decide([frame])[0]
    assert not got_off.keep and got_off.distance < 0.15
    assert got_on.keep and got_on.reason == "novel" and got_on.region == 5
    # the header keeps its meaning: distance is the whole-image cosine distance, the region's change has its own key
    assert got_on.distance < got_on.threshold == FilterConfig().threshold
    assert got_on.region_score > FilterConfig().region_threshold
    # now kept, the object is known: the same view again (with fresh noise) is not novel
    assert not on.decide([("a", t + 1, near(rng, whole, 0.02), near(rng, frame[3], 0.05))])[0].keep


def test_regional_ignores_a_change_of_every_cell_and_waits_for_the_noise():
    rng, whole, cells, noisy = cell_scene(14, 120)
    f = regional_filter(FrameConfig(regional=True))
    # before the source's cell noise is learnt only the whole image decides: no keep from noise
    t = warm(f, noisy)
    # exposure, flicker, re-encoding: every cell moves alike and far more than its noise (cosine distance
    # 0.3 here), the whole image less than its threshold; a cell counts only above the other cells' change
    def turned(c: np.ndarray, distance: float) -> np.ndarray:
        away = unit(rng.standard_normal(c.shape) - (rng.standard_normal(c.shape) * c).sum(1, keepdims=True) * 0)
        away = unit(away - (away * c).sum(1, keepdims=True) * c)  # orthogonal to each cell
        angle = np.arccos(1.0 - distance)
        return unit(np.cos(angle) * c + np.sin(angle) * away)

    assert not any(d.keep for d in run(f, [("a", t + i, near(rng, whole, 0.02), turned(cells, 0.3))
                                           for i in range(20)]))
    # one cell turned as far, the others not: a region changed
    one = near(rng, cells, 0.05)
    one[7] = turned(cells, 0.3)[7]
    got = f.decide([("a", t + 30, near(rng, whole, 0.02), one)])[0]
    assert got.keep and got.region == 7


def test_regional_catches_a_new_combination_of_known_things():
    rng, whole, cells, noisy = cell_scene(15, 120)
    f = regional_filter(FrameConfig(regional=True))
    t = warm(f, noisy)
    a, b = with_object(rng, cells, 2), with_object(rng, cells, 9)
    assert f.decide([("a", t, near(rng, whole, 0.02), a)])[0].keep
    assert f.decide([("a", t + 1, near(rng, whole, 0.02), b)])[0].keep
    # both objects at once: each cell was seen in some kept frame, but no kept frame shows them together
    both = near(rng, cells, 0.05)
    both[2], both[9] = near(rng, a[2], 0.05), near(rng, b[9], 0.05)
    got = f.decide([("a", t + 2, near(rng, whole, 0.02), both)])[0]
    assert got.keep and got.region in (2, 9)


def test_reconfigure_keeps_indexes_and_applies_new_values():
    rng = np.random.default_rng(14)
    f = NoveltyFilter(FrameConfig(threshold=0.15), DIM, ["a", "b"])
    vs = rand_unit(rng, 6)
    f.decide([("a" if i % 2 else "b", float(i), v, None) for i, v in enumerate(vs)])
    assert f.index_size("a") == f.index_size("b") == 3
    f.reconfigure(FrameConfig(threshold=0.5, window=WindowConfig(size=2, seconds=3600)))
    assert f.threshold("a") == 0.5 and f.index_size("a") == 2
    f.reconfigure(FrameConfig(threshold=0.5, scope="global", window=WindowConfig(size=10, seconds=3600)))
    assert f.index_size("a") == 4
    assert not f.decide([("a", 10.0, vs[4], None)])[0].keep  # b's frame is now seen from a
    f.reconfigure(FrameConfig(threshold=0.5, scope="source", window=WindowConfig(size=10, seconds=3600)))
    assert f.index_size("a") == 2 and f.index_size("b") == 2
    with pytest.raises(ValueError, match="threshold_min"):
        f.reconfigure(FrameConfig(threshold_min=0.7, threshold_max=0.6))


def test_unknown_source_and_bad_shape_are_named():
    f = NoveltyFilter(FrameConfig(), DIM, ["a"])
    with pytest.raises(ValueError, match="'zz'"):
        f.decide([("zz", 0.0, np.ones(DIM, np.float32), None)])
    with pytest.raises(ValueError, match=r"\(32,\)"):
        f.decide([("a", 0.0, np.ones(5, np.float32), None)])


def test_restart_on_an_unchanged_scene(tmp_path):
    rng = np.random.default_rng(15)
    scene = rand_unit(rng)
    cfg = FrameConfig(budget_per_minute=5.0, max_interval_s=3600.0, regional=True)
    regions = rand_unit(rng, 2)
    f = NoveltyFilter(cfg, DIM, ["a", "b"], region_count=2)
    run(f, [("a", float(i), near(rng, scene, 0.01), near(rng, regions, 0.01)) for i in range(100)])
    f.save(tmp_path, "model-1")
    g = NoveltyFilter(cfg, DIM, ["a", "b"], region_count=2)
    assert g.load(tmp_path, "model-1")
    assert g.index_size("a") == f.index_size("a") == 1
    # the kept frame's region cells came back with it
    sc_f, sc_g = f._scopes["a"].index, g._scopes["a"].index
    assert np.array_equal(sc_g.payloads(sc_g.shortlist(scene, 4, 1)), sc_f.payloads(sc_f.shortlist(scene, 4, 1)))
    assert g.threshold("a") == f.threshold("a") and g.keep_rate("a") == f.keep_rate("a")
    again = g.decide([("a", 200.0, near(rng, scene, 0.01), regions)])[0]
    assert not again.keep and again.distance < 0.05
    assert g.decide([("a", 201.0, rand_unit(rng), regions)])[0].keep
    # another model's state is not used
    h = NoveltyFilter(cfg, DIM, ["a", "b"], region_count=2)
    assert not h.load(tmp_path, "model-2")
    assert h.decide([("a", 200.0, scene, regions)])[0].reason == "first"


def test_rolling_index_state_round_trip():
    rng = np.random.default_rng(16)
    idx = RollingIndex(DIM, WindowConfig(size=20, seconds=1e9))
    vs = rand_unit(rng, 30)
    for i, v in enumerate(vs):
        idx.add(v, 100.0 + i, origin=i % 3)
    st = idx.state()
    assert list(st["keys"]) == list(range(10, 30))
    back = RollingIndex.from_state(DIM, WindowConfig(size=20, seconds=1e9), st)
    assert len(back) == 20 and back.next_key == 30
    for key in ("vectors", "ts", "keys", "origin"):
        assert np.array_equal(back.state()[key], st[key])
    d1, k1 = idx.search(vs[10:])
    d2, k2 = back.search(vs[10:])
    assert np.array_equal(k1[:, 0], k2[:, 0]) and np.allclose(d1[:, 0], d2[:, 0], atol=1e-6)
    assert back.add(vs[0], 200.0) == 30


def test_saved_graph_is_used_and_a_bad_one_is_rebuilt(caplog):
    rng = np.random.default_rng(17)
    window = WindowConfig(size=100, seconds=1e9)
    idx = RollingIndex(DIM, window)
    vs = rand_unit(rng, 40)
    for i, v in enumerate(vs):
        idx.add(v, float(i))
    st = idx.state()
    assert st["graph"].dtype == np.uint8 and len(st["graph"]) > 0
    variants = {"graph": st, "none": {k: v for k, v in st.items() if k != "graph"},
                "garbage": dict(st, graph=np.frombuffer(b"\x00" * 64, np.uint8)),
                "other": dict(st, graph=RollingIndex(DIM, window).state()["graph"])}  # an empty graph
    for name, variant in variants.items():
        caplog.clear()
        back = RollingIndex.from_state(DIM, window, variant)
        assert bool(caplog.records) == (name == "garbage"), name  # a blob usearch cannot read is logged
        d, k = back.search(vs, exact=True)
        assert list(k[:, 0]) == list(range(40)), name
        assert np.allclose(d[:, 0], 0.0, atol=1e-6), name
        # the graph answers too (a parallel rebuild can, rarely, miss one: decisions confirm by a scan)
        _, k = back.search(vs)
        assert (k[:, 0] == np.arange(40)).sum() >= 38, name


def test_load_of_a_corrupt_state_raises_and_sets_it_aside(tmp_path):
    from edgefilter.errors import StateError
    f = NoveltyFilter(FrameConfig(), DIM, ["a"])
    f.decide([("a", 0.0, rand_unit(np.random.default_rng(18)), None)])
    path = f.save(tmp_path, "m")
    path.write_bytes(path.read_bytes()[:-100])
    g = NoveltyFilter(FrameConfig(), DIM, ["a"])
    with pytest.raises(StateError, match="novelty.npz"):
        g.load(tmp_path, "m")
    assert (tmp_path / "novelty.npz.corrupt").exists() and g.index_size("a") == 0
    assert not g.load(tmp_path, "m")  # next start: nothing to load, starts empty


# --------------------------------------------------------------------------- event mode

FPS = 10.0


def scene_walk(seed: int, plan: list[tuple[str, int]], noise: float = 0.1, motion: float = 1.0) -> tuple[list, dict]:
    """A fixed camera as vectors. ``plan``: ("A", n) holds scene A for n frames (sensor noise only);
    ("A>B", n) moves from A to B over n frames with large frame-to-frame motion (an object entering,
    moving, leaving). Scenes are random and about 0.5-1 apart; noise keeps a still scene ~0.01 from
    itself. Returns items (source "a", ts, vector, None, frame number) and the frame ranges per step."""
    rng = np.random.default_rng(seed)
    scenes: dict[str, np.ndarray] = {}
    items, spans = [], {}
    for step, n in plan:
        names = step.split(">")
        for name in names:
            scenes.setdefault(name, rand_unit(rng))
        start = len(items)
        for j in range(n):
            if len(names) == 1:
                v = near(rng, scenes[names[0]], noise)
            else:
                a = (j + 1) / (n + 1)
                v = near(rng, unit((1 - a) * scenes[names[0]] + a * scenes[names[1]]), motion)
            items.append(("a", len(items) / FPS, v, None, len(items)))
        spans[f"{step}@{start}"] = range(start, len(items))
    return items, spans


def drive(f: NoveltyFilter, items: list, batch: int = 8, flush: bool = True):
    """Feed like the daemon. Returns (per-frame decisions, published [(token, Decision)] in order,
    held tokens, discarded tokens)."""
    decisions, published, held, discarded = [], [], [], []
    for i in range(0, len(items), batch):
        part = items[i:i + batch]
        got = f.decide(part)
        decisions.extend(got)
        for it, d in zip(part, got):
            assert not (d.keep and d.held)
            if d.keep:
                published.append((it[4] if len(it) > 4 else None, d))
            if d.held:
                held.append(it[4] if len(it) > 4 else None)
        published.extend(f.released())
        discarded.extend(f.discarded())
    if flush:
        published.extend(f.flush())
        discarded.extend(f.discarded())
    return decisions, published, held, discarded


def event_cfg(**kw) -> FilterConfig:
    return FilterConfig(**{"mode": "event", "threshold": 0.15, "settle_frames": 5, "settle_ratio": 0.5,
                           "max_hold_s": 3.0, "noise_floor_k": 2.0, **kw})


ENTER_LEAVE = [("A", 30), ("A>B", 8), ("B", 30), ("B>A", 8), ("A", 30)]


def test_event_keeps_one_frame_per_event_and_the_settled_new_scene():
    items, spans = scene_walk(21, ENTER_LEAVE)
    b_still, leaving = spans["B@38"], spans["B>A@68"]
    _, published, held, discarded = drive(NoveltyFilter(event_cfg(), DIM, ["a"]), items)
    kept = [(tok, d.reason) for tok, d in published]
    assert len(kept) == 3, kept
    assert kept[0] == (0, "first")
    # entering: the scene settled on B, so a still frame of B is kept (not one of the motion)
    tok, d = published[1]
    assert tok in b_still and tok >= b_still.start + 5 - 1 and d.reason == "novel"
    assert d.threshold == pytest.approx(0.5 * 0.15) and d.distance > 0.5
    # leaving: the scene settles back on A (already kept), so the most novel moving frame is kept; once an
    # event passed the threshold its chosen frame need only pass settle_ratio of it
    tok, d = published[2]
    assert tok in leaving
    assert d.distance > 0.15 and d.threshold == pytest.approx(0.5 * 0.15)
    assert sorted(held) == sorted(set(held)) and sorted(discarded + [t for t, _ in published[1:]]) == sorted(held)
    # the per-frame filter keeps the first moving frame of each event instead, and more of them
    frame_kept = [it[4] for it, d in zip(items, run(NoveltyFilter(event_cfg(mode="frame"), DIM, ["a"]), items))
                  if d.keep]
    assert frame_kept[1] in spans["A>B@30"] and len(frame_kept) > 3


@pytest.mark.parametrize("batch", [1, 5, 32])
def test_event_decisions_do_not_depend_on_the_batch(batch):
    items, _ = scene_walk(22, ENTER_LEAVE * 2)
    ref = [t for t, _ in drive(NoveltyFilter(event_cfg(), DIM, ["a"]), items, batch=8)[1]]
    got = [t for t, _ in drive(NoveltyFilter(event_cfg(), DIM, ["a"]), items, batch=batch)[1]]
    assert got == ref and len(ref) >= 4


def test_event_on_a_static_noisy_scene_keeps_only_the_first_frame():
    items, _ = scene_walk(23, [("A", 600)], noise=0.2)
    decisions, published, held, _ = drive(NoveltyFilter(event_cfg(), DIM, ["a"]), items)
    assert [t for t, _ in published] == [0] and not held and not any(d.held for d in decisions)


def test_event_hold_is_bounded_by_max_hold_s():
    rng = np.random.default_rng(24)
    first = rand_unit(rng)
    # a scene that never settles: every frame is new and far from the previous one
    items = [("a", 0.0, first, None, 0)] + [("a", i / FPS, rand_unit(rng), None, i) for i in range(1, 200)]
    f = NoveltyFilter(event_cfg(max_hold_s=2.0), DIM, ["a"])
    opened, decided_at = {}, {}
    for it in items:  # one at a time: the deciding frame is exact
        d = f.decide([it])[0]
        assert f.holding() <= 2.0 * FPS + 1
        if d.held and f.holding() == 1:
            opened[len(opened)] = it[4]
        for tok, _ in f.released():
            decided_at[tok] = it[4]
        f.discarded()
    assert len(decided_at) == len(opened) - 1 == 9  # the last event is still open
    for n, (tok, at) in enumerate(sorted(decided_at.items(), key=lambda x: x[1])):
        assert at - opened[n] == 20  # decided at the first frame 2 s after the event opened
    assert len(f.flush()) == 1 and f.holding() == 0


def test_flush_decides_open_candidates_and_adds_them_to_the_index():
    items, spans = scene_walk(25, [("A", 20), ("A>B", 6), ("B", 3)])  # B has not settled yet
    f = NoveltyFilter(event_cfg(), DIM, ["a", "b"])
    _, published, held, discarded = drive(f, items, flush=False)
    assert [t for t, _ in published] == [0] and f.holding("a") == len(held) == 9
    assert f.flush("b") == [] and f.holding("a") == 9
    keeps = f.flush()
    assert len(keeps) == 1 and keeps[0][1].keep and keeps[0][1].reason == "novel"
    assert sorted(f.discarded() + [keeps[0][0]]) == sorted(held)
    assert f.holding() == 0 and f.index_size("a") == 2 and f.flush() == [] and f.released() == []
    with pytest.raises(ValueError, match="'zz'"):
        f.flush("zz")


@pytest.mark.parametrize("scope", ["source", "global"])
def test_every_held_token_is_released_or_discarded_once_and_order_is_kept(scope):
    rng = np.random.default_rng(26)
    sources = ["a", "b", "c"]
    plans = {s: scene_walk(27 + n, ENTER_LEAVE + [("A>C", 5), ("C", 12), ("C>A", 3), ("A", 4)])[0]
             for n, s in enumerate(sources)}
    items = []  # interleave the sources irregularly, each in its own order
    pos = dict.fromkeys(sources, 0)
    while any(pos[s] < len(plans[s]) for s in sources):
        s = sources[int(rng.integers(3))]
        if pos[s] < len(plans[s]):
            _, ts, v, r, k = plans[s][pos[s]]
            items.append((s, ts, v, r, (s, k)))
            pos[s] += 1
    f = NoveltyFilter(event_cfg(scope=scope, max_interval_s=4.0), DIM, sources)
    decisions, published, held, discarded = drive(f, items, batch=7)
    released = [t for t, d in published if t in set(held)]
    assert sorted(released + discarded) == sorted(held)  # each exactly once
    assert len(set(released + discarded)) == len(held)
    assert all(d.keep for _, d in published)
    assert not set(t for t, d in published if d.reason == "first") & set(held) or scope == "source"
    for s in sources:  # publication order is stream order per source
        order = [k for (src, k), _ in published if src == s]
        assert order == sorted(order) and len(order) >= 3
    assert f.holding() == 0


def test_first_and_heartbeat_are_immediate_in_event_mode():
    rng = np.random.default_rng(28)
    v = rand_unit(rng)
    f = NoveltyFilter(event_cfg(max_interval_s=10.0), DIM, ["a"])
    items = [("a", float(t), near(rng, v, 0.01), None, t) for t in range(35)]
    decisions, published, held, _ = drive(f, items)
    assert [(t, d.reason) for t, d in published] == [(0, "first"), (10, "heartbeat"), (20, "heartbeat"),
                                                    (30, "heartbeat")]
    assert not held and all(decisions[t].keep for t in (0, 10, 20, 30))


def test_four_field_items_still_work_in_event_mode():
    items, _ = scene_walk(29, ENTER_LEAVE)
    f = NoveltyFilter(event_cfg(), DIM, ["a"])
    got = run(f, [it[:4] for it in items])
    assert got[0].keep and any(d.held for d in got)
    assert all(tok is None for tok, _ in f.released()) and len(f.flush()) <= 1


def test_region_novel_frames_open_events_too():
    rng, whole, cells, noisy = cell_scene(30, 120)
    f = regional_filter(event_cfg(regional=True))
    t = warm(f, noisy)
    obj = with_object(rng, cells, 5)
    got = f.decide([("a", t + i / FPS, near(rng, whole, 0.02), near(rng, obj, 0.05), 100 + i) for i in range(8)])
    assert [d.held for d in got] == [True] * 6 + [False] * 2  # tokens 100-105: the event, settled at 105
    (tok, d), = f.released()
    # the settled frame is judged by the full region threshold (settle_ratio relaxes the whole image only)
    assert tok == 105 and d.region == 5 and d.region_score > FilterConfig().region_threshold
    assert d.distance < d.threshold and d.pick == "settled"
    assert f.discarded() == [100, 101, 102, 103, 104] and f.index_size("a") == 2
    assert not any(x.keep or x.held for x in got[6:])  # now known


def test_a_small_thing_moving_in_a_still_scene_is_not_settled():
    rng, whole, cells, noisy = cell_scene(33, 120)
    f = regional_filter(event_cfg(regional=True))
    t = warm(f, noisy)
    # an object walks across the grid: the whole image stays still, so only the cells tell it is moving
    walk = [("a", t + i / FPS, near(rng, whole, 0.02), with_object(rng, cells, i % CELLS), 100 + i) for i in range(12)]
    got = f.decide(walk)
    assert all(d.held for d in got)  # held until max_hold_s, not "settled" after settle_frames
    assert f.holding("a") == len(walk)


def test_shared_scope_keeps_a_scene_two_cameras_see_once():
    rng = np.random.default_rng(31)
    A, B = rand_unit(rng), rand_unit(rng)
    f = NoveltyFilter(event_cfg(scope="global"), DIM, ["a", "b"])
    items = []
    for i in range(40):
        t = i / FPS
        items.append(("a", t, near(rng, A if i < 10 else B, 0.1), None, ("a", i)))
        items.append(("b", t + 0.01, near(rng, A if i < 12 else B, 0.1), None, ("b", i)))
    _, published, held, discarded = drive(f, items, batch=6)
    # a's event (opened at frame 10) settles after 5 still frames; b's event then finds B kept
    assert [t for t, _ in published] == [("a", 0), ("a", 15)]
    assert sorted(discarded + [("a", 15)]) == sorted(held)
    assert any(t[0] == "b" for t in held)


def test_a_stalled_source_does_not_hold_frames_forever():
    items, _ = scene_walk(32, [("A", 20), ("A>B", 5)])
    clock = FakeClock()
    f = NoveltyFilter(event_cfg(max_hold_s=2.0), DIM, ["a", "b"], clock)
    drive(f, items, flush=False)
    assert f.holding("a") == 5
    rng = np.random.default_rng(33)
    v = rand_unit(rng)
    # b's frames carry a clock of their own (a file read faster than real time): only the filter's clock counts
    for i in range(5):
        clock.advance(0.38)
        f.decide([("b", 1000.0 + i, v, None, ("b", i))])
    assert f.holding("a") == 5 and not f.released()  # 1.9 s since a's last frame: not yet 2 s
    clock.advance(0.2)
    f.decide([("b", 1005.0, v, None, ("b", 9))])
    assert f.holding("a") == 0 and len(f.released()) == 1 and len(f.discarded()) == 4


def test_switching_to_frame_mode_decides_what_is_held_first(tmp_path):
    items, _ = scene_walk(34, [("A", 20), ("A>B", 5)])
    f = NoveltyFilter(event_cfg(), DIM, ["a"])
    drive(f, items, flush=False)
    assert f.holding("a") == 5
    f.save(tmp_path, "m")  # saving with a candidate open works (held frames are not state)
    f.reconfigure(event_cfg(mode="frame"))
    rng = np.random.default_rng(35)
    new = rand_unit(rng)
    got = f.decide([("a", 3.0, new, None, "x")])
    # the held event is published first, then the new keep (routed the same way to keep the order)
    assert got[0].held and not got[0].keep
    rel = f.released()
    assert [t for t, _ in rel][1:] == ["x"] and rel[0][0] in range(20, 25) and f.holding() == 0
    g = NoveltyFilter(event_cfg(), DIM, ["a"])
    assert g.load(tmp_path, "m") and g.index_size("a") == 1
