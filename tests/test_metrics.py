from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from edgefilter.metrics import DROP_REASONS, KEEP_REASONS, Metrics, reference_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_registries_are_independent():
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.frames_kept.labels(source="cam").inc()
    assert a.value("edgefilter_frames_kept_total", source="cam") == 1
    assert b.value("edgefilter_frames_kept_total", source="cam") == 0


def test_init_source_creates_every_series_at_zero():
    m = Metrics()
    m.init_source("cam")
    text = generate_latest(m.registry).decode()
    for reason in DROP_REASONS:
        assert f'edgefilter_frames_dropped_total{{reason="{reason}",source="cam"}} 0.0' in text
    for reason in KEEP_REASONS:
        assert f'edgefilter_frames_kept_by_reason_total{{reason="{reason}",source="cam"}} 0.0' in text
    assert 'edgefilter_source_up{source="cam"} 0.0' in text


def test_drop_reasons_are_a_closed_set():
    m = Metrics()
    m.drop("cam", "dark", 2)
    assert m.value("edgefilter_frames_dropped_total", source="cam", reason="dark") == 2
    with pytest.raises(ValueError):
        m.drop("cam", "user supplied text")


def test_readme_lists_every_metric():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, "README's metrics list is stale: regenerate with `python -m edgefilter.metrics` between the metrics-reference markers"
