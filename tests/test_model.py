"""The model card, the Embedder, provider selection, and the committed EfficientNet-Lite0 graphs."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import skimage.data

from edgefilter import model as model_mod
from edgefilter.config import parse_config
from edgefilter.errors import ModelError
from edgefilter.model import CPU, CUDA, TENSORRT, Embedder, ProviderProbe, load_card, probe_providers
from edgefilter.preprocess import preprocess, stack

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
FP32 = MODELS / "efficientnet_lite0.onnx"
REGIONS = MODELS / "efficientnet_lite0_regions.onnx"

NO_CUDA = ProviderProbe(available=(TENSORRT, CUDA, CPU), cuda_ok=False,
                        cuda_reason="CUDA library libcublasLt.so.13 cannot be loaded (simulated)",
                        tensorrt_ok=False, tensorrt_reason="TensorRT library libnvinfer.so.10 cannot be loaded")


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def rgb(img_rgb: np.ndarray, box=None) -> np.ndarray:
    """A scikit-image RGB photo (optionally cropped to box=(y0, y1, x0, x1)) as the model's input."""
    if box is not None:
        y0, y1, x0, x1 = box
        img_rgb = img_rgb[y0:y1, x0:x1]
    return preprocess(np.ascontiguousarray(img_rgb[:, :, ::-1]), (224, 224), "RGB")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(FP32, providers="cpu", threads=2)


@pytest.fixture(scope="module")
def regions_embedder() -> Embedder:
    return Embedder(REGIONS, providers="cpu", threads=2)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return stack([rgb(skimage.data.chelsea()), rgb(skimage.data.coffee()), rgb(skimage.data.astronaut()),
                  rgb(skimage.data.rocket())])


def write_tiny(folder: Path, *, dim_out: int = 4, size=(8, 6), normalised=False, card_extra=None,
               input_name="pixels", output_name="vec", card_name=None) -> tuple[Path, Path]:
    """A tiny image model built with onnx.helper: uint8 (N,h,w,3) -> channel means (N,3) -> MatMul -> (N,dim)."""
    w, h = size
    weights = np.arange(3 * dim_out, dtype=np.float32).reshape(3, dim_out) / 10 + 0.1
    nodes = [
        oh.make_node("Cast", [input_name], ["f"], to=onnx.TensorProto.FLOAT),
        oh.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        oh.make_node("MatMul", ["m", "W"], [output_name]),
    ]
    graph = oh.make_graph(
        nodes, "tiny",
        [oh.make_tensor_value_info(input_name, onnx.TensorProto.UINT8, ["N", h, w, 3])],
        [oh.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, ["N", dim_out])],
        [onnx.numpy_helper.from_array(weights, "W")],
    )
    m = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    path = folder / "tiny.onnx"
    path.write_bytes(m.SerializeToString())
    card = {
        "id": "tiny@test", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input": {"name": "pixels", "size": [w, h], "layout": "NHWC", "dtype": "uint8", "colour": "RGB"},
        "output": {"name": "vec", "dim": dim_out, "normalised": normalised},
        "licence": "MIT",
    }
    for key, value in (card_extra or {}).items():
        section, _, sub = key.partition(".")
        if sub:
            card[section][sub] = value
        elif value is None:
            del card[section]
        else:
            card[section] = value
    card_path = folder / (card_name or "tiny.json")
    card_path.write_text(json.dumps(card))
    return path, card_path


# --------------------------------------------------------------------------- cards


def test_committed_card_matches_its_files():
    card = json.loads((MODELS / "efficientnet_lite0.json").read_text())
    digest = hashlib.sha256(FP32.read_bytes()).hexdigest()
    assert card["sha256"] == digest
    assert card["id"] == f"efficientnet_lite0-imagenet@{digest[:12]}"
    assert card["input"] == {"name": "images", "size": [224, 224], "layout": "NHWC", "dtype": "uint8",
                             "colour": "RGB"}
    assert card["output"] == {"name": "embedding", "dim": 1280, "normalised": True}
    assert card["licence"] == "Apache-2.0"
    assert card["provenance"]["opset"] >= 17
    for name in ("fp16", "int8"):
        v = card["variants"][name]
        assert hashlib.sha256((MODELS / v["file"]).read_bytes()).hexdigest() == v["sha256"]
    top1 = {t["image"]: t for t in card["verification"]["top1"]}
    assert top1["chelsea"]["class"] == 285 and top1["coffee"]["class"] == 967
    assert card["verification"]["max_abs_diff_vs_pytorch"] < 1e-4
    regions = load_card(MODELS / "efficientnet_lite0_regions.json")
    assert regions.regions_grid == (7, 7) and regions.region_count == 49 and regions.regions_dim == 320
    assert hashlib.sha256((MODELS / regions.file).read_bytes()).hexdigest() == regions.sha256
    for v in regions.variants.values():
        assert hashlib.sha256((MODELS / v.file).read_bytes()).hexdigest() == v.sha256
    assert "fp16" in regions.variants


def test_missing_model_and_missing_card_name_the_path(tmp_path):
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "nope.onnx"))):
        Embedder(tmp_path / "nope.onnx", providers="cpu")
    model, card = write_tiny(tmp_path)
    card.unlink()
    with pytest.raises(ModelError, match=r"model card not found: .*tiny\.json"):
        Embedder(model, providers="cpu")


def test_tampered_model_is_a_checksum_mismatch(tmp_path):
    model, card = write_tiny(tmp_path)
    expected = json.loads(card.read_text())["sha256"]
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelError) as err:
        Embedder(model, card, providers="cpu")
    msg = str(err.value)
    assert msg.startswith("checksum mismatch: expected " + expected)
    assert "got " + hashlib.sha256(model.read_bytes()).hexdigest() in msg and str(model) in msg


@pytest.mark.parametrize("extra, field", [
    ({"output.dim": "1280"}, "output.dim"),
    ({"output.dim": True}, "output.dim"),
    ({"input.size": [224]}, "input.size"),
    ({"input.layout": "NCHW"}, "input.layout"),
    ({"input.colour": "rgb"}, "input.colour"),
    ({"sha256": "abc"}, "sha256"),
    ({"id": None}, "id"),
    ({"variants": {"fp16": {"file": "x.onnx"}}}, "variants.fp16.sha256"),
])
def test_bad_card_field_is_named(tmp_path, extra, field):
    model, card = write_tiny(tmp_path, card_extra=extra)
    with pytest.raises(ModelError, match=rf"model card {re.escape(str(card))}: (missing )?field '{re.escape(field)}'"):
        Embedder(model, card, providers="cpu")


def test_card_that_is_not_json_names_the_file(tmp_path):
    model, card = write_tiny(tmp_path)
    card.write_text("{not json")
    with pytest.raises(ModelError, match=rf"model card {re.escape(str(card))} is not valid JSON"):
        load_card(card)


@pytest.mark.parametrize("kw, words", [
    ({"card_extra": {"output.dim": 5}}, "card field 'output.dim' says 5"),
    ({"card_extra": {"input.size": [8, 8]}}, "does not match card 'input.size' [8, 8]"),
    ({"input_name": "x"}, "graph input is 'x'"),
    ({"output_name": "features"}, "the graph has no output 'vec'"),
    ({"card_extra": {"regions": {"name": "cells", "grid": [3, 3]}}}, "the graph has no output 'cells'"),
])
def test_graph_that_disagrees_with_the_card(tmp_path, kw, words):
    model, card = write_tiny(tmp_path, **kw)
    with pytest.raises(ModelError, match=re.escape(words)):
        Embedder(model, card, providers="cpu")


def test_tiny_model_embeds_through_a_yaml_card(tmp_path):
    model, card_json = write_tiny(tmp_path, normalised=False)
    import yaml

    card = tmp_path / "tiny.yaml"
    card.write_text(yaml.safe_dump(json.loads(card_json.read_text())))
    e = Embedder(model, card, providers="cpu")
    assert (e.model_id, e.dim, e.input_size, e.colour, e.has_regions, e.region_count) == \
        ("tiny@test", 4, (8, 6), "RGB", False, 0)
    batch = np.random.default_rng(3).integers(0, 256, (5, 6, 8, 3), dtype=np.uint8)
    res = e.embed(batch)
    weights = np.arange(12, dtype=np.float32).reshape(3, 4) / 10 + 0.1
    raw = batch.reshape(5, -1, 3).mean(1) @ weights
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)  # the card says "not normalised": we normalise
    assert res.vectors.dtype == np.float32 and res.regions is None
    np.testing.assert_allclose(res.vectors, expected, atol=1e-5)
    with pytest.raises(ValueError, match="expected uint8"):
        e.embed(batch.astype(np.float32))


def test_from_config_resolves_paths_against_the_config(tmp_path):
    write_tiny(tmp_path, card_name="card.json")
    text = ("sources: [{name: cam, url: 'demo://'}]\n"
            "model: {path: tiny.onnx, card: card.json, providers: cpu, threads: 1}\n")
    cfg = parse_config(text, file=str(tmp_path / "edgefilter.yaml"), base_dir=str(tmp_path))
    e = Embedder.from_config(cfg)
    assert e.model_id == "tiny@test" and e.provider == CPU


# --------------------------------------------------------------------------- providers


def test_auto_on_a_machine_without_cuda_prints_nothing():
    # A fresh interpreter, so fd 2 holds everything onnxruntime itself would write.
    code = ("from edgefilter.model import Embedder, probe_providers\n"
            f"e = Embedder({str(FP32)!r})\n"
            "p = probe_providers()\n"
            "print(e.provider, p.cuda_ok)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120)
    assert proc.stderr == b""
    provider, cuda_ok = proc.stdout.decode().split()
    assert provider == (CUDA if cuda_ok == "True" else CPU)


def test_cuda_listed_but_libraries_missing_falls_back_to_cpu_silently(tmp_path, monkeypatch, capfd, caplog):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(model_mod, "_loadable", lambda names: f"CUDA library {names[0]} cannot be loaded (test)")
    probe = probe_providers()
    assert not probe.cuda_ok and "cannot be loaded" in probe.cuda_reason
    model, card = write_tiny(tmp_path)
    with caplog.at_level(logging.INFO, logger="edgefilter.model"):
        e = Embedder(model, card, providers="auto", probe=lambda: probe)
    assert e.provider == CPU
    assert capfd.readouterr().err == ""
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [f"model tiny@test on {CPU} ({model})"]


def test_forced_cuda_without_cuda_is_a_clear_error(tmp_path):
    model, card = write_tiny(tmp_path)
    with pytest.raises(ModelError, match=r"cuda requested but not usable: CUDA library libcublasLt\.so\.13"):
        Embedder(model, card, providers="cuda", probe=lambda: NO_CUDA)
    with pytest.raises(ModelError, match=r"tensorrt requested but not usable: TensorRT library libnvinfer"):
        Embedder(model, card, providers="tensorrt", probe=lambda: NO_CUDA)
    with pytest.raises(ModelError, match="expected one of auto, cpu, cuda, tensorrt"):
        Embedder(model, card, providers="gpu")


def test_provider_lists_for_cuda_and_tensorrt(tmp_path):
    ok = ProviderProbe((TENSORRT, CUDA, CPU), True, "", True, "")
    assert Embedder._providers("auto", False, None, lambda: ok)[0] == [CUDA, CPU]
    # cuDNN chooses each convolution's algorithm by heuristic: no exhaustive search at start-up or mid-stream
    for wanted in ("auto", "cuda"):
        assert Embedder._providers(wanted, False, None, lambda: ok)[1] == [{"cudnn_conv_algo_search": "HEURISTIC"}, {}]
    assert Embedder._providers("tensorrt", False, None, lambda: ok)[1][1] == {"cudnn_conv_algo_search": "HEURISTIC"}
    names, options = Embedder._providers("tensorrt", True, tmp_path / "trt", lambda: ok)
    assert names == [TENSORRT, CUDA, CPU]
    assert options[0] == {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                          "trt_engine_cache_path": str(tmp_path / "trt"), "trt_timing_cache_enable": "True",
                          "trt_timing_cache_path": str(tmp_path / "trt")}
    assert Embedder._providers("cpu", False, None, lambda: pytest.fail("cpu must not probe"))[0] == [CPU]


def test_fp16_on_cpu_keeps_fp32(tmp_path, caplog):
    model_mod._logged_once.discard("fp16cpu")
    with caplog.at_level(logging.INFO, logger="edgefilter.model"):
        e = Embedder(FP32, providers="cpu", fp16=True)
    assert e.path == FP32
    assert any("keeping the fp32 model" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the default model


def test_embeddings_are_unit_and_deterministic(embedder, photos):
    assert (embedder.model_id, embedder.dim, embedder.provider) == (
        json.loads((MODELS / "efficientnet_lite0.json").read_text())["id"], 1280, CPU)
    a = embedder.embed(photos).vectors
    b = embedder.embed(photos).vectors
    assert a.shape == (4, 1280) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_batch_equals_single_calls_and_any_batch_size_works(embedder, photos):
    batch = embedder.embed(photos).vectors
    single = np.concatenate([embedder.embed(photos[i:i + 1]).vectors for i in range(len(photos))])
    np.testing.assert_allclose(batch, single, atol=1e-4)
    three = embedder.embed(photos[1:4]).vectors
    np.testing.assert_allclose(three, batch[1:4], atol=1e-4)


def test_a_cat_is_closer_to_another_crop_of_itself_than_to_coffee(embedder):
    cat = skimage.data.chelsea()  # 300 x 451
    a, b, coffee = embedder.embed(stack([rgb(cat, (0, 280, 0, 400)), rgb(cat, (30, 300, 60, 451)),
                                         rgb(skimage.data.coffee())])).vectors
    assert cos(a, b) > cos(a, coffee) + 0.2
    assert cos(a, b) > 0.85


def test_regions_graph_shapes_and_consistency(regions_embedder, embedder, photos):
    assert regions_embedder.has_regions and regions_embedder.region_count == 49
    assert regions_embedder.region_dim == 320
    res = regions_embedder.embed(photos)
    assert res.regions.shape == (4, 49, 320) and res.regions.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.regions, axis=2), 1.0, atol=1e-5)
    # Same weights: its embedding is the plain graph's embedding.
    np.testing.assert_allclose(res.vectors, embedder.embed(photos).vectors, atol=1e-5)
    # a cell describes its own part of the picture: the same cell of two different photos differs
    assert float((res.regions[0] * res.regions[1]).sum(1).mean()) < 0.9


def test_a_change_in_one_corner_moves_that_corner_region_most(regions_embedder):
    scene = rgb(skimage.data.astronaut())
    changed = scene.copy()
    changed[150:224, 150:224] = rgb(skimage.data.chelsea())[::3, ::3][:74, :74]  # a cat in the bottom right
    res = regions_embedder.embed(stack([scene, changed]))
    dist = 1 - (res.regions[0] * res.regions[1]).sum(1)
    grid = dist.reshape(7, 7)  # row-major 7x7 grid; the cat covers rows/cols 150-224 of 224: cells 5-6
    assert np.unravel_index(int(grid.argmax()), grid.shape) in {(5, 5), (5, 6), (6, 5), (6, 6)}
    assert grid[5:, 5:].min() > 10 * grid[:3, :3].max()
    # ...and sees it more clearly than the whole-image embedding does (why regions exist).
    assert grid.max() > 2 * (1 - float(res.vectors[0] @ res.vectors[1]))


def test_fp16_graph_agrees_with_fp32(embedder, photos):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    card = load_card(MODELS / "efficientnet_lite0.json")
    s16 = ort.InferenceSession(str(card.variant_path("fp16")), so, providers=[CPU])
    e16 = s16.run(["embedding"], {"images": photos[:2]})[0]
    assert e16.dtype == np.float32
    e32 = embedder.embed(photos[:2]).vectors
    assert min(cos(e16[i], e32[i]) for i in range(2)) > 0.99


def test_int8_variant_runs_with_the_main_card_and_agrees_with_fp32(embedder, photos):
    e = Embedder(MODELS / "efficientnet_lite0_int8.onnx", MODELS / "efficientnet_lite0.json", providers="cpu")
    assert e.variant == "int8" and e.model_id == embedder.model_id + "+int8"
    e8 = e.embed(photos).vectors
    e32 = embedder.embed(photos).vectors
    # 7-bit weights (export.py, reduce_range): 0.980-0.991 on an AVX2-only CPU (2-core AMD EPYC, 2026-12-02),
    # where full-range weights gave 0.949-0.970 (its u8s8 kernels add pairs of products in int16 and saturate)
    assert min(cos(e8[i], e32[i]) for i in range(len(photos))) > 0.96


def test_tensorrt_profile_covers_every_batch_size(tmp_path):
    from edgefilter.model import Embedder, ProviderProbe
    probe = lambda: ProviderProbe(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                                  True, "", True, "")
    names, options = Embedder._providers("tensorrt", True, tmp_path / "trt", probe,
                                         profile=("images", (224, 224), 16))
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = options[0]
    assert trt["trt_profile_min_shapes"] == "images:1x224x224x3"
    assert trt["trt_profile_max_shapes"] == "images:16x224x224x3"
    assert (tmp_path / "trt").is_dir()


def test_warm_up_does_nothing_on_the_cpu(monkeypatch):
    from edgefilter.model import Embedder
    e = Embedder(MODELS / "efficientnet_lite0.onnx", providers="cpu")
    calls = []
    monkeypatch.setattr(e, "embed", lambda batch: calls.append(len(batch)))
    e.warm_up()
    assert calls == []
    e.provider = "CUDAExecutionProvider"  # as if on a GPU
    e.max_batch = 12
    e.warm_up()
    assert calls == [12]  # the one shape every batch is padded to


def test_session_options_give_a_gpu_session_one_cpu_thread_and_no_session_spins():
    from edgefilter.model import session_options
    gpu = session_options(CUDA)
    assert gpu.intra_op_num_threads == 1  # the kernels run on the GPU: no pool to compete with decoding
    assert session_options(CUDA, threads=3).intra_op_num_threads == 3  # model.threads set: as set
    assert session_options(CPU).intra_op_num_threads == 0  # onnxruntime's default: a thread per core
    for so in (gpu, session_options(CPU), session_options(TENSORRT)):
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


class _ShapeSpy:
    """The real session, recording the batch size of every run."""

    def __init__(self, session):
        self.session, self.sizes = session, []

    def run(self, outputs, feeds):
        self.sizes.append(len(next(iter(feeds.values()))))
        return self.session.run(outputs, feeds)


def test_on_a_gpu_every_batch_is_padded_to_one_shape_and_the_padding_is_cut_off():
    from edgefilter.model import Embedder
    e = Embedder(MODELS / "efficientnet_lite0_regions.onnx", providers="cpu", max_batch=12)
    frames = np.random.default_rng(0).integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    alone = e.embed(frames)
    spy = _ShapeSpy(e._session)
    e._session = spy
    e.provider = "CUDAExecutionProvider"  # as if on a GPU: a session that switches shapes runs slower
    padded = e.embed(frames)
    assert padded.vectors.shape == alone.vectors.shape and padded.regions.shape == alone.regions.shape
    assert np.allclose(padded.vectors, alone.vectors, atol=1e-5)
    assert np.allclose(padded.regions, alone.regions, atol=1e-5)
    for n in (1, 3, 9, 12):
        e.embed(frames[:1].repeat(n, axis=0))
    assert spy.sizes == [12] * 5 and e.batch_sizes() == [12]
    e.provider = "CPUExecutionProvider"
    e.embed(frames[:3])
    assert spy.sizes[-1] == 3  # the CPU runs the batch as it is


@pytest.mark.parametrize("first,second", [("usearch.index", "onnxruntime"), ("onnxruntime", "usearch.index")])
def test_the_index_and_the_runtime_load_in_either_order(first, second):
    # usearch 2.26.2-2.26.6 killed the process (SIGSEGV) when onnxruntime was imported after it; the
    # daemon imports both, in an order that depends on the entry point
    got = subprocess.run([sys.executable, "-c", f"import {first}; import {second}; print('both')"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and got.stdout.strip() == "both", got.stderr[-2000:]
