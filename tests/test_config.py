from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefilter.config import Config, load_config, parse_config, reference_markdown, resolve_path
from edgefilter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="c.yaml")
    return [(p.path, p.line, p.message) for p in info.value.problems]


def test_minimal_config_gets_defaults():
    cfg = parse_config("sources:\n  - {name: cam, url: demo://}\n")
    assert isinstance(cfg, Config)
    assert cfg.sources[0].name == "cam"
    assert cfg.filter.threshold == pytest.approx(0.15)
    assert cfg.publish.bind == "tcp://127.0.0.1:5556"
    assert cfg.metrics.bind == "127.0.0.1:9108"
    assert cfg.filter.window.size == 10000


def test_unknown_key_names_path_line_and_allowed_keys():
    (path, line, msg), = problems("sources:\n  - name: a\n    url: demo://\n    realtme: true\n")
    assert path == "sources[0].realtme"
    assert line == 4
    assert "unknown key" in msg and "realtime" in msg


def test_duplicate_key_reports_both_lines():
    (path, line, msg), = problems("sources: [{name: a, url: demo://}]\nfilter:\n  threshold: 0.1\n  threshold: 0.2\n")
    assert path == "filter.threshold" and line == 4 and "line 3" in msg


def test_every_problem_is_reported_at_once():
    text = ("sources:\n  - name: a\n    url: demo://\n    max_fps: fast\n"
            "embed:\n  max_batch: 0\nfilter:\n  threshold: 3\n  scope: everywhere\npublish:\n  embeddings: 1\n")
    got = {(p, l) for p, l, _ in problems(text)}
    assert got == {("sources[0].max_fps", 4), ("embed.max_batch", 6), ("filter.threshold", 8),
                   ("filter.scope", 9), ("publish.embeddings", 11)}


@pytest.mark.parametrize("text, path, fragment", [
    ("sources: []\n", "sources", "at least one source"),
    ("sources: [{url: demo://}]\n", "sources[0].name", "is required"),
    ("sources: [{name: a}]\n", "sources[0].url", "is required"),
    ("sources: [{name: 'a b', url: demo://}]\n", "sources[0].name", "A-Z"),
    ("sources: [{name: a, url: demo://}, {name: a, url: x.mp4}]\n", "sources[1].name", "duplicate source name"),
    ("sources: [{name: a, url: demo://}]\nmetrics: {bind: 'nohost'}\n", "metrics.bind", "HOST:PORT"),
    ("sources: [{name: a, url: demo://}]\npublish: {bind: '127.0.0.1:5556'}\n", "publish.bind", "endpoint"),
    ("sources: [{name: a, url: demo://}]\nfilter: {threshold_min: 0.5, threshold_max: 0.2}\n",
     "filter.threshold_min", "threshold_max"),
    ("sources: [{name: a, url: demo://}]\nfilter: [1, 2]\n", "filter", "mapping"),
    ("sources: [{name: a, url: demo://}]\nembed: {max_batch: 2.5}\n", "embed.max_batch", "whole number"),
    ("sources: [{name: a, url: demo://}]\nfilter: {threshold: .nan}\n", "filter.threshold", "finite"),
    ("sources: [{name: a, url: demo://}]\nmodel: {providers: gpu}\n", "model.providers", "one of"),
])
def test_bad_values_name_the_key(text, path, fragment):
    found = problems(text)
    assert any(p == path and fragment in m for p, _, m in found), found


def test_invalid_yaml_names_the_line():
    (path, line, msg), = problems("sources:\n  - name: a\n   url: [\n")
    assert line is not None and "YAML" in msg


def test_empty_file_is_an_error():
    assert "empty" in problems("")[0][2]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_tags_are_never_constructed():
    # A python object tag must be refused, not executed.
    found = problems("sources: [{name: a, url: !!python/object/apply:os.system ['true']}]\n")
    assert found and found[0][0] == "sources[0].url"


def test_repository_config_is_valid_and_runs_the_demo():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.sources[0].url.startswith("demo://")
    assert resolve_path(cfg, cfg.model.path).exists()


def test_readme_reference_is_generated_from_the_schema():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, "README's configuration reference is stale: " \
        "regenerate it with `python -m edgefilter.config` between the config-reference markers"


def test_check_config_command_prints_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: a\n    url: demo://\n    bogus: 1\nfilter: {threshold: -1}\n")
    r = subprocess.run([sys.executable, "-m", "edgefilter", "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 78
    assert f"{bad}:4: sources[0].bogus: unknown key" in r.stderr
    assert f"{bad}:5: filter.threshold" in r.stderr
    assert "Traceback" not in r.stderr
    ok = subprocess.run([sys.executable, "-m", "edgefilter", "check-config", str(ROOT / "config.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_run_exits_78_on_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: a\n    url: demo://\nembed: {max_batch: many}\n")
    r = subprocess.run([sys.executable, "-m", "edgefilter", "run", "-c", str(bad)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 78
    assert "embed.max_batch" in r.stderr and ":4:" in r.stderr
    assert "Traceback" not in r.stderr


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                         st.text(max_size=20))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["sources", "name", "url", "filter", "threshold", "window", "size", "publish", "bind", "x", "model",
         "embed", "max_batch", "metrics", "gates", "drift"]), inner, max_size=5)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_arbitrary_structures_raise_only_config_error(value):
    text = yaml.safe_dump(value)
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_error(text):
    try:
        parse_config(text)
    except ConfigError:
        pass
