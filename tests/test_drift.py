"""Drift statistics: each statistic against a direct implementation, calibration on autocorrelated
streams without drift, detection of a real shift, and the monitor's windows, warm-up and timing."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import spatial, stats

from edgefilter.clock import FakeClock
from edgefilter.config import DriftConfig
from edgefilter.drift import (DriftMonitor, PredictiveNull, ReferenceModel, betainc, centroid_shift, holm,
                              kolmogorov_sf, ks_2samp_asymptotic, median_bandwidth,
                              mmd2_unbiased, mmd_permutation_pvalue, student_t_sf)
from edgefilter.errors import ReferenceError_
from edgefilter.reference import Reference

HEADER_KEYS = {"v", "source", "ts", "window", "reference", "mmd2", "p_value", "ks_min_p", "centroid_shift",
               "nn_distance", "keep_rate", "drift"}


def camera_stream(n: int, dim: int = 64, modes: int = 4, dwell: float = 150.0, rho: float = 0.98,
                  spread: float = 0.6, seed: int = 0, centres: np.ndarray | None = None):
    """A fixed camera's embeddings: a few modes of one scene (switching after ~``dwell`` frames) with an
    AR(1) wander around each, projected on the sphere. Consecutive frames are strongly correlated."""
    rng = np.random.default_rng(seed)
    if centres is None:  # one scene: modes (lighting, a parked car...) around a shared base view
        base = rng.standard_normal(dim)
        centres = base / np.linalg.norm(base) + 0.7 * rng.standard_normal((modes, dim)) / np.sqrt(dim)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    z = rng.standard_normal(dim) / np.sqrt(dim)
    k = int(rng.integers(len(centres)))
    out = np.empty((n, dim), np.float32)
    eps = rng.standard_normal((n, dim)) / np.sqrt(dim)
    noise = rng.standard_normal((n, dim)) * (0.05 / np.sqrt(dim))
    switch = rng.random(n) < 1.0 / dwell
    picks = rng.integers(len(centres), size=n)
    a = np.sqrt(1 - rho * rho)
    for t in range(n):
        if switch[t]:
            k = int(picks[t])
        z = rho * z + a * eps[t]
        out[t] = centres[k] + spread * z + noise[t]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, centres


def ref_of(vectors: np.ndarray, description: str = "ref.npz") -> Reference:
    return Reference(vectors=vectors, model_id="test-model", description=description)


# --------------------------------------------------------------------------- statistics vs direct


def explicit_mmd2(x: np.ndarray, y: np.ndarray, bw: float) -> float:
    def k(a, b):
        return np.exp(-np.sum((a.astype(np.float64) - b) ** 2) / (2 * bw * bw))
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def test_mmd2_matches_explicit_double_sum():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((25, 6)).astype(np.float32)
    y = (rng.standard_normal((31, 6)) + 0.3).astype(np.float32)
    bw = median_bandwidth(np.concatenate([x, y]))
    assert mmd2_unbiased(x, y, bw) == pytest.approx(explicit_mmd2(x, y, bw), abs=1e-5)
    # same distribution: the unbiased estimate can go below zero and sits near it
    assert abs(mmd2_unbiased(x[:12], x[12:], bw)) < 0.1


def test_median_bandwidth_is_median_pairwise_distance():
    x = np.random.default_rng(2).standard_normal((60, 5)).astype(np.float32)
    assert median_bandwidth(x) == pytest.approx(float(np.median(spatial.distance.pdist(x))), rel=1e-4)


def test_ks_statistics_match_scipy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((80, 4))
    y = rng.standard_normal((130, 4)) * 1.3 + 0.2
    d, p = ks_2samp_asymptotic(x, y)
    for j in range(4):
        ref = stats.ks_2samp(x[:, j], y[:, j])
        assert d[j] == pytest.approx(ref.statistic, abs=1e-12)
        en = 80 * 130 / 210
        assert p[j] == pytest.approx(stats.kstwobign.sf(np.sqrt(en) * d[j]), abs=1e-9)
        # the asymptotic p-value is close to scipy's own asymptotic method
        assert p[j] == pytest.approx(stats.ks_2samp(x[:, j], y[:, j], method="asymp").pvalue, abs=0.05)


def test_kolmogorov_sf_and_student_t_match_scipy():
    z = np.array([0.1, 0.5, 1.0, 1.36, 2.0, 3.0])
    assert np.allclose(kolmogorov_sf(z), stats.kstwobign.sf(z), atol=1e-9)
    for t, df in [(0.3, 4.5), (2.1, 19.0), (-1.2, 2.7), (6.0, 60.0)]:
        assert student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-8, abs=1e-14)
    assert betainc(2.5, 0.5, 0.3) == pytest.approx(__import__("scipy.special").special.betainc(2.5, 0.5, 0.3))


def test_holm_matches_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    k = len(p)
    order = np.argsort(p)
    expected = np.empty(k)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[i]))
        expected[i] = running
    assert np.allclose(holm(p), expected)
    assert holm(p).min() == pytest.approx(min(1.0, k * p.min()))  # Holm's smallest = Bonferroni's


def test_centroid_shift_is_cosine_distance_of_means():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((20, 7)), rng.standard_normal((30, 7)) + 0.5
    assert centroid_shift(x, y) == pytest.approx(spatial.distance.cosine(x.mean(0), y.mean(0)))


def test_window_statistics_match_direct_implementations():
    stream, _ = camera_stream(1400, dim=32, seed=5)
    ref, window = stream[:1000], stream[1100:1200]
    model = ReferenceModel(ref_of(ref), window=100, permutations=50, components=3)
    s = model.compare(window)
    assert s["window"] == 100
    assert s["mmd2"] == pytest.approx(mmd2_unbiased(window, ref, model.bandwidth), abs=1e-5)
    sims = window @ ref.T / np.linalg.norm(window, axis=1)[:, None] / np.linalg.norm(ref, axis=1)[None, :]
    assert s["nn_distance"] == pytest.approx(float(np.mean(1 - sims.max(1))), abs=1e-5)
    # the same nearest neighbours as an exact usearch search over the reference
    from usearch.index import Index
    index = Index(ndim=32, metric="cos", dtype="f32")
    index.add(np.arange(len(ref)), ref)
    hits = index.search(window, 1, exact=True)
    assert s["nn_distance"] == pytest.approx(float(np.mean(np.asarray(hits.distances)[:, 0])), abs=1e-4)
    assert s["centroid_shift"] == pytest.approx(centroid_shift(window, ref), abs=1e-6)
    proj_w = (window - model.mean) @ model.components.T
    proj_r = (ref - model.mean) @ model.components.T
    d = [stats.ks_2samp(proj_w[:, j], proj_r[:, j]).statistic for j in range(3)]
    p = [model.ks_nulls[j].p_value(d[j]) for j in range(3)]
    assert s["ks_min_p"] == pytest.approx(min(1.0, 3 * min(p)))
    assert 0 < s["p_value"] <= 1


def test_principal_components_are_the_top_eigenvectors():
    stream, _ = camera_stream(600, dim=16, seed=6)
    model = ReferenceModel(ref_of(stream), window=100, permutations=20, components=3)
    cov = np.cov(stream.T.astype(np.float64))
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, ::-1][:, :3]
    for j in range(3):
        assert abs(float(top[:, j] @ model.components[j])) == pytest.approx(1.0, abs=1e-3)


def test_null_is_contiguous_stretch_against_rest_of_reference():
    stream, _ = camera_stream(900, dim=16, seed=7)
    model = ReferenceModel(ref_of(stream), window=100, permutations=30, components=2)
    starts = np.round(np.linspace(0, 800, 30)).astype(int)
    for j in (0, 13, 29):
        s = starts[j]
        g0, g1 = max(0, s - model.guard), min(900, s + 100 + model.guard)
        rest = np.concatenate([stream[:g0], stream[g1:]])
        assert model.null_mmd[j] == pytest.approx(mmd2_unbiased(stream[s:s + 100], rest, model.bandwidth),
                                                  abs=1e-6)
        assert model.null_ks[j, 1] == pytest.approx(
            stats.ks_2samp(((stream[s:s + 100] - model.mean) @ model.components[1]),
                           ((rest - model.mean) @ model.components[1])).statistic, abs=1e-9)


# --------------------------------------------------------------------------- calibration


def test_frame_shuffling_permutation_test_fails_on_video():
    """Why the monitor does not shuffle frames: on a stream without drift, it rejects almost always."""
    stream, _ = camera_stream(2600, dim=32, seed=8)
    ref = stream[:1500]
    bw = median_bandwidth(ref)
    rejected = [mmd_permutation_pvalue(stream[1500 + i * 100:1600 + i * 100], ref[::3], bw, 50, seed=i)[1] <= 0.05
                for i in range(10)]
    assert sum(rejected) >= 8
    # on i.i.d. vectors it behaves
    rng = np.random.default_rng(9)
    iid = rng.standard_normal((700, 8)).astype(np.float32)
    p = [mmd_permutation_pvalue(iid[i * 50:(i + 1) * 50], iid[300:], median_bandwidth(iid[300:]), 50, seed=i)[1]
         for i in range(6)]
    assert min(p) > 0.01


def false_alarm_rate(streams: int, windows: int, m: int, nref: int, **kw) -> tuple[float, list[float]]:
    ps = []
    for seed in range(streams):
        stream, _ = camera_stream(nref + windows * m, seed=100 + seed, **kw)
        model = ReferenceModel(ref_of(stream[:nref]), window=m, permutations=200, components=4)
        ps += [model.compare(stream[nref + i * m:nref + (i + 1) * m])["p_value"] for i in range(windows)]
    ps = np.array(ps)
    return float((ps <= 0.05).mean()), ps


def test_false_alarm_rate_on_autocorrelated_streams_without_drift():
    # A reference of 30 windows (3000 frames, windows of 100): the null has enough independent
    # stretches for its 5% tail. 480 windows from 16 independent cameras and references.
    rate, ps = false_alarm_rate(streams=16, windows=30, m=100, nref=3000)
    assert 0.02 <= rate <= 0.08, rate
    # and the p-values are spread over (0, 1], not piled at 0 as a frame shuffle would have them
    assert 0.3 < float(np.median(ps)) < 0.7


def test_false_alarm_rate_on_iid_vectors():
    rate, _ = false_alarm_rate(streams=8, windows=30, m=100, nref=3000, dwell=1.0, rho=0.0)
    assert 0.02 <= rate <= 0.08, rate


def test_a_real_shift_is_detected_at_once():
    stream, centres = camera_stream(3000, dim=64, seed=11)
    model = ReferenceModel(ref_of(stream[:2000]), window=100, permutations=200, components=4)
    # a scene the reference never saw: a new mode
    new_scene, _ = camera_stream(100, dim=64, seed=12, modes=1)
    s = model.compare(new_scene)
    assert s["p_value"] < 0.01
    # night: every frame pulled towards one direction (a global appearance change)
    rng = np.random.default_rng(13)
    night_dir = rng.standard_normal(64)
    night_dir /= np.linalg.norm(night_dir)
    night = stream[2000:2100] + 0.6 * night_dir
    night /= np.linalg.norm(night, axis=1, keepdims=True)
    s2 = model.compare(night)
    assert s2["p_value"] < 0.01
    assert s2["centroid_shift"] > model.compare(stream[2100:2200])["centroid_shift"]
    # KS sees shifts along the reference's principal components (and only those)
    # (its power is limited where scene modes already spread the reference along those components)
    moved = stream[2000:2100] + 1.0 * model.components[0].astype(np.float32)
    assert model.compare(moved)["ks_min_p"] < 0.1 < model.compare(stream[2000:2100])["ks_min_p"]


def test_predictive_null_handles_negative_values_and_ties():
    null = PredictiveNull(np.array([-0.01, 0.0, 0.0, 0.02, 0.05]), effective=5.0)
    assert null.p_value(-1.0) == 1.0
    assert null.p_value(0.0) > 0.2
    assert null.p_value(10.0) < 0.01
    flat = PredictiveNull(np.zeros(10), effective=3.0)
    assert 0.0 <= flat.p_value(0.0) <= 1.0 and flat.p_value(1.0) < 0.05


# --------------------------------------------------------------------------- the monitor


def cfg(**kw) -> DriftConfig:
    base = dict(enabled=True, warmup=400, window=100, interval_s=10.0, permutations=50, components=3)
    base.update(kw)
    return DriftConfig(**base)


def test_monitor_warms_up_then_reports_every_interval():
    clock = FakeClock()
    stream, _ = camera_stream(1000, dim=16, seed=14)
    mon = DriftMonitor(cfg(), ["cam"], "test-model", 16, None, clock=clock)
    for i in range(450):
        mon.observe("cam", stream[i], kept=(i % 5 == 0))
    assert mon.poll() == []  # warm-up done, window (100 frames after it) not yet full
    for i in range(450, 500):
        mon.observe("cam", stream[i], kept=(i % 5 == 0))
    [r] = mon.poll()
    h = r.header()
    assert HEADER_KEYS <= set(h)
    assert h["v"] == 1 and h["source"] == "cam" and h["window"] == 100 and h["reference"] == "warmup:400"
    assert h["keep_rate"] == pytest.approx(0.2)
    assert h["ts"] == clock.time() and isinstance(h["drift"], bool)
    import json
    json.dumps(h)  # the header is plain JSON
    assert mon.poll() == []  # the interval has not elapsed
    clock.advance(9.9)
    assert mon.poll() == []
    clock.advance(0.2)
    assert len(mon.poll()) == 1


def test_monitor_with_reference_file_names_it_and_skips_warmup():
    clock = FakeClock()
    stream, _ = camera_stream(1200, dim=16, seed=15)
    ref = ref_of(stream[:1000], "day.npz")
    mon = DriftMonitor(cfg(), ["a", "b"], "test-model", 16, ref, clock=clock)
    for i in range(1000, 1100):
        mon.observe("a", stream[i], kept=True)
        mon.observe("nope", stream[i], kept=True)  # unknown sources are ignored
    reports = mon.poll()
    assert [r.source for r in reports] == ["a"]
    assert reports[0].reference == "day.npz (model test-model)"
    assert reports[0].keep_rate == 1.0


def test_monitor_rejects_reference_of_other_dimension():
    with pytest.raises(ReferenceError_, match="dimensions"):
        DriftMonitor(cfg(), ["a"], "m", 32, ref_of(np.ones((50, 16), np.float32)))


def test_monitor_window_is_the_last_frames():
    clock = FakeClock()
    stream, _ = camera_stream(1500, dim=16, seed=16)
    mon = DriftMonitor(cfg(window=50), ["a"], "test-model", 16, ref_of(stream[:1000]), clock=clock)
    for i in range(1000, 1237):
        mon.observe("a", stream[i], kept=False)
    [r] = mon.poll()
    direct = mon._shared.compare(stream[1187:1237])
    assert r.mmd2 == pytest.approx(direct["mmd2"], abs=1e-6)


def test_monitor_flags_a_scene_change():
    clock = FakeClock()
    stream, _ = camera_stream(2300, dim=32, seed=17)
    other, _ = camera_stream(200, dim=32, seed=18, modes=2)
    mon = DriftMonitor(cfg(warmup=2000, permutations=200), ["a"], "test-model", 32, None, clock=clock)
    for v in stream[:2100]:
        mon.observe("a", v, kept=False)
    first = mon.poll()[0]
    for v in other[:100]:
        mon.observe("a", v, kept=True)
    clock.advance(10)
    second = mon.poll()[0]
    assert second.drift and second.p_value < first.p_value
    assert second.compute_s >= 0 and second.header()["compute_ms"] >= 0


def test_observe_is_safe_while_polling():
    clock = FakeClock()
    stream, _ = camera_stream(3000, dim=16, seed=19)
    mon = DriftMonitor(cfg(interval_s=0.001), ["a"], "test-model", 16, ref_of(stream[:1000]), clock=clock)
    stop = threading.Event()
    errors = []

    def feed():
        i = 1000
        while not stop.is_set():
            try:
                mon.observe("a", stream[i % 3000], kept=bool(i % 2))
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)
            i += 1

    t = threading.Thread(target=feed)
    t.start()
    got = 0
    try:
        for _ in range(200):
            clock.advance(1)
            got += len(mon.poll())
            if got >= 5:
                break
    finally:
        stop.set()
        t.join()
    assert not errors and got >= 5


def test_reconfigure_resizes_window_and_rebuilds_the_null():
    clock = FakeClock()
    stream, _ = camera_stream(1400, dim=16, seed=20)
    mon = DriftMonitor(cfg(window=100), ["a"], "test-model", 16, None, clock=clock)
    for v in stream[:600]:
        mon.observe("a", v, kept=False)
    assert mon.poll()[0].window == 100
    mon.reconfigure(cfg(window=60, alpha=0.5, interval_s=1.0))
    clock.advance(1.0)
    [r] = mon.poll()
    assert r.window == 60
    assert r.drift == (r.p_value <= 0.5)
    assert r.reference == "warmup:400"  # rebuilt from the same warm-up frames
