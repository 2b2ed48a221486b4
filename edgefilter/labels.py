"""Labels from the default model's ImageNet classifier: top-5 names, and coarse words a camera user writes.

The default regions graph also outputs the classifier's softmax over the 1,000 ImageNet-1k classes
(``probabilities``; the card's ``classes.names`` says which is which). ``labels.json`` beside this
module holds the class names and a small hand-made mapping of classes to coarse groups (``car``,
``truck``, ``dog``, ``bird``, ``vehicle``...). A group's score is the sum of its classes' probabilities,
so "some kind of car" scores high even when the classifier hesitates between sports car and convertible.

ImageNet-1k has no person class: a frame of a person is labelled with what the person wears or holds
(``sweatshirt``, ``jersey``...), so no rule here can ask for people.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

LABELS_FILE = Path(__file__).with_name("labels.json")
TOP_K = 5


class Vocabulary:
    """Class names (in output order) and coarse groups; names match case-insensitively."""

    def __init__(self, classes: Sequence[str], groups: dict[str, Sequence[int]] | None = None):
        self.classes = list(classes)
        self.groups = {k: np.asarray(v, dtype=np.int64) for k, v in (groups or {}).items()}
        self._by_name: dict[str, np.ndarray] = {n.lower(): np.array([i]) for i, n in enumerate(self.classes)}
        # A group word wins over a class of the same name ("traffic light" is both): it is the wider one.
        self._by_name.update({k.lower(): v for k, v in self.groups.items()})

    @property
    def names(self) -> list[str]:
        """Every name a rule may use: group words, then class names."""
        return sorted(self.groups) + self.classes

    def indices(self, name: str) -> np.ndarray:
        """The class indices a label name stands for; KeyError when unknown."""
        return self._by_name[name.lower()]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def nearest(self, name: str, n: int = 3) -> list[str]:
        """The valid names closest to a misspelt one (for config errors)."""
        lowered = {k: k for k in self._by_name}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
        originals = {n.lower(): n for n in self.names}
        return [originals[c] for c in close]

    def problem(self, name: str) -> str | None:
        """None for a valid label name, else a message naming the nearest valid names."""
        if name in self:
            return None
        near = self.nearest(name)
        hint = f"; nearest: {', '.join(repr(n) for n in near)}" if near else ""
        groups = ", ".join(sorted(self.groups))
        return (f"unknown label {name!r}{hint} (a group word: {groups}; or one of the "
                f"{len(self.classes)} class names in edgefilter/labels.json)")

    def score(self, probabilities: np.ndarray, name: str) -> float:
        """The probability of a label: its class's, or the sum over a group's classes."""
        return float(probabilities[self.indices(name)].sum())

    def top(self, probabilities: np.ndarray, k: int = TOP_K) -> list[dict]:
        """The k most probable classes as ``[{"name", "score"}]``, best first (the header's ``labels``)."""
        p = np.asarray(probabilities, dtype=np.float32)
        k = min(k, p.size)
        best = np.argpartition(-p, k - 1)[:k]
        best = best[np.argsort(-p[best], kind="stable")]
        return [{"name": self.classes[i], "score": round(float(p[i]), 4)} for i in best]


@lru_cache(maxsize=1)
def imagenet() -> Vocabulary:
    """The committed ImageNet-1k names and groups."""
    data = json.loads(LABELS_FILE.read_text(encoding="utf-8"))
    return Vocabulary(data["classes"], data["groups"])


def vocabulary_for(class_names: Sequence[str]) -> Vocabulary:
    """A model's vocabulary: ImageNet's groups apply only when its classes are ImageNet's."""
    base = imagenet()
    if list(class_names) == base.classes:
        return base
    return Vocabulary(class_names)
