"""Keep and drop rules by label: the rule logic, config validation, and the daemon with the real model."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from test_daemon import Running, make_config
from videos import make_video

from edgefilter.config import ModelConfig, RulesConfig, SourceConfig, parse_config
from edgefilter.errors import ConfigError
from edgefilter.labels import Vocabulary
from edgefilter.model import Embedder
from edgefilter.outlier import OutlierScorer
from edgefilter.rules import KeepRules

ROOT = Path(__file__).resolve().parent.parent
VOCAB = Vocabulary(["tabby", "siamese", "espresso", "sports car"], {"cat": [0, 1], "car": [3]})
CAT = np.array([0.5, 0.3, 0.1, 0.1], np.float32)
COFFEE = np.array([0.0, 0.05, 0.9, 0.05], np.float32)


def rules(**kw) -> KeepRules:
    return KeepRules(RulesConfig(**kw), VOCAB, "test-model")


def test_keep_label_keeps_a_not_novel_frame_at_most_once_per_interval_per_source():
    r = rules(keep_labels=["cat"], keep_labels_interval_s=10.0)
    got = [r.decide("a", ts, False, None, CAT) for ts in (0.0, 5.0, 10.0, 12.0)]
    assert [(v.keep, v.reason, v.rule) for v in got] == [
        (True, "label", "keep_labels:cat"), (False, None, None), (True, "label", "keep_labels:cat"),
        (False, None, None)]
    assert r.decide("b", 12.0, False, None, CAT).keep  # its own clock per source
    # A novelty keep with the label restarts the interval; the novelty reason stands.
    v = r.decide("a", 25.0, True, "novel", CAT)
    assert (v.keep, v.reason, v.rule) == (True, "novel", None)
    assert not r.decide("a", 30.0, False, None, CAT).keep
    assert not r.decide("a", 50.0, False, None, COFFEE).keep  # the label is not there


def test_drop_label_removes_a_novelty_keep_and_wins_over_keep_rules():
    r = rules(keep_labels=["espresso"], drop_labels=["espresso"])
    v = r.decide("a", 0.0, True, "novel", COFFEE)
    assert (v.keep, v.rule) == (False, "drop_labels:espresso")
    assert r.decide("a", 0.0, False, None, COFFEE).rule is None  # nothing to remove: not the rule's doing
    assert r.decide("a", 0.0, True, "first", CAT).keep


def test_label_min_score_and_no_rules_leave_decisions_alone():
    assert not rules(keep_labels=["tabby"], label_min_score=0.6).decide("a", 0.0, False, None, CAT).keep
    assert rules(keep_labels=["cat"], label_min_score=0.6).decide("a", 0.0, False, None, CAT).keep  # 0.5 + 0.3
    v = rules().decide("a", 0.0, True, "novel", CAT)
    assert (v.keep, v.reason, v.rule) == (True, "novel", None)


def test_rules_need_a_model_with_classes_and_names_it_knows():
    with pytest.raises(ConfigError, match=r"rules.keep_labels\[0\]: label rules need class probabilities"):
        KeepRules(RulesConfig(keep_labels=["cat"]), None, "plain@1")
    with pytest.raises(ConfigError, match=r"rules.drop_labels\[0\]: unknown label 'dgo'"):
        rules(drop_labels=["dgo"])


def test_config_rejects_an_unknown_label_with_its_line_and_nearest_names():
    text = "sources:\n  - {name: a, url: x.mp4}\nrules:\n  keep_labels:\n    - car\n    - vehicel\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, file="c.yaml")
    problem = err.value.problems[0]
    assert (problem.path, problem.line) == ("rules.keep_labels[1]", 6) and "nearest: 'vehicle'" in problem.message
    cfg = parse_config(text.replace("vehicel", "Sports Car"))
    assert cfg.rules.keep_labels == ["car", "Sports Car"] and cfg.rules.keep_labels_interval_s == 10.0


def test_outlier_percentile_against_leave_one_out_distances():
    rng = np.random.default_rng(0)
    center = rng.normal(size=16)
    ref = (center + 0.3 * rng.normal(size=(200, 16))).astype(np.float32)  # one scene
    scorer = OutlierScorer(ref)
    inside = scorer.score(ref[3] + 0.001 * rng.normal(size=16))
    # New frames from the same scene rank like the reference's own frames: their median near the middle.
    fresh = (center + 0.3 * rng.normal(size=(100, 16))).astype(np.float32)
    typical = np.median([scorer.score(v)["percentile"] for v in fresh])
    far = scorer.score(-center)
    assert inside["distance"] < 0.001 and inside["percentile"] == 0.0
    assert 25 < typical < 75 and far["percentile"] == 100.0 and far["distance"] > 1.0
    assert OutlierScorer(ref[:1]).score(ref[0]) == {"distance": 0.0, "percentile": 100.0}


# ------------------------------------------------------------------ the daemon, real model, real video


def photo_video(tmp_path, name: str, frames: int) -> Path:
    """A still view of a photo under sensor noise (identical frames would be dropped as a frozen feed)."""
    bgr = cv2.resize(getattr(skimage.data, name)()[:, :, ::-1], (320, 240)).astype(np.int16)
    rng = np.random.default_rng(1)
    noisy = [np.clip(bgr + rng.normal(0, 2, bgr.shape).round(), 0, 255).astype(np.uint8) for _ in range(frames)]
    return make_video(tmp_path / f"{name}.avi", noisy, fps=25)


def real_model(cfg, cache_dir=None) -> Embedder:
    return Embedder(ROOT / "models" / "efficientnet_lite0_regions.onnx", providers="cpu")


class RealModelRunning(Running):
    def _load(self, cfg, cache_dir=None):
        super()._load(cfg, cache_dir)  # waits for the subscription
        return real_model(cfg)


def run_to_end(cfg) -> tuple[RealModelRunning, dict[str, list]]:
    """Run the daemon with the real model until its files end; what it published, by source."""
    run = RealModelRunning(cfg, None)
    try:
        msgs = run.collect(timeout=60)
    finally:
        run.close()
    assert run.code == 0
    return run, {s.name: [m for m in msgs if m.source == s.name] for s in cfg.sources}


@pytest.mark.parametrize("rule", ["keep", "drop"])
def test_daemon_applies_label_rules_after_novelty_with_labels_in_the_header(tmp_path, port, rule):
    sources = [SourceConfig(name="cat", url=str(photo_video(tmp_path, "chelsea", 12))),
               SourceConfig(name="coffee", url=str(photo_video(tmp_path, "coffee", 12)))]
    rules_cfg = (RulesConfig(keep_labels=["cat"], keep_labels_interval_s=0.0) if rule == "keep"
                 else RulesConfig(drop_labels=["espresso"]))
    cfg = make_config(tmp_path, port, sources, rules=rules_cfg, model=ModelConfig(providers="cpu"))
    run, by_source = run_to_end(cfg)
    for m in by_source["cat"] + by_source["coffee"]:
        labels = m.header["labels"]
        assert len(labels) == 5 and labels[0]["name"] == ("Egyptian Mau" if m.source == "cat" else "espresso")
    if rule == "keep":
        # The still cat view is novel once; the rule keeps every other frame of it (interval 0).
        cats = by_source["cat"]
        assert [m.reason for m in cats] == ["first"] + ["label"] * 11
        assert all(m.header["rule"] == "keep_labels:cat" for m in cats[1:]) and "rule" not in cats[0].header
        assert [m.reason for m in by_source["coffee"]] == ["first"]
        assert run.value("edgefilter_rule_frames_total", source="cat", rule="keep_labels:cat", action="kept") == 11
    else:
        assert by_source["coffee"] == [] and [m.reason for m in by_source["cat"]] == ["first"]
        assert run.value("edgefilter_rule_frames_total", source="coffee", rule="drop_labels:espresso",
                         action="dropped") == 1


def test_kept_frames_carry_an_outlier_score_against_the_drift_reference(tmp_path, port):
    from edgefilter.config import DriftConfig
    from edgefilter.reference import build_reference

    cat_video = photo_video(tmp_path, "chelsea", 12)
    reference = tmp_path / "ref.npz"
    build_reference([str(cat_video)], real_model(None), reference, max_n=100, progress=False)
    sources = [SourceConfig(name="cat", url=str(cat_video)),
               SourceConfig(name="coffee", url=str(photo_video(tmp_path, "coffee", 12)))]
    cfg = make_config(tmp_path, port, sources, model=ModelConfig(providers="cpu"),
                      drift=DriftConfig(enabled=True, reference=str(reference)))
    _, by_source = run_to_end(cfg)
    outliers = {source: msgs[0].header["outlier"] for source, msgs in by_source.items()}
    assert outliers["cat"]["distance"] < 0.05  # a frame the reference holds (up to video noise)
    assert outliers["coffee"]["percentile"] == 100.0 and outliers["coffee"]["distance"] > 0.3
