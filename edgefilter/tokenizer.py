"""CLIP's byte-pair tokenizer, for prompts (``rules.keep_prompts``) and ``edgefilter search --text``.

A port of OpenAI CLIP's ``simple_tokenizer`` as open_clip ships it (MIT licence, Copyright (c) 2021
OpenAI), without its two extra packages: ``ftfy`` (mojibake repair; prompts are typed by people, and
HTML entities are still unescaped) and ``regex`` (its ``\\p{L}``/``\\p{N}`` classes become the standard
library's ``[^\\W\\d_]`` and ``\\d``, the same for letters and decimal digits). The vocabulary is the
merges file ``bpe_simple_vocab_16e6.txt.gz`` (a copy in models/clip/, from the open-clip-torch wheel);
the CLIP card names it with its sha256.
"""
from __future__ import annotations

import gzip
import html
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

MERGES = 49152 - 256 - 2  # the merges CLIP's vocabulary of 49,408 tokens is built from
START, END = "<start_of_text>", "<end_of_text>"


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """Every byte as a printable character, so BPE never sees whitespace or control bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


class ClipTokenizer:
    def __init__(self, vocab_path: str | Path, context_length: int = 77):
        merges = gzip.open(vocab_path).read().decode("utf-8").split("\n")[1:MERGES + 1]
        pairs = [tuple(m.split()) for m in merges]
        symbols = list(_bytes_to_unicode().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(p) for p in pairs] + [START, END]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(pairs)}
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self.context_length = context_length
        self.vocab_size = len(self.encoder)
        self._byte_encoder = _bytes_to_unicode()
        self._cache: dict[str, list[str]] = {}
        self._pattern = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)

    def _bpe(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        text = " ".join(html.unescape(html.unescape(text)).split()).lower()
        ids = []
        for token in self._pattern.findall(text):
            token = "".join(self._byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(token))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        """int64 (N, context_length): start, the text's tokens, end, zeros; a long text is cut (end kept)."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id] + self.encode(text) + [self.end_id]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length]
                ids[-1] = self.end_id
            out[row, :len(ids)] = ids
        return out
