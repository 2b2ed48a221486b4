#!/usr/bin/env python3
"""Export an open_clip model to the CLIP pair edgefilter runs for ``rules.keep_prompts``.

    python models/export_clip.py --model ViT-B-32 --pretrained /path/to/weights.bin --out models/clip
    python models/export_clip.py --model-config tiny.json --pretrained none --out /tmp/clip   # random weights

Writes ``<name>_image.onnx`` (uint8 RGB NHWC ``images`` at the model's image size -> L2-normalised
``embedding``; the scaling to 0..1 and the model's mean/std are inside the graph), ``<name>_text.onnx``
(int64 ``tokens`` (N, context_length) from CLIP's tokenizer -> L2-normalised ``embedding``), a copy of the
tokenizer vocabulary and the card ``<name>.json`` with every file's sha256.

No registry package ships CLIP weights: ``--pretrained`` takes whatever open_clip can reach (a file
path, or a tag open_clip downloads where the machine can reach its hub) or ``none`` for random weights,
which prove the machinery but match nothing: similarity thresholds must be set on real weights.

Needs torch, torchvision and open-clip-torch (``pip install '.[clip-export]'``), export time only.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
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

from edgefilter.model import file_sha256  # noqa: E402
from edgefilter.tokenizer import ClipTokenizer  # noqa: E402

OPSET = 17
VOCAB = HERE / "clip" / "bpe_simple_vocab_16e6.txt.gz"


def import_open_clip():
    """open_clip, even where torchvision's compiled ops do not load.

    PyPI's torchvision wheel is built against CUDA torch; beside the CPU build of torch its ops library
    fails to load and ``import torchvision`` then stops at registering a fake kernel for ``nms``.
    open_clip needs none of those ops (only transforms and a module class), so the two op schemas are
    declared empty and the import retried."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import_open_clip.keep = lib  # the schemas live as long as the library object
    import open_clip

    return open_clip


class ImageGraph(nn.Module):
    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        v = self.model.encode_image((x - self.mean) / self.std)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class TextGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        v = self.model.encode_text(tokens)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _export(module: nn.Module, dummy: torch.Tensor, path: Path, input_name: str) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(module, (dummy,), buf, dynamo=False, opset_version=OPSET, input_names=[input_name],
                          output_names=["embedding"], dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
                          do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def export_clip(model_name: str, pretrained: str | None, out: Path, name: str | None = None,
                model_config: Path | None = None) -> Path:
    """Export and verify; returns the card's path."""
    open_clip = import_open_clip()
    if model_config is not None:
        open_clip.add_model_config(model_config)
        model_name = model_config.stem
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=pretrained).eval()
    cfg = open_clip.get_model_config(model_name)
    size = cfg["vision_cfg"]["image_size"]
    size = size if isinstance(size, int) else size[0]
    context = cfg.get("text_cfg", {}).get("context_length", 77)
    mean = getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
    std = getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
    name = name or model_name.replace("/", "-")
    out.mkdir(parents=True, exist_ok=True)
    image_path, text_path = out / f"{name}_image.onnx", out / f"{name}_text.onnx"
    vocab = out / VOCAB.name
    if vocab.resolve() != VOCAB.resolve():
        shutil.copyfile(VOCAB, vocab)
    tokenizer = ClipTokenizer(vocab, context)

    image_graph, text_graph = ImageGraph(model, mean, std).eval(), TextGraph(model).eval()
    _export(image_graph, torch.zeros(1, size, size, 3, dtype=torch.uint8), image_path, "images")
    _export(text_graph, torch.from_numpy(tokenizer(["a photo"])), text_path, "tokens")

    # Verify: ONNX equals torch on random images and real prompts; our tokenizer equals open_clip's.
    prompts = ["a photo of a car", "a dog on the grass", "a forklift in a warehouse"]
    tokens = tokenizer(prompts)
    if not np.array_equal(tokens, open_clip.get_tokenizer(model_name)(prompts).numpy()):
        raise SystemExit("export_clip: edgefilter's tokenizer disagrees with open_clip's for this model")
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        ref_image = image_graph(torch.from_numpy(images)).numpy()
        ref_text = text_graph(torch.from_numpy(tokens)).numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    got_image = ort.InferenceSession(str(image_path), opts, providers=["CPUExecutionProvider"]).run(
        None, {"images": images})[0]
    got_text = ort.InferenceSession(str(text_path), opts, providers=["CPUExecutionProvider"]).run(
        None, {"tokens": tokens})[0]
    diff = max(float(np.abs(got_image - ref_image).max()), float(np.abs(got_text - ref_text).max()))
    if diff > 1e-3:
        raise SystemExit(f"export_clip: ONNX disagrees with torch (max abs difference {diff:.2e})")

    dim = int(ref_image.shape[1])
    digest = file_sha256(image_path)
    card = {
        "id": f"clip-{name}@{digest[:12]}",
        "kind": "clip",
        "image": {"file": image_path.name, "sha256": digest,
                  "input": {"name": "images", "size": [size, size], "layout": "NHWC", "dtype": "uint8",
                            "colour": "RGB"},
                  "output": {"name": "embedding", "dim": dim, "normalised": True}},
        "text": {"file": text_path.name, "sha256": file_sha256(text_path),
                 "input": {"name": "tokens", "dtype": "int64", "context_length": context},
                 "output": {"name": "embedding", "dim": dim, "normalised": True}},
        "tokenizer": {"kind": "clip-bpe", "vocab": vocab.name, "sha256": file_sha256(vocab),
                      "context_length": context},
        "preprocessing": "resize the whole frame to the input size (no crop), RGB; /255 and the model's "
                         "mean/std are inside the graph",
        "provenance": {"open_clip": version("open-clip-torch"), "model": model_name,
                       "pretrained": pretrained or "none (random weights)", "torch": torch.__version__.split("+")[0],
                       "opset": OPSET, "script": "models/export_clip.py"},
        "licence": "the weights' own; tokenizer vocabulary: MIT (OpenAI CLIP, via open-clip-torch)",
        "verification": {"max_abs_diff_vs_pytorch": float(f"{diff:.2e}"), "tokenizer_matches_open_clip": True},
    }
    card_path = out / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ViT-B-32", help="open_clip architecture name")
    ap.add_argument("--model-config", type=Path, default=None, help="an architecture JSON (its stem becomes the name)")
    ap.add_argument("--pretrained", default="none", help="weights file or open_clip tag; 'none': random weights")
    ap.add_argument("--name", default=None, help="file name stem (default: the model name)")
    ap.add_argument("--out", type=Path, default=HERE / "clip", help="output folder (default: models/clip)")
    args = ap.parse_args()
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    card = export_clip(args.model, pretrained, args.out, args.name, args.model_config)
    print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
