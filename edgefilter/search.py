"""``edgefilter search``: find kept frames again in a folder written by ``edgefilter subscribe``.

Two ways to ask:

- ``--image FILE``: the frames whose embedding is nearest to the photo's (cosine), through a usearch
  index built from the ``*.npy`` embeddings the subscriber stored beside the frames (the daemon must run
  with ``publish.embeddings: true``). The index is cached in the folder (``search.usearch`` and
  ``search.json``) and rebuilt when the manifest has grown or the model changed.
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

INDEX_FILE = "search.usearch"
INDEX_META = "search.json"


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


def _index(folder: Path, kept: list[Kept]):
    """The usearch index over the stored embeddings (keys: manifest positions), cached in the folder."""
    from usearch.index import Index

    with_vectors = [i for i, k in enumerate(kept) if k.embedding_file]
    if not with_vectors:
        raise SearchError(f"{folder}: no stored embeddings; run the daemon with publish.embeddings: true "
                          "and record with `edgefilter subscribe --out`")
    models = {kept[i].model for i in with_vectors}
    if len(models) > 1:
        raise SearchError(f"{folder}: frames from several models ({', '.join(sorted(models))}); their "
                          "embeddings cannot be compared")
    meta = {"entries": len(kept), "indexed": len(with_vectors), "model": models.pop()}
    meta_path, index_path = folder / INDEX_META, folder / INDEX_FILE
    if meta_path.is_file() and index_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == meta:
                cached = Index.restore(str(index_path), view=False)
                if cached is not None:
                    return cached, meta
        except (ValueError, RuntimeError, OSError):
            pass  # a damaged cache is rebuilt
    vectors = np.stack([np.load(folder / kept[i].embedding_file).astype(np.float32) for i in with_vectors])
    index = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    index.add(np.asarray(with_vectors, dtype=np.uint64), vectors)
    index.save(str(index_path))
    meta_path.write_text(json.dumps(meta))
    return index, meta


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
    matches = index.search(query, min(k, len(index)))
    return [(kept[int(key)], round(1.0 - float(dist), 5)) for key, dist in zip(matches.keys, matches.distances)]


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
               config: str | None) -> int:
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
