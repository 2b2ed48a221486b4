"""``edgefilter search``: find kept frames again in a folder written by ``edgefilter subscribe``.

Two ways to ask:

- ``--image FILE``: the frames whose embedding is nearest to the photo's (cosine), through a usearch
  index built from the ``*.npy`` embeddings the subscriber stored beside the frames (the daemon must run
  with ``publish.embeddings: true``). The index is cached in the folder (``search.usearch`` and
  ``search.json``) and rebuilt when the manifest has grown or the model changed.
- ``--text "..."``: the frames nearest to a sentence, with the CLIP pair of ``rules.clip_card`` (or
  ``--clip-card``): its image encoder embeds the stored JPEGs once (index cached as ``search-clip.*``),
  its text encoder the query.
- ``--label NAME``: the frames whose header ``labels`` (the default model's top 5) give the label the most
  probability; a group word (``car``, ``dog``, ``vehicle``) sums its classes among the five.

Results print as JSON lines ``{"path", "source", "ts", "score"}``, best first (score: cosine similarity,
or the label's probability); ``--html FILE`` also writes a contact sheet.
"""
from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EXIT_OK, EXIT_USAGE, EdgefilterError
from .labels import imagenet

INDEX_STEM = "search"  # the daemon's embeddings: search.usearch + search.json
CLIP_INDEX_STEM = "search-clip"  # CLIP image embeddings of the stored JPEGs


class SearchError(EdgefilterError):
    """A search that cannot run: a missing folder, no embeddings, another model."""


@dataclass(frozen=True)
class Kept:
    path: str  # relative to the folder
    source: str
    ts: float
    model: str
    labels: list
    embedding_file: str | None


def read_manifest(folder: Path) -> list[Kept]:
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        raise SearchError(f"{manifest} not found: search reads a folder written by `edgefilter subscribe --out`")
    kept = []
    with open(manifest, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                h = json.loads(line)
                kept.append(Kept(str(h["file"]), str(h["source"]), float(h["ts"]), str(h.get("model", "")),
                                 list(h.get("labels") or []), h.get("embedding_file")))
            except (ValueError, KeyError, TypeError) as exc:
                # A subscriber killed mid-line leaves a partial last line: skip it, say where.
                print(f"edgefilter search: {manifest}:{n}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    return kept


def _cached_index(folder: Path, stem: str, meta: dict, keys: list[int], vectors):
    """A usearch index over ``vectors()`` (keys: manifest positions), cached in the folder as ``stem``.*
    and rebuilt when ``meta`` (what it was built from) differs."""
    from usearch.index import Index

    meta_path, index_path = folder / f"{stem}.json", folder / f"{stem}.usearch"
    if meta_path.is_file() and index_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == meta:
                cached = Index.restore(str(index_path), view=False)
                if cached is not None:
                    return cached
        except (ValueError, RuntimeError, OSError):
            pass  # a damaged cache is rebuilt
    matrix = vectors()
    index = Index(ndim=matrix.shape[1], metric="cos", dtype="f32")
    index.add(np.asarray(keys, dtype=np.uint64), matrix)
    index.save(str(index_path))
    meta_path.write_text(json.dumps(meta))
    return index


def _index(folder: Path, kept: list[Kept]):
    """The index over the embeddings the subscriber stored; and the model that made them."""
    with_vectors = [i for i, k in enumerate(kept) if k.embedding_file]
    if not with_vectors:
        raise SearchError(f"{folder}: no stored embeddings; run the daemon with publish.embeddings: true "
                          "and record with `edgefilter subscribe --out`")
    models = {kept[i].model for i in with_vectors}
    if len(models) > 1:
        raise SearchError(f"{folder}: frames from several models ({', '.join(sorted(models))}); their "
                          "embeddings cannot be compared")
    meta = {"entries": len(kept), "indexed": len(with_vectors), "model": models.pop()}
    index = _cached_index(folder, INDEX_STEM, meta, with_vectors, lambda: np.stack(
        [np.load(folder / kept[i].embedding_file).astype(np.float32) for i in with_vectors]))
    return index, meta


def _nearest(index, kept: list[Kept], query: np.ndarray, k: int) -> list[tuple[Kept, float]]:
    matches = index.search(query, min(k, len(index)))
    return [(kept[int(key)], round(1.0 - float(dist), 5)) for key, dist in zip(matches.keys, matches.distances)]


def by_text(folder: Path, text: str, k: int, pair) -> list[tuple[Kept, float]]:
    """The k kept frames nearest to a sentence in a CLIP pair's space (``pair``: edgefilter.clip.ClipPair)."""
    import cv2

    from .preprocess import preprocess

    kept = read_manifest(folder)
    if not kept:
        raise SearchError(f"{folder}: no kept frames in the manifest")

    def clip_vectors() -> np.ndarray:
        out = []
        for item in kept:
            bgr = cv2.imread(str(folder / item.path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SearchError(f"{folder / item.path}: listed in the manifest but not a readable image")
            out.append(pair.embed_frames(preprocess(bgr, pair.image.input_size, "RGB")[None])[0])
        return np.stack(out)

    meta = {"entries": len(kept), "model": pair.id}
    index = _cached_index(folder, CLIP_INDEX_STEM, meta, list(range(len(kept))), clip_vectors)
    return _nearest(index, kept, pair.embed_texts([text])[0], k)


def by_image(folder: Path, image: Path, k: int, embedder) -> list[tuple[Kept, float]]:
    """The k kept frames nearest to a photo, embedded with ``embedder`` (the daemon's model)."""
    import cv2

    from .preprocess import preprocess

    kept = read_manifest(folder)
    index, meta = _index(folder, kept)
    if meta["model"] and meta["model"] != embedder.model_id:
        raise SearchError(f"{folder}: frames were embedded by {meta['model']}, the query by {embedder.model_id}; "
                          "pass the daemon's config with -c")
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SearchError(f"--image {image}: not an image file OpenCV can read")
    query = embedder.embed(preprocess(bgr, embedder.input_size, embedder.colour)[None]).vectors[0]
    return _nearest(index, kept, query, k)


def by_label(folder: Path, label: str, k: int) -> list[tuple[Kept, float]]:
    """The k kept frames whose top-5 labels give ``label`` the most probability (none below 0.01)."""
    vocabulary = imagenet()
    problem = vocabulary.problem(label)
    if problem is not None:
        raise SearchError(f"--label: {problem}")
    members = {vocabulary.classes[i] for i in vocabulary.indices(label)}
    scored = []
    for item in read_manifest(folder):
        score = sum(float(x.get("score", 0.0)) for x in item.labels if isinstance(x, dict) and x.get("name") in members)
        if score >= 0.01:
            scored.append((item, round(score, 4)))
    scored.sort(key=lambda pair: -pair[1])
    return scored[:k]


def contact_sheet(results: list[tuple[Kept, float]], folder: Path, out: Path, title: str) -> None:
    cells = "\n".join(
        f'<figure><img src="{html.escape(str((folder / k.path).resolve()))}" width="240">'
        f"<figcaption>{html.escape(k.source)} {k.ts:.2f}<br>score {score}</figcaption></figure>"
        for k, score in results)
    out.write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                   "<style>figure{display:inline-block;margin:4px;font:12px sans-serif}</style>"
                   f"<h1>{html.escape(title)}</h1>\n{cells}\n", encoding="utf-8")


def cli_search(folder: str, image: str | None, label: str | None, k: int, html_out: str | None,
               config: str | None, text: str | None = None, clip_card: str | None = None) -> int:
    root = Path(folder)
    if k < 1:
        print("edgefilter search: -k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        if image is not None:
            from .config import default_config, load_config
            from .model import Embedder

            cfg = load_config(config) if config else default_config()
            results = by_image(root, Path(image), k, Embedder.from_config(cfg))
            title = f"nearest to {image}"
        elif text is not None:
            from .clip import ClipPair
            from .config import load_config, resolve_path

            if clip_card is None:
                cfg = load_config(config) if config else None
                if cfg is None or not cfg.rules.clip_card:
                    raise SearchError("--text needs a CLIP pair: --clip-card CARD, or -c CONFIG with rules.clip_card")
                clip_card = str(resolve_path(cfg, cfg.rules.clip_card))
            results = by_text(root, text, k, ClipPair(clip_card, providers="cpu"))
            title = f"text {text!r}"
        else:
            assert label is not None
            results = by_label(root, label, k)
            title = f"label {label}"
    except EdgefilterError as exc:
        print(f"edgefilter search: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for item, score in results:
        print(json.dumps({"path": str(root / item.path), "source": item.source, "ts": item.ts, "score": score}))
    if html_out:
        contact_sheet(results, root, Path(html_out), title)
        print(f"contact sheet: {html_out}", file=sys.stderr)
    return EXIT_OK
