"""Keep and drop rules by label: a stage after the novelty filter's decisions.

The novelty filter says "new" or "not new". A team often also wants every so often a frame of
something it asked for (``rules.keep_labels``: a car, a dog), and never frames of something it does
not want (``rules.drop_labels``). These rules run on the novelty decision, so they leave the rolling
index alone: a frame a rule keeps is published (reason ``"label"``, ``rule`` in its header) but does not
become a reference for later novelty decisions, and a novelty keep a drop rule removes stays in the index
(the view did change; it is just not wanted downstream).

A label matches when its probability (a group word: the sum over its classes) reaches
``rules.label_min_score``. ``keep_labels`` is rate-limited per source and label by
``rules.keep_labels_interval_s`` on the frames' capture times; every published frame with the label
counts, so a busy novelty filter leaves the rule little to add.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import RulesConfig
from .errors import ConfigError
from .labels import Vocabulary


@dataclass(frozen=True)
class Verdict:
    """What the rules made of a novelty decision. ``rule`` is None when the decision stands."""

    keep: bool
    reason: str | None
    rule: str | None = None


class KeepRules:
    """The ``rules:`` section applied to one decision at a time (called from the filter thread)."""

    def __init__(self, cfg: RulesConfig, vocabulary: Vocabulary | None, model_id: str = "the model"):
        self.vocabulary = vocabulary
        self._model_id = model_id
        self._last_kept: dict[tuple[str, str], float] = {}  # (source, label) -> capture time of its last keep
        self.reconfigure(cfg)

    def reconfigure(self, cfg: RulesConfig) -> None:
        """Check the rules against the model's labels (ConfigError naming the key), then use them."""
        named = [(f"rules.keep_labels[{i}]", n) for i, n in enumerate(cfg.keep_labels)] + \
                [(f"rules.drop_labels[{i}]", n) for i, n in enumerate(cfg.drop_labels)]
        if named and self.vocabulary is None:
            raise ConfigError(f"{named[0][0]}: label rules need class probabilities, but the model "
                              f"{self._model_id} has none (its card has no 'classes'); use the default "
                              "models/efficientnet_lite0_regions.onnx or remove the rule")
        for key, name in named:
            assert self.vocabulary is not None
            problem = self.vocabulary.problem(name)
            if problem is not None:
                raise ConfigError(f"{key}: {problem} (model {self._model_id})")
        self.cfg = cfg

    @property
    def active(self) -> bool:
        return bool(self.cfg.keep_labels or self.cfg.drop_labels or self.cfg.keep_prompts)

    def _matches(self, probabilities: np.ndarray, names: list[str]) -> list[str]:
        assert self.vocabulary is not None
        return [n for n in names if self.vocabulary.score(probabilities, n) >= self.cfg.label_min_score]

    def matched_prompts(self, prompt_scores: np.ndarray | None) -> list[dict]:
        """The prompts a frame matches, ``[{"text", "score"}]`` (the header's ``prompts``)."""
        if prompt_scores is None:
            return []
        return [{"text": p.text, "score": round(float(s), 4)}
                for p, s in zip(self.cfg.keep_prompts, prompt_scores) if s >= p.threshold]

    def decide(self, source: str, ts: float, keep: bool, reason: str | None,
               probabilities: np.ndarray | None, prompt_scores: np.ndarray | None = None) -> Verdict:
        """Apply the rules to the novelty filter's ``keep``/``reason`` for a frame of ``source`` at ``ts``.
        ``prompt_scores``: the frame's similarity to each of ``keep_prompts``, in order."""
        if not self.active:
            return Verdict(keep, reason)
        has_labels = probabilities is not None
        dropped = self._matches(probabilities, self.cfg.drop_labels) if has_labels else []
        if dropped:
            # Only a removed keep is the rule's doing; a frame that was not kept anyway stays silent.
            return Verdict(False, None, f"drop_labels:{dropped[0]}" if keep else None)
        wanted = [("label", "keep_labels", n, self.cfg.keep_labels_interval_s)
                  for n in (self._matches(probabilities, self.cfg.keep_labels) if has_labels else [])]
        wanted += [("prompt", "keep_prompts", p["text"], self.cfg.keep_prompts_interval_s)
                   for p in self.matched_prompts(prompt_scores)]
        if keep:
            for _, rule, name, _ in wanted:
                self._last_kept[(source, f"{rule}:{name}")] = ts
            return Verdict(keep, reason)
        for why, rule, name, interval in wanted:
            last = self._last_kept.get((source, f"{rule}:{name}"))
            if last is None or ts - last >= interval or ts < last:
                for _, other_rule, other, _ in wanted:  # the published frame carries all of them
                    self._last_kept[(source, f"{other_rule}:{other}")] = ts
                return Verdict(True, why, f"{rule}:{name}")
        return Verdict(False, None)
