"""The embedding model: a model card, and an ONNX Runtime session that turns frames into vectors.

Any ONNX image model can be used if a card describes it: the card (JSON or YAML)
names the file and its sha256, the input (name, size, layout NHWC, dtype uint8,
colour order) and the output (name, dimension, whether it is L2-normalised), and
optionally a region output. Everything is checked at load time, so a wrong file,
a tampered file or a card that does not match the graph fails at start-up with a
ModelError that names the file and the field, never later on the first frame.

Provider choice: ``auto`` uses CUDA only when it will really load. onnxruntime-gpu
on a machine without CUDA libraries prints an error to stderr when CUDA is merely
requested, so the libraries and a device are probed first (see probe_providers).
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from .errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import onnxruntime as ort

    from .config import Config

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")


# --------------------------------------------------------------------------- card


@dataclass(frozen=True)
class Variant:
    """Another file of the same model (fp16 for CUDA, int8 for the CPU), checksummed like the main one."""

    file: str
    sha256: str


@dataclass(frozen=True)
class ModelCard:
    path: Path  # the card file; ``file`` and variant files are relative to its folder
    id: str
    file: str
    sha256: str
    input_name: str
    input_size: tuple[int, int]  # (width, height)
    layout: str
    dtype: str
    colour: str
    output_name: str
    dim: int
    normalised: bool
    regions_name: str | None = None
    regions_grid: tuple[int, int] | None = None
    regions_dim: int | None = None  # channels per region; the embedding's dim when the card does not say
    classes_name: str | None = None  # output of class probabilities (N, len(class_names)), when the card has one
    class_names: tuple[str, ...] = ()
    variants: Mapping[str, Variant] = field(default_factory=dict)
    licence: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model_path(self) -> Path:
        return self.path.parent / self.file

    def variant_path(self, name: str) -> Path:
        return self.path.parent / self.variants[name].file

    @property
    def region_count(self) -> int:
        return self.regions_grid[0] * self.regions_grid[1] if self.regions_grid else 0

    @property
    def region_dim(self) -> int:
        return (self.regions_dim or self.dim) if self.regions_name is not None else 0


def _get(d: Any, dotted: str, kind: type | tuple[type, ...], path: Path, required: bool = True) -> Any:
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if required:
                raise ModelError(f"model card {path}: missing field '{dotted}'")
            return None
        cur = cur[part]
    # bool is an int in Python: do not let `dim: true` pass as 1
    if not isinstance(cur, kind) or (kind is int and isinstance(cur, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ModelError(f"model card {path}: field '{dotted}' must be {names}, got {cur!r}")
    return cur


def _pair(d: Any, dotted: str, path: Path, required: bool = True) -> tuple[int, int] | None:
    v = _get(d, dotted, list, path, required)
    if v is None:
        return None
    if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        raise ModelError(f"model card {path}: field '{dotted}' must be two positive integers, got {v!r}")
    return (v[0], v[1])


def _sha(d: Any, dotted: str, path: Path) -> str:
    v = _get(d, dotted, str, path).lower()
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ModelError(f"model card {path}: field '{dotted}' must be a sha256 (64 hex digits), got {v!r}")
    return v


def _choice(d: Any, dotted: str, path: Path, allowed: tuple[str, ...]) -> str:
    v = _get(d, dotted, str, path)
    if v not in allowed:
        raise ModelError(f"model card {path}: field '{dotted}' must be one of {', '.join(allowed)}, got {v!r}")
    return v


def load_card(path: str | Path) -> ModelCard:
    """Read and check a model card (JSON, or YAML for a .yaml/.yml file)."""
    path = Path(path)
    return card_from_mapping(read_card_file(path), path)


def read_card_file(path: Path) -> dict:
    """A card file's mapping (JSON, or YAML for .yaml/.yml); ModelError naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"model card not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"model card {path} cannot be read: {exc.strerror or exc}") from None
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        d = yaml.safe_load(text) if is_yaml else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"model card {path} is not valid {'YAML' if is_yaml else 'JSON'}: {exc}") from None
    if not isinstance(d, dict):
        raise ModelError(f"model card {path}: expected a mapping at the top level")
    return d


def card_from_mapping(d: dict, path: Path, card_id: str | None = None) -> ModelCard:
    """Check a card's fields. ``path``: where its files are relative to (and what errors name);
    ``card_id``: the id when the mapping has none (the image half of a CLIP card)."""
    dim = _get(d, "output.dim", int, path)
    if dim <= 0:
        raise ModelError(f"model card {path}: field 'output.dim' must be positive, got {dim}")
    variants = {}
    for name, v in (_get(d, "variants", dict, path, required=False) or {}).items():
        variants[str(name)] = Variant(file=_get(d, f"variants.{name}.file", str, path),
                                      sha256=_sha(d, f"variants.{name}.sha256", path))
    has_regions = isinstance(d.get("regions"), dict)
    has_classes = isinstance(d.get("classes"), dict)
    class_names = tuple(_get(d, "classes.names", list, path)) if has_classes else ()
    if has_classes and (not class_names or not all(isinstance(n, str) and n for n in class_names)):
        raise ModelError(f"model card {path}: field 'classes.names' must be a non-empty list of names")
    return ModelCard(
        path=path,
        id=card_id if card_id is not None else _get(d, "id", str, path),
        file=_get(d, "file", str, path),
        sha256=_sha(d, "sha256", path),
        input_name=_get(d, "input.name", str, path),
        input_size=_pair(d, "input.size", path),
        layout=_choice(d, "input.layout", path, ("NHWC",)),
        dtype=_choice(d, "input.dtype", path, ("uint8",)),
        colour=_choice(d, "input.colour", path, ("RGB", "BGR")),
        output_name=_get(d, "output.name", str, path),
        dim=dim,
        normalised=_get(d, "output.normalised", bool, path),
        regions_name=_get(d, "regions.name", str, path) if has_regions else None,
        regions_grid=_pair(d, "regions.grid", path) if has_regions else None,
        regions_dim=_get(d, "regions.dim", int, path, required=False) if has_regions else None,
        classes_name=_get(d, "classes.name", str, path) if has_classes else None,
        class_names=class_names,
        variants=variants,
        licence=_get(d, "licence", str, path, required=False),
        raw=d,
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_file(path: Path, expected: str) -> None:
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    got = file_sha256(path)
    if got != expected:
        raise ModelError(f"checksum mismatch: expected {expected}, got {got}, file {path}")


# --------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class ProviderProbe:
    """What this machine can really run. ``*_reason`` says why not, when not."""

    available: tuple[str, ...]
    cuda_ok: bool
    cuda_reason: str = ""
    tensorrt_ok: bool = False
    tensorrt_reason: str = ""


def _cuda_major() -> str:
    try:
        from onnxruntime.capi import build_and_package_info as info

        return str(info.cuda_version).split(".")[0] or "13"
    except Exception:  # CPU-only wheels have no CUDA version
        return "13"


def _loadable(names: list[str]) -> str:
    """'' when every shared library loads, else the first failure."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            return f"CUDA library {name} cannot be loaded ({exc})"
    return ""


def _cuda_device() -> str:
    """'' when the driver initialises and sees at least one device."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return f"the NVIDIA driver library libcuda.so.1 cannot be loaded ({exc})"
    rc = cuda.cuInit(0)
    if rc != 0:
        return f"the NVIDIA driver does not initialise (cuInit error {rc})"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no CUDA device found"
    return ""


def probe_providers() -> ProviderProbe:
    """Check, without asking onnxruntime for CUDA, whether CUDA (and TensorRT) would really load.

    Asking ORT for CUDA when its libraries are missing prints a red error on stderr and falls back;
    probing the same libraries with ctypes first is silent.
    """
    import onnxruntime as ort

    available = tuple(ort.get_available_providers())
    if CUDA not in available:
        return ProviderProbe(available, False, "this onnxruntime build has no CUDAExecutionProvider "
                                               "(install onnxruntime-gpu)", False, "no CUDA")
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # Loads CUDA/cuDNN from pip's nvidia-* packages when present. It reports failures with print();
        # keep that off the daemon's stdout: the checks below give the reason.
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                preload()
        except Exception as exc:
            log.debug("onnxruntime.preload_dlls failed: %s", exc)
        if sink.getvalue().strip():
            log.debug("onnxruntime.preload_dlls: %s", sink.getvalue().strip())
    major = _cuda_major()
    # What libonnxruntime_providers_cuda.so needs (its DT_NEEDED entries), plus cuDNN which it opens later.
    reason = _loadable([f"libcudart.so.{major}", f"libcublasLt.so.{major}", f"libcublas.so.{major}",
                        "libcurand.so.10", "libcudnn.so.9"]) or _cuda_device()
    cuda_ok = not reason
    if TENSORRT not in available:
        trt_ok, trt_reason = False, "this onnxruntime build has no TensorrtExecutionProvider"
    elif not cuda_ok:
        trt_ok, trt_reason = False, reason
    else:
        trt_reason = _loadable(["libnvinfer.so.10", "libnvonnxparser.so.10"]).replace("CUDA library",
                                                                                     "TensorRT library")
        trt_ok = not trt_reason
    return ProviderProbe(available, cuda_ok, reason, trt_ok, trt_reason)


_logged_once: set[str] = set()


def _log_once(key: str, msg: str, *args: Any) -> None:
    if key not in _logged_once:
        _logged_once.add(key)
        log.info(msg, *args)


# --------------------------------------------------------------------------- embedder


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray  # float32 (N, dim), L2-normalised
    regions: np.ndarray | None  # float32 (N, R, dim), each L2-normalised; None without a region output
    probabilities: np.ndarray | None = None  # float32 (N, classes); None without a classes output


# cuDNN's heuristic choice of convolution algorithm, not onnxruntime's exhaustive search: as fast here (one
# 640x360 source on an H200: 241 frames/s against 229, benchmarks/gpu_diag.py, 2026-12-04), with no search
# at start-up or for a shape it has not seen.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


def session_options(provider: str, threads: int = 0) -> ort.SessionOptions:
    """onnxruntime's session options for a model whose first provider is ``provider``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        so.intra_op_num_threads = threads
    elif provider != CPU:
        # On a GPU the kernels use no CPU pool; a pool of one thread per core only competes with decoding
        # (onnxruntime's maintainers advise one thread for CUDA sessions: microsoft/onnxruntime#20494).
        so.intra_op_num_threads = 1
    so.log_severity_level = 3  # errors only: ORT's warnings would go straight to stderr
    # Capture threads share the cores: spinning pool threads steal them from decode and preprocessing
    # between runs (measured on 2 cores with the CPU provider: pool CPU halves, e2e/raw 0.84 -> 0.94).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class Embedder:
    """An ONNX Runtime session for one carded model. ``embed`` is meant for one inference thread."""

    def __init__(self, model_path: str | Path, card_path: str | Path | None = None, providers: str = "auto",
                 fp16: bool = False, threads: int = 0, cache_dir: str | Path | None = None,
                 probe: Callable[[], ProviderProbe] = probe_providers, max_batch: int = 8,
                 card: ModelCard | None = None):
        import onnxruntime as ort

        model_path = Path(model_path)
        card_path = Path(card_path) if card_path is not None else model_path.with_suffix(".json")
        if providers not in PROVIDER_CHOICES:
            raise ModelError(f"model providers: expected one of {', '.join(PROVIDER_CHOICES)}, got {providers!r}")
        if not model_path.is_file():
            raise ModelError(f"model file not found: {model_path}")
        self.card = card if card is not None else load_card(card_path)
        # The card's sha256 ties it to this file whatever its name. A card's variant can also be named
        # directly as the model (e.g. the int8 file with the main card): it is checked against its own sha256.
        self.variant: str | None = next((name for name, v in self.card.variants.items()
                                         if v.file == model_path.name and v.file != self.card.file), None)
        _check_file(model_path, self.card.variants[self.variant].sha256 if self.variant else self.card.sha256)

        self.max_batch = max(1, int(max_batch))
        chosen, options = self._providers(providers, fp16, cache_dir, probe,
                                          profile=(self.card.input_name, self.card.input_size, self.max_batch))
        path = model_path
        if self.variant is not None:
            pass  # an explicitly chosen variant is used as it is
        elif fp16 and chosen[0] == CUDA:
            if "fp16" in self.card.variants:
                path = self.card.variant_path("fp16")
                _check_file(path, self.card.variants["fp16"].sha256)
                self.variant = "fp16"
            else:
                _log_once(f"nofp16:{card_path}", "model card %s has no fp16 variant: running fp32 on CUDA",
                          card_path)
        elif fp16 and chosen[0] == CPU:
            _log_once("fp16cpu", "fp16 asked for but running on the CPU: keeping the fp32 model "
                                 "(fp16 is slower than fp32 on CPUs)")
        # With TensorRT, fp16 is TensorRT's own flag on the fp32 graph (trt_fp16_enable).

        so = session_options(chosen[0], threads)
        try:
            self._session = ort.InferenceSession(str(path), so, providers=list(zip(chosen, options)))
        except Exception as exc:  # ORT raises its own exception types (InvalidGraph, Fail, ...)
            raise ModelError(f"model file {path} cannot be loaded by onnxruntime: {exc}") from None
        in_use = self._session.get_providers()
        if providers in ("cuda", "tensorrt") and in_use[0] != chosen[0]:
            raise ModelError(f"model providers: {providers} requested but onnxruntime fell back to "
                             f"{in_use[0]} for {path}")
        self.provider: str = in_use[0]
        self.path = path
        self._check_graph(path)
        self._outputs = [self.card.output_name] + ([self.card.regions_name] if self.has_regions else []) + \
            ([self.card.classes_name] if self.has_classes else [])
        log.info("model %s on %s (%s)", self.model_id, self.provider, path)

    # ----------------------------------------------------------------------- construction helpers

    @classmethod
    def from_config(cls, cfg: Config, cache_dir: str | Path | None = None, **kw: Any) -> Embedder:
        from .config import resolve_path

        m = cfg.model
        card = resolve_path(cfg, m.card) if m.card else None
        return cls(resolve_path(cfg, m.path), card, providers=m.providers, fp16=m.fp16, threads=m.threads,
                   cache_dir=cache_dir, max_batch=cfg.embed.max_batch, **kw)

    @staticmethod
    def _providers(wanted: str, fp16: bool, cache_dir: str | Path | None,
                   probe: Callable[[], ProviderProbe],
                   profile: tuple[str, tuple[int, int], int] | None = None) -> tuple[list[str], list[dict]]:
        if wanted == "cpu":
            return [CPU], [{}]
        p = probe()
        if wanted == "auto":
            if p.cuda_ok:
                return [CUDA, CPU], [dict(CUDA_OPTIONS), {}]
            log.debug("CUDA not used: %s", p.cuda_reason)
            return [CPU], [{}]
        if wanted == "cuda":
            if not p.cuda_ok:
                raise ModelError(f"model providers: cuda requested but not usable: {p.cuda_reason}")
            return [CUDA, CPU], [dict(CUDA_OPTIONS), {}]
        if not p.tensorrt_ok:
            raise ModelError(f"model providers: tensorrt requested but not usable: {p.tensorrt_reason}")
        trt: dict[str, str] = {"trt_fp16_enable": "True" if fp16 else "False"}
        if cache_dir is not None:
            # Building an engine takes minutes; the cache makes restarts fast.
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            trt.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(cache_dir),
                       trt_timing_cache_enable="True", trt_timing_cache_path=str(cache_dir))
        if profile is not None:
            # Micro-batches vary from 1 to max_batch: one profile covering them all, or TensorRT rebuilds
            # its engine (minutes) the first time it sees each new batch size.
            name, (w, h), max_batch = profile
            trt.update(trt_profile_min_shapes=f"{name}:1x{h}x{w}x3",
                       trt_profile_opt_shapes=f"{name}:{max_batch}x{h}x{w}x3",
                       trt_profile_max_shapes=f"{name}:{max_batch}x{h}x{w}x3")
        return [TENSORRT, CUDA, CPU], [trt, dict(CUDA_OPTIONS), {}]

    def _check_graph(self, path: Path) -> None:
        c = self.card
        where = f"model {path} and card {c.path}"
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{where}: the graph has {len(inputs)} inputs, expected one image input")
        inp = inputs[0]
        if inp.name != c.input_name:
            raise ModelError(f"{where}: graph input is {inp.name!r}, card field 'input.name' says {c.input_name!r}")
        if inp.type != "tensor(uint8)":
            raise ModelError(f"{where}: graph input type is {inp.type}, card field 'input.dtype' says uint8")
        w, h = c.input_size
        want = [None, h, w, 3]
        shape = list(inp.shape)
        if len(shape) != 4 or any(isinstance(g, int) and e is not None and g != e for g, e in zip(shape, want)):
            raise ModelError(f"{where}: graph input shape {shape} does not match card 'input.size' {[w, h]} "
                             f"(expected [N, {h}, {w}, 3])")
        outputs = {o.name: o for o in self._session.get_outputs()}
        checks = [(c.output_name, 2, "output", c.dim)]
        if c.regions_name is not None:
            checks.append((c.regions_name, 3, "regions", c.region_dim))
        if c.classes_name is not None:
            checks.append((c.classes_name, 2, "classes", len(c.class_names)))
        for name, rank, key, dim in checks:
            o = outputs.get(name)
            if o is None:
                raise ModelError(f"{where}: the graph has no output {name!r} (card field '{key}.name'); "
                                 f"outputs are {sorted(outputs)}")
            if o.type != "tensor(float)":
                raise ModelError(f"{where}: output {name!r} is {o.type}, expected float32")
            shape = list(o.shape)
            if len(shape) != rank or (isinstance(shape[-1], int) and shape[-1] != dim):
                field_name = {"regions": "regions.dim" if c.regions_dim else "output.dim",
                              "classes": "classes.names"}.get(key, "output.dim")
                raise ModelError(f"{where}: output {name!r} has shape {shape}, card field '{field_name}' says "
                                 f"{dim}")
            if rank == 3 and isinstance(shape[1], int) and shape[1] != c.region_count:
                raise ModelError(f"{where}: output {name!r} has {shape[1]} regions, card field 'regions.grid' "
                                 f"{list(c.regions_grid or ())} means {c.region_count}")

    # ----------------------------------------------------------------------- properties

    @property
    def model_id(self) -> str:
        # fp16 matches fp32 to ~1e-4 cosine: the same vectors. int8 is only ~0.98 close: its own id, so drift
        # references and saved indexes are not mixed across the two.
        if self.variant is not None and self.variant != "fp16":
            return f"{self.card.id}+{self.variant}"
        return self.card.id

    @property
    def dim(self) -> int:
        return self.card.dim

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_size

    @property
    def colour(self) -> str:
        return self.card.colour

    @property
    def has_regions(self) -> bool:
        return self.card.regions_name is not None

    @property
    def region_count(self) -> int:
        return self.card.region_count

    @property
    def has_classes(self) -> bool:
        return self.card.classes_name is not None

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the probabilities' columns (ImageNet's for the default model); () without them."""
        return self.card.class_names

    @property
    def region_dim(self) -> int:
        return self.card.region_dim

    # ----------------------------------------------------------------------- inference

    def batch_sizes(self) -> list[int]:
        """The input shapes a GPU session sees: max_batch alone. Since onnxruntime 1.20 a CUDA session that
        switches between input shapes runs many times slower (microsoft/onnxruntime#23006); on an H200,
        batches padded to 1, 2, 4, ... max_batch ran 66 frames/s from one 1080p source against 106 from 32
        sources whose batches were nearly all full (2026-12-04). A full batch costs the GPU a few ms more."""
        return [self.max_batch]

    def warm_up(self) -> None:
        """On a GPU, run the batch size once before the first frame: cuDNN's setup and TensorRT's kernels for
        a new input shape would otherwise stall the first batch (a latency spike). Nothing to do on the CPU."""
        if not self.pad_batches:
            return
        w, h = self.input_size
        sizes = self.batch_sizes()
        for n in sizes:
            self.embed(np.zeros((n, h, w, 3), np.uint8))
        log.info("warmed up %s for batch sizes %s", self.provider, sizes)

    def padded_size(self, n: int) -> int:
        """The batch size a batch of ``n`` frames runs at: on a GPU the smallest of :meth:`batch_sizes` that
        holds it, on the CPU ``n``."""
        return next((b for b in self.batch_sizes() if b >= n), n) if self.pad_batches else n

    @property
    def pad_batches(self) -> bool:
        """On a GPU every batch is padded to the one input shape warm_up ran (see batch_sizes). On the CPU
        padding would only cost time."""
        return self.provider != CPU

    def embed(self, batch: np.ndarray) -> EmbedResult:
        """uint8 (N, h, w, 3) frames, already preprocessed -> float32 vectors (and region vectors)."""
        w, h = self.card.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ValueError(f"embed: expected uint8 (N, {h}, {w}, 3), got {batch.dtype} {batch.shape}")
        n = len(batch)
        size = self.padded_size(n)
        if size > n:
            batch = np.concatenate([batch, np.zeros((size - n, h, w, 3), np.uint8)])
        out = self._session.run(self._outputs, {self.card.input_name: np.ascontiguousarray(batch)})
        vectors = np.asarray(out[0][:n], dtype=np.float32)
        regions = np.asarray(out[1][:n], dtype=np.float32) if self.has_regions else None
        probabilities = np.asarray(out[-1][:n], dtype=np.float32) if self.has_classes else None
        if not self.card.normalised:
            # Cosine distance downstream assumes unit vectors; a card that says otherwise gets them here.
            vectors = _unit(vectors)
            regions = _unit(regions) if regions is not None else None
        return EmbedResult(vectors, regions, probabilities)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)
