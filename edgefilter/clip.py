"""A CLIP pair supplied by the user: image and text encoders that share one embedding space.

``rules.keep_prompts`` keeps frames that look like a sentence ("a forklift", "a red car"), and
``edgefilter search --text`` finds stored frames by one. No registry package ships CLIP weights, so
edgefilter ships the machinery: ``models/export_clip.py`` writes the pair and its card from an
open_clip model wherever its weights can be reached. The card (JSON or YAML) holds:

- ``id``; ``image``: a normal model card's ``file``, ``sha256``, ``input`` and ``output`` (uint8 NHWC in,
  L2-normalised embedding out);
- ``text``: ``file``, ``sha256``, ``input {name, dtype: int64, context_length}``, ``output {name, dim}``;
- ``tokenizer``: ``kind: clip-bpe``, ``vocab`` (the BPE merges file), its ``sha256``, ``context_length``.

Every file is checked against its sha256 at load time, and the graphs against the card.
Prompts are embedded once, at start and on reload, never per frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ModelError
from .model import Embedder, _check_file, _get, card_from_mapping, read_card_file
from .tokenizer import ClipTokenizer


class ClipPair:
    def __init__(self, card_path: str | Path, providers: str = "auto", threads: int = 0):
        import onnxruntime as ort

        path = Path(card_path)
        d = read_card_file(path)
        kind = d.get("kind")
        if kind != "clip":
            raise ModelError(f"CLIP card {path}: field 'kind' must be 'clip', got {kind!r}")
        self.id = _get(d, "id", str, path)
        image = _get(d, "image", dict, path)
        image_card = card_from_mapping(image, path, card_id=self.id)
        self.image = Embedder(image_card.model_path, providers=providers, threads=threads, card=image_card)
        self.dim = self.image.dim

        vocab = path.parent / _get(d, "tokenizer.vocab", str, path)
        _check_file(vocab, _get(d, "tokenizer.sha256", str, path).lower())
        context = _get(d, "tokenizer.context_length", int, path)
        self.tokenizer = ClipTokenizer(vocab, context)

        text_file = path.parent / _get(d, "text.file", str, path)
        _check_file(text_file, _get(d, "text.sha256", str, path).lower())
        self._text_input = _get(d, "text.input.name", str, path)
        if _get(d, "text.output.dim", int, path) != self.dim:
            raise ModelError(f"CLIP card {path}: 'text.output.dim' must equal 'image.output.dim' ({self.dim})")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads > 0:
            so.intra_op_num_threads = threads
        try:
            self._text = ort.InferenceSession(str(text_file), so, providers=[self.image.provider])
        except Exception as exc:  # ORT's own exception types
            raise ModelError(f"CLIP text encoder {text_file} cannot be loaded by onnxruntime: {exc}") from None
        inputs = {i.name: i for i in self._text.get_inputs()}
        if self._text_input not in inputs or inputs[self._text_input].type != "tensor(int64)":
            raise ModelError(f"CLIP text encoder {text_file}: no int64 input {self._text_input!r} "
                             f"(card field 'text.input.name'); inputs are {sorted(inputs)}")
        self._text_output = _get(d, "text.output.name", str, path)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (N, dim), L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        v = self._text.run([self._text_output], {self._text_input: self.tokenizer(list(texts))})[0]
        v = np.asarray(v, dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed_frames(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, h, w, 3) model inputs of any size -> float32 (N, dim) image embeddings."""
        import cv2

        w, h = self.image.input_size
        if rgb.shape[1:3] != (h, w):
            rgb = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA) for x in rgb])
        if self.image.colour == "BGR":
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        return self.image.embed(rgb).vectors


class PromptMatcher:
    """The configured prompts, embedded once; scores every frame of a batch against them."""

    def __init__(self, pair: ClipPair):
        self.pair = pair
        self.texts: list[str] = []
        self.thresholds = np.zeros(0, np.float32)
        self._vectors = np.zeros((0, pair.dim), np.float32)

    def set_prompts(self, prompts: Sequence) -> None:
        """``prompts``: items with ``text`` and ``threshold`` (rules.keep_prompts). Embeds them now."""
        texts = [p.text for p in prompts]
        vectors = self.pair.embed_texts(texts)  # before any state changes: a failure keeps the old prompts
        self.texts, self._vectors = texts, vectors
        self.thresholds = np.array([p.threshold for p in prompts], np.float32)

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        """float32 (N, prompts): cosine similarity of each frame to each prompt."""
        if not self.texts:
            return np.zeros((len(rgb), 0), np.float32)
        return self.pair.embed_frames(rgb) @ self._vectors.T
