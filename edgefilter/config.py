"""Strict, per-section configuration.

The YAML file is parsed into a node tree (so every value keeps its line), then
checked against the dataclasses below: unknown keys, duplicate keys, wrong types
and out-of-range values are all collected and raised together as one
:class:`~edgefilter.errors.ConfigError` whose problems carry the key path and line.

Each field's ``metadata`` holds its documentation and bounds; the README's
configuration reference is generated from it (``python -m edgefilter.config``).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError, ConfigProblem

# The regions graph: the same network and embedding as efficientnet_lite0.onnx, plus the 7x7 grid of
# region cells that filter.regional (on by default) compares.
DEFAULT_MODEL = "models/efficientnet_lite0_regions.onnx"


def opt(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
        min_exclusive: bool = False, factory: Any = None) -> Any:
    """A config field with its documentation and numeric bounds."""
    meta = {"doc": doc, "min": min, "max": max, "min_exclusive": min_exclusive}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class BackoffConfig:
    initial_s: float = opt(0.5, "first wait before reconnecting a lost source", min=0.0)
    max_s: float = opt(30.0, "cap of the exponential backoff between reconnect attempts", min=0.0)
    jitter: float = opt(0.2, "random extra wait, as a fraction of the backoff (0 to 1)", min=0.0, max=1.0)


@dataclass(frozen=True)
class SourceConfig:
    name: str = opt("", "unique name; used in topics, metrics labels and file names ([A-Za-z0-9_.-], max 64)")
    url: str = opt("", "what to read: a video file path, `/dev/videoN` or a camera index, "
                       "`rtsp://`/`http(s)://`/`tcp://` stream, an image directory, or `demo://`")
    realtime: bool = opt(False, "pace a file at its native frame rate instead of as fast as the pipeline takes it")
    max_fps: float | None = opt(None, "sample at most this many frames per second (null: every frame)",
                                min=0.0, min_exclusive=True)
    loop: bool = opt(False, "restart a file or image directory at its end (a finite source never ends)")
    stall_s: float = opt(10.0, "a live source with no frame for this long is treated as lost and reconnected",
                         min=0.0, min_exclusive=True)
    open_timeout_s: float = opt(10.0, "open timeout for streams; an ffmpeg decoder gets this plus `stall_s` to "
                                      "deliver its first frame", min=0.0, min_exclusive=True)
    read_timeout_s: float = opt(5.0, "OpenCV read timeout for streams (`decoder: opencv`)", min=0.0,
                                min_exclusive=True)
    backoff: BackoffConfig = opt(None, "reconnect backoff", factory=BackoffConfig)
    decoder: Literal["ffmpeg", "opencv"] = opt(
        "ffmpeg", "video files and streams: `ffmpeg` decodes in a child process per source (a decoder crash "
                  "costs this source only); `opencv` decodes inside the daemon (not isolated)")
    hwaccel: Literal["none", "cuda", "vaapi", "qsv"] = opt(
        "none", "ffmpeg hardware decoding; when it cannot start, the source decodes in software (one log line)")
    max_pixels: int = opt(16_777_216, "largest frame (width x height) a video or image may have; larger ones "
                                      "are refused before they are allocated", min=1)
    memory_limit_mb: int = opt(2048, "address-space limit of the source's ffmpeg process (0: none; not applied "
                                     "with hwaccel, whose drivers reserve large ranges)", min=0)
    file_retries: int = opt(2, "restarts (from the next frame) of a file whose decoder crashed, hung or sent "
                               "bad frames, before the source is reported failed", min=0)
    filter: SourceFilterConfig = opt(None, "this source's own filter settings, over the `filter` section",
                                     factory=lambda: SourceFilterConfig())


@dataclass(frozen=True)
class ModelConfig:
    path: str = opt(DEFAULT_MODEL, "ONNX model file (relative paths are relative to the config file, "
                                   "then to the package)")
    card: str | None = opt(None, "model card (JSON or YAML); null: the model path with `.json`")
    providers: Literal["auto", "cpu", "cuda", "tensorrt"] = opt(
        "auto", "`auto` uses CUDA when it really loads and the CPU otherwise; `cpu`, `cuda`, `tensorrt` force one")
    fp16: bool = opt(False, "on CUDA, use the card's fp16 variant when it has one")
    threads: int = opt(0, "CPU intra-op threads (0: onnxruntime's default on the CPU, one thread on a GPU)", min=0)


@dataclass(frozen=True)
class EmbedConfig:
    max_batch: int = opt(8, "largest micro-batch gathered across sources", min=1, max=4096)
    max_wait_ms: float = opt(10.0, "longest wait for a micro-batch to fill once it has a frame", min=0.0)
    queue_size: int = opt(64, "frames waiting for the model before live sources drop (files wait instead)", min=1)


@dataclass(frozen=True)
class WindowConfig:
    size: int = opt(10000, "most kept frames held in a source's rolling index", min=1)
    seconds: float = opt(3600.0, "kept frames older than this leave the index, so a scene can be kept again",
                         min=0.0, min_exclusive=True)


@dataclass(frozen=True)
class FilterConfig:
    threshold: float = opt(0.15, "keep a frame when the cosine distance to its nearest kept neighbour "
                                 "is greater than this", min=0.0, max=2.0)
    window: WindowConfig = opt(None, "rolling index bounds", factory=WindowConfig)
    scope: Literal["source", "global"] = opt("source", "`source`: one index per source; `global`: one index shared "
                                                       "by all sources (overlapping views)")
    max_interval_s: float | None = opt(None, "heartbeat: keep one frame after this long without a keep (null: off)",
                                       min=0.0, min_exclusive=True)
    budget_per_minute: float | None = opt(None, "adapt the threshold so the long-run keep rate meets this many "
                                                "frames per minute per source (null: fixed threshold)",
                                          min=0.0, min_exclusive=True)
    threshold_min: float = opt(0.05, "lowest threshold the budget may set", min=0.0, max=2.0)
    threshold_max: float = opt(0.6, "highest threshold the budget may set", min=0.0, max=2.0)
    mode: Literal["frame", "event"] = opt(
        "event", "`frame`: keep a novel frame at once; `event`: hold a novel frame as a candidate until the scene "
                 "is still again, then keep the settled frame if the scene settled into a new state, else the "
                 "event's best view (the changed thing whole and largest), at most `max_hold_s` later")
    settle_frames: int = opt(5, "event mode: consecutive still (or faded) frames that end an event", min=1)
    settle_ratio: float = opt(0.5, "event mode: a settled new state is kept when farther than this times the "
                                   "threshold from every kept frame; otherwise the event's best view is kept, "
                                   "chosen among its frames farther than this times the threshold",
                              min=0.0, max=1.0)
    max_hold_s: float = opt(5.0, "event mode: longest time a candidate is held before a decision",
                            min=0.0, min_exclusive=True)
    noise_floor_k: float = opt(2.0, "event mode: a frame is still when it moved less than this times the "
                                    "stream's running median frame-to-frame distance", min=0.0, min_exclusive=True)
    regional: bool = opt(True, "also compare the model's grid of region cells where pixels changed (a model whose "
                               "card has a region output, like the default models/efficientnet_lite0_regions.onnx; "
                               "with another model the whole image alone decides, logged once): a small new thing "
                               "in a still view is novel when, against each of the kept frames most like it, a "
                               "cell whose pixels changed changed far more than its own noise")
    region_threshold: float = opt(9.0, "regional: a region changed when its cosine distance exceeds the frame's "
                                       "typical cell change by this many times the source's learnt noise for that "
                                       "cell", min=0.0, min_exclusive=True, max=1000.0)


# Filter keys a source may set for itself (``sources[].filter``); scope and window belong to the indexes.
PER_SOURCE_FILTER_KEYS = ("threshold", "mode", "regional", "region_threshold", "budget_per_minute",
                          "threshold_min", "threshold_max", "max_interval_s", "max_hold_s", "settle_frames",
                          "settle_ratio", "noise_floor_k")


def _source_filter_class() -> type:
    """FilterConfig's per-source keys, each optional (null: the `filter` section's value)."""
    hints = typing.get_type_hints(FilterConfig)
    made = []
    for f in dataclasses.fields(FilterConfig):
        if f.name in PER_SOURCE_FILTER_KEYS:
            meta = dict(f.metadata, doc=f"this source's `filter.{f.name}` (null: the `filter` section's)")
            made.append((f.name, typing.Optional[hints[f.name]], field(default=None, metadata=meta)))
    return dataclasses.make_dataclass("SourceFilterConfig", made, frozen=True)


SourceFilterConfig = _source_filter_class()


@dataclass(frozen=True)
class GatesConfig:
    enabled: bool = opt(True, "drop unusable frames before the model, counted per reason")
    dark: float = opt(12.0, "drop frames whose mean grey level is below this (0-255)", min=0.0, max=255.0)
    bright: float = opt(245.0, "drop frames whose mean grey level is above this (0-255)", min=0.0, max=255.0)
    blur: float = opt(0.0, "drop frames whose Laplacian variance is below this (0: off)", min=0.0)
    frozen: bool = opt(True, "drop a frame identical to the source's previous frame")
    skip_unchanged: float = opt(20.0, "pre-gate: skip the model for a frame in which no blob of pixels changed "
                                      "beyond exposure, shake and noise since the last frame embedded for a change "
                                      "(an embed that max_skip forces leaves it), and whose brightness-normalised "
                                      "thumbnail differs from it by less than this (mean absolute difference, "
                                      "0-255; 0: pre-gate off)", min=0.0, max=255.0)
    max_skip: int = opt(30, "embed at least every this many frames even when the pre-gate would skip", min=1)


@dataclass(frozen=True)
class DriftConfig:
    enabled: bool = opt(False, "publish drift statistics per source")
    reference: str | None = opt(None, "reference file from `edgefilter reference build` (null: warm up from "
                                      "each source's first frames)")
    warmup: int = opt(3000, "frames per source that form the warm-up reference (calibration needs about 30 windows of it)", min=10)
    window: int = opt(100, "last processed frames compared with the reference", min=10)
    interval_s: float = opt(10.0, "seconds between drift updates per source", min=0.0, min_exclusive=True)
    alpha: float = opt(0.05, "false-alarm rate of the `drift` flag", min=0.0, max=1.0, min_exclusive=True)
    permutations: int = opt(200, "permutations for the MMD p-value", min=10)
    components: int = opt(8, "top principal components of the reference tested with KS", min=1)
    max_reference: int = opt(3000, "references larger than this are subsampled deterministically", min=10)


@dataclass(frozen=True)
class CurveConfig:
    secret_key_file: str | None = opt(None, "server secret key (zmq.auth certificate file)")
    authorized_keys_dir: str | None = opt(None, "directory of allowed client public key certificates")


@dataclass(frozen=True)
class PublishConfig:
    bind: str = opt("tcp://127.0.0.1:5556", "ZeroMQ endpoint of the frame and drift stream")
    embeddings: bool = opt(False, "send the embedding as a fourth message part (little-endian float32)")
    jpeg_quality: int = opt(90, "JPEG quality of published frames", min=1, max=100)
    hwm: int = opt(1000, "messages queued per subscriber before they are dropped and counted", min=1)
    curve: CurveConfig = opt(None, "CURVE encryption and authentication", factory=CurveConfig)
    allow_plaintext: bool = opt(False, "allow a non-loopback bind without CURVE (logged as a warning)")


@dataclass(frozen=True)
class MetricsConfig:
    bind: str | None = opt("127.0.0.1:9108", "HOST:PORT of the Prometheus endpoint (null: off)")


@dataclass(frozen=True)
class StateConfig:
    dir: str | None = opt(None, "where rolling indexes are saved across restarts (null: `$STATE_DIRECTORY`, "
                                "else no persistence)")
    save_interval_s: float = opt(300.0, "also save periodically, not only at shutdown", min=0.0,
                                 min_exclusive=True)


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = opt("info", "log level")
    format: Literal["text", "json"] = opt("text", "`text`: one readable line per event; `json`: one JSON object "
                                                  "per line (ts, level, logger, message, exc)")
    status_interval_s: float | None = opt(60.0, "log a status line (frames in, kept, dropped, per source) this "
                                                "often at info (null: never)", min=0.0, min_exclusive=True)


@dataclass(frozen=True)
class PromptConfig:
    text: str = opt("", "what to keep, in words (e.g. `a forklift carrying a pallet`)")
    threshold: float = opt(0.25, "cosine similarity of the frame's and the text's CLIP embeddings that counts as "
                                 "a match; depends on the weights: set it on real frames", min=-1.0, max=1.0)


@dataclass(frozen=True)
class RulesConfig:
    keep_labels: list[str] = opt(None, "keep a frame whose label (an ImageNet class name or a group word such as "
                                       "`car`, `dog`, `vehicle`; see edgefilter/labels.json) scores at least "
                                       "`label_min_score`, even when it is not novel", factory=list)
    keep_labels_interval_s: float = opt(10.0, "per source and label, keep at most one frame this often for "
                                              "`keep_labels` (any kept frame with the label counts)", min=0.0)
    drop_labels: list[str] = opt(None, "never keep a frame whose label scores at least `label_min_score`",
                                 factory=list)
    label_min_score: float = opt(0.3, "probability a label (a group: the sum over its classes) must reach to "
                                      "match a rule", min=0.0, min_exclusive=True, max=1.0)
    keep_prompts: list[PromptConfig] = opt(None, "keep a frame that matches a text prompt (needs `clip_card`), even "
                                                 "when it is not novel", factory=list)
    keep_prompts_interval_s: float = opt(10.0, "per source and prompt, keep at most one frame this often for "
                                               "`keep_prompts`", min=0.0)
    clip_card: str | None = opt(None, "card of a CLIP pair (image and text encoders; models/export_clip.py writes "
                                      "one) for `keep_prompts` and `edgefilter search --text`")


@dataclass(frozen=True)
class Config:
    sources: list[SourceConfig] = opt(None, "the frame sources (at least one)", factory=list)
    model: ModelConfig = opt(None, "the embedding model", factory=ModelConfig)
    embed: EmbedConfig = opt(None, "micro-batching", factory=EmbedConfig)
    filter: FilterConfig = opt(None, "the novelty filter", factory=FilterConfig)
    gates: GatesConfig = opt(None, "quality gates before the model", factory=GatesConfig)
    drift: DriftConfig = opt(None, "drift statistics", factory=DriftConfig)
    publish: PublishConfig = opt(None, "ZeroMQ publishing", factory=PublishConfig)
    metrics: MetricsConfig = opt(None, "Prometheus endpoint", factory=MetricsConfig)
    state: StateConfig = opt(None, "persistence across restarts", factory=StateConfig)
    log: LogConfig = opt(None, "logging", factory=LogConfig)
    rules: RulesConfig = opt(None, "keep and drop rules by label, applied after the novelty filter",
                             factory=RulesConfig)
    shutdown_timeout_s: float = opt(10.0, "deadline to drain queues on shutdown", min=0.0)
    # Where the file was read from; relative paths resolve against it. Not a YAML key.
    base_dir: str = field(default=".", metadata={"internal": True})

    def filter_for(self, source: str) -> FilterConfig:
        """The filter settings of one source: its ``sources[].filter`` keys over the ``filter`` section."""
        for src in self.sources:
            if src.name == source:
                given = {k: v for k, v in dataclasses.asdict(src.filter).items() if v is not None}
                return dataclasses.replace(self.filter, **given) if given else self.filter
        raise KeyError(source)

    def source_filters(self) -> dict[str, FilterConfig]:
        """The sources whose filter settings differ from the ``filter`` section, with theirs."""
        return {s.name: self.filter_for(s.name) for s in self.sources
                if any(v is not None for v in dataclasses.asdict(s.filter).values())}


# --------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that never constructs arbitrary objects; we only compose nodes."""


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class _Checker:
    def __init__(self, file: str | None):
        self.file = file
        self.problems: list[ConfigProblem] = []

    def problem(self, path: str, node: yaml.Node | None, message: str) -> None:
        self.problems.append(ConfigProblem(path=path, message=message, line=_line(node), file=self.file))

    # -- generic value checking against a type annotation
    def value(self, tp: Any, node: yaml.Node, path: str, meta: dict) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if _is_null(node):
                return None
            return self.value(non_none[0], node, path, meta)
        if origin is Literal:
            raw = self.scalar(node, path)
            if raw is _BAD:
                return _BAD
            if raw not in args:
                allowed = ", ".join(repr(a) for a in args)
                self.problem(path, node, f"must be one of {allowed}, got {raw!r}")
                return _BAD
            return raw
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                self.problem(path, node, f"must be a list, got {_kind(node)}")
                return _BAD
            return [self.value(args[0], item, f"{path}[{i}]", meta) for i, item in enumerate(node.value)]
        if dataclasses.is_dataclass(tp):
            return self.section(tp, node, path)
        raw = self.scalar(node, path)
        if raw is _BAD:
            return _BAD
        if tp is bool:
            if not isinstance(raw, bool):
                self.problem(path, node, f"must be true or false, got {raw!r}")
                return _BAD
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.problem(path, node, f"must be a whole number, got {raw!r}")
                return _BAD
            return self.bounds(raw, node, path, meta)
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.problem(path, node, f"must be a number, got {raw!r}")
                return _BAD
            if raw != raw or raw in (float("inf"), float("-inf")):
                self.problem(path, node, f"must be a finite number, got {raw!r}")
                return _BAD
            return self.bounds(float(raw), node, path, meta)
        if tp is str:
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                self.problem(path, node, f"must be a string, got {raw!r}")
                return _BAD
            return self.substitute(str(raw), node, path)
        raise TypeError(f"unsupported config type {tp!r}")  # programming error, not user error

    def substitute(self, text: str, node: yaml.Node, path: str) -> Any:
        """``${NAME}``: the environment variable; ``${credential:NAME}``: the file NAME in systemd's
        $CREDENTIALS_DIRECTORY (LoadCredential=); ``$${`` is a literal ``${``. So secrets stay out of the file."""
        errors: list[str] = []

        def one(m: re.Match) -> str:
            if m.group(0) == "$${":
                return "${"
            name = m.group(1)
            if name.startswith("credential:"):
                return _credential(name.partition(":")[2], errors)
            if not _VAR_NAME.match(name):
                errors.append(f"${{{name}}}: not an environment variable name (write $${{ for a literal ${{)")
                return ""
            if name not in os.environ:
                errors.append(f"environment variable {name} is not set (used as ${{{name}}})")
                return ""
            return os.environ[name]

        out = _SUBSTITUTION.sub(one, text)
        for e in errors:
            self.problem(path, node, e)
        return _BAD if errors else out

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(path, node, f"must be a single value, got {_kind(node)}")
            return _BAD
        try:
            return _StrictLoader.construct_scalar_value(node)
        except yaml.YAMLError as exc:  # e.g. a bad timestamp
            self.problem(path, node, f"cannot read value: {exc}")
            return _BAD

    def bounds(self, value: float, node: yaml.Node, path: str, meta: dict) -> Any:
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            rel = "greater than" if meta.get("min_exclusive") else "at least"
            rng = f"{rel} {lo}" + (f" and at most {hi}" if hi is not None else "")
            self.problem(path, node, f"must be {rng}, got {value}")
            return _BAD
        if hi is not None and value > hi:
            self.problem(path, node, f"must be at most {hi}" + (f" and at least {lo}" if lo is not None else "")
                         + f", got {value}")
            return _BAD
        return value

    def section(self, cls: type, node: yaml.Node, path: str) -> Any:
        if _is_null(node):
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            self.problem(path, node, f"must be a mapping of keys, got {_kind(node)}")
            return _BAD
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        hints = typing.get_type_hints(cls)
        seen: dict[str, yaml.Node] = {}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                self.problem(path, key_node, "keys must be plain names")
                continue
            if key in seen:
                self.problem(sub, key_node, f"duplicate key (first given on line {_line(seen[key])})")
                continue
            seen[key] = key_node
            if key not in fields:
                allowed = ", ".join(sorted(fields))
                self.problem(sub, key_node, f"unknown key; allowed here: {allowed}")
                continue
            values[key] = self.value(hints[key], value_node, sub, dict(fields[key].metadata))
        if any(v is _BAD for v in values.values()) or any(
                isinstance(v, list) and any(x is _BAD for x in v) for v in values.values()):
            return _BAD
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - dataclass misuse
            self.problem(path, node, str(exc))
            return _BAD


_SUBSTITUTION = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _credential(name: str, errors: list[str]) -> str:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        errors.append(f"${{credential:{name}}} needs $CREDENTIALS_DIRECTORY, which is not set "
                      "(systemd sets it for LoadCredential=)")
        return ""
    if not name or "/" in name or name.startswith("."):
        errors.append(f"${{credential:{name}}}: not a credential name")
        return ""
    try:
        # systemd writes credentials as given; a trailing newline from `echo secret > file` is not part of it.
        return (Path(directory) / name).read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"${{credential:{name}}}: cannot read {Path(directory) / name}: {exc}")
        return ""


class _Bad:
    def __repr__(self) -> str:
        return "<invalid>"


_BAD = _Bad()


def _construct_scalar_value(node: yaml.ScalarNode) -> Any:
    loader = _StrictLoader("")
    return loader.construct_object(node, deep=True)


_StrictLoader.construct_scalar_value = staticmethod(_construct_scalar_value)  # type: ignore[attr-defined]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _cross_checks(cfg: Config, root: yaml.Node | None, chk: _Checker) -> None:
    """Rules that span fields; reported at the line of the offending entry."""
    seqnode = _child(root, "sources")
    if not cfg.sources:
        chk.problem("sources", seqnode or root, "at least one source is required")
    names: dict[str, int] = {}
    for i, src in enumerate(cfg.sources):
        item = seqnode.value[i] if isinstance(seqnode, yaml.SequenceNode) and i < len(seqnode.value) else None
        if not src.name:
            chk.problem(f"sources[{i}].name", item, "is required")
        elif len(src.name) > 64 or not set(src.name) <= _NAME_CHARS or src.name.startswith("."):
            # Names become topics, label values and directory names: no spaces, no '..', no hidden files.
            chk.problem(f"sources[{i}].name", _child(item, "name"),
                        f"must be 1-64 characters of A-Z a-z 0-9 _ . - not starting with '.', got {src.name!r}")
        elif src.name in names:
            chk.problem(f"sources[{i}].name", _child(item, "name"),
                        f"duplicate source name {src.name!r} (also sources[{names[src.name]}])")
        else:
            names[src.name] = i
        if not src.url:
            chk.problem(f"sources[{i}].url", item, "is required")
        if src.backoff.max_s < src.backoff.initial_s:
            chk.problem(f"sources[{i}].backoff.max_s", _child(_child(item, "backoff"), "max_s") or item,
                        "must be at least backoff.initial_s")
    f = cfg.filter
    fnode = _child(root, "filter")
    if f.threshold_min > f.threshold_max:
        chk.problem("filter.threshold_min", _child(fnode, "threshold_min") or fnode,
                    "must not exceed filter.threshold_max")
    for i, src in enumerate(cfg.sources):
        mine = cfg.filter_for(src.name) if src.name else f
        if mine is not f and mine.threshold_min > mine.threshold_max:
            item = seqnode.value[i] if isinstance(seqnode, yaml.SequenceNode) and i < len(seqnode.value) else None
            chk.problem(f"sources[{i}].filter.threshold_min", _child(item, "filter") or item,
                        "must not exceed threshold_max (this source's or the filter section's)")
    g = cfg.gates
    if g.dark >= g.bright:
        chk.problem("gates.dark", _child(_child(root, "gates"), "dark") or root, "must be below gates.bright")
    check_host_port(chk, "metrics.bind", cfg.metrics.bind, _child(_child(root, "metrics"), "bind") or root)
    _label_checks(cfg, root, chk)
    pub = cfg.publish.bind
    if "://" not in pub:
        chk.problem("publish.bind", _child(_child(root, "publish"), "bind") or root,
                    f"must be a ZeroMQ endpoint such as tcp://127.0.0.1:5556, got {pub!r}")


def check_host_port(chk: _Checker, path: str, bind: str | None, node: yaml.Node | None) -> None:
    """A metrics endpoint's HOST:PORT (None: off)."""
    if bind is not None:
        host, sep, port = bind.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            chk.problem(path, node, f"must be HOST:PORT with a port from 1 to 65535, got {bind!r}")


def _label_checks(cfg: Config, root: yaml.Node | None, chk: _Checker) -> None:
    """Every label a rule names must exist: a typo would otherwise silently never match."""
    from .labels import imagenet

    vocabulary = imagenet()
    for key in ("keep_labels", "drop_labels"):
        seq = _child(_child(root, "rules"), key)
        for i, name in enumerate(getattr(cfg.rules, key)):
            message = vocabulary.problem(name)
            if message is not None:
                item = seq.value[i] if isinstance(seq, yaml.SequenceNode) and i < len(seq.value) else seq
                chk.problem(f"rules.{key}[{i}]", item or root, message)
    prompts = _child(_child(root, "rules"), "keep_prompts")
    for i, prompt in enumerate(cfg.rules.keep_prompts):
        item = prompts.value[i] if isinstance(prompts, yaml.SequenceNode) and i < len(prompts.value) else prompts
        if not prompt.text.strip():
            chk.problem(f"rules.keep_prompts[{i}].text", _child(item, "text") or item or root, "is required")
    if cfg.rules.keep_prompts and not cfg.rules.clip_card:
        chk.problem("rules.clip_card", _child(root, "rules") or root,
                    "is required by rules.keep_prompts (a CLIP pair's card; see models/export_clip.py)")


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def compose_yaml(text: str, file: str | None, required: str) -> yaml.Node:
    """The YAML node tree of a config text (values keep their lines); ConfigError when it is not YAML or
    empty (``required`` names what an empty file lacks). Shared with the bridge's config."""
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(ConfigProblem(path="", message=f"not valid YAML: {exc.problem or exc}",
                                        line=line, file=file)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(ConfigProblem(path="", message=f"not valid YAML: {exc}", file=file)) from None
    if root is None:
        raise ConfigError(ConfigProblem(path="", message=f"the file is empty; at least {required} is required",
                                        file=file))
    return root


def parse_checked(cls: type, cross_checks: Any, text: str, file: str | None, base_dir: str | None,
                  required: str) -> Any:
    """Parse config text into the dataclass ``cls``, then run ``cross_checks(cfg, root, checker)``; raise
    :class:`ConfigError` listing every problem. Shared by the daemon's and the bridge's config."""
    chk = _Checker(file)
    root = compose_yaml(text, file, required)
    cfg = chk.section(cls, root, "")
    if cfg is _BAD:
        raise ConfigError(chk.problems)
    if base_dir is not None:
        cfg = dataclasses.replace(cfg, base_dir=base_dir)
    cross_checks(cfg, root, chk)
    if chk.problems:
        raise ConfigError(chk.problems)
    return cfg


def parse_config(text: str, file: str | None = None, base_dir: str | None = None) -> Config:
    """Parse and check config text; raise :class:`ConfigError` listing every problem."""
    return parse_checked(Config, _cross_checks, text, file, base_dir, "`sources`")


def read_config_text(path: str | os.PathLike) -> str:
    """A config file's text; ConfigError naming the file when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(ConfigProblem(path="", message="file not found", file=str(p))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(ConfigProblem(path="", message=f"cannot read: {exc}", file=str(p))) from None


def load_config(path: str | os.PathLike) -> Config:
    """Read and check a config file."""
    p = Path(path)
    return parse_config(read_config_text(p), file=str(p), base_dir=str(p.resolve().parent))


def resolve_path(cfg: Config, value: str) -> Path:
    """Resolve a path from the config: absolute, else against the config's folder, else the source checkout,
    else (for ``models/...``) the installed package data ``edgefilter.models``."""
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return p
    candidate = Path(cfg.base_dir) / p
    if candidate.exists():
        return candidate
    checkout = Path(__file__).resolve().parent.parent / p  # a source checkout keeps models/ beside the package
    if checkout.exists():
        return checkout
    return packaged_model_file(p) or candidate


def packaged_model_file(p: Path) -> Path | None:
    """``models/NAME`` from the installed package data, or None when it is not there."""
    if len(p.parts) < 2 or p.parts[0] != "models":
        return None
    try:
        found = importlib.resources.files("edgefilter.models").joinpath(*p.parts[1:])
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH: models/ is not a subpackage there
        return None
    # Installed into a directory (pip never installs zipped): onnxruntime needs a real file path.
    return Path(str(found)) if found.is_file() else None


def default_config(**sections: Any) -> Config:
    """A Config built in code (tests, benchmarks), with the same cross-checks as a file."""
    cfg = Config(**sections)
    chk = _Checker(None)
    _cross_checks(cfg, None, chk)
    if chk.problems:
        raise ConfigError(chk.problems)
    return cfg


# --------------------------------------------------------------------------- reference docs


def reference_markdown(root: type | None = None) -> str:
    """The configuration reference as a Markdown table (kept in the README; the bridge's in docs/fleet.md)."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            tp = hints[f.name]
            inner = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".")
                continue
            if inner is not None and dataclasses.is_dataclass(inner):
                walk(inner, key + "[].")
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            rows.append(f"| `{key}` | {_type_name(tp, f.metadata)} | `{_yaml_repr(default)}` | {f.metadata['doc']} |")

    walk(root or Config, "")
    return "\n".join(rows)


def _yaml_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(tp: Any, meta: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _type_name(inner, meta) + " or null"
    name = {bool: "bool", int: "int", float: "float", str: "string"}.get(tp, str(tp))
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None or hi is not None:
        lo_s = "" if lo is None else (f">{lo}" if meta.get("min_exclusive") else f"≥{lo}")
        hi_s = "" if hi is None else f"≤{hi}"
        name += " " + ", ".join(s for s in (lo_s, hi_s) if s)
    return name


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(reference_markdown() + "\n")
