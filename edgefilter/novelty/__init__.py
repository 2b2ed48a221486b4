"""The novelty filter: keep a frame when it is far (cosine) from every frame kept recently.

Kept embeddings live in a :class:`RollingIndex` per scope (one per source, or one shared by all
sources) bounded by the window's size and age. Only kept frames ever enter an index, so the index
stays small and its cost is paid per keep, not per frame. A micro-batch may interleave sources; frames
are decided in order, exactly as if they came one by one.

One rule per module:

- ``index``: the rolling usearch index and batched exact probes of it;
- ``whole``: the whole-image rule (novel when farther than the threshold from every kept frame) and
  the noise floor that tells a still scene from a moving one;
- ``regional``: the regional rule (a small new thing in a still view; on by default);
- ``view``: where a frame changed against the scene before, from luma and colour thumbnails (best view, pre-gate);
- ``known``: scenes a source has shown (thumbnails of its latest keeps and of frames seen lately): a
  frame whose pixels match one is not new, whatever an exposure step did to its embedding;
- ``events``: which frame of an event is kept (the settled new state, or the best view of a thing that
  passed through);
- ``ground``: where a moving camera's frames lie on the ground it shows, and what of it no kept frame shows (a
  camera that moves keeps a frame as such ground leaves its view, none over ground kept before);
- ``budget``: the keep-rate controller; ``persistence``: saving and restoring;
- ``filter``: :class:`NoveltyFilter`, which wires them into one :class:`Decision` per frame.

Held frames (event mode) come back through :meth:`NoveltyFilter.released` (kept) or
:meth:`NoveltyFilter.discarded` (not kept), each exactly once, so the caller knows when it may free
their pixels.
"""
from .filter import GLOBAL_SCOPE, Decision, NoveltyFilter
from .index import CANDIDATES, INDEX_DTYPE, Probe, RollingIndex, unit
from .persistence import STATE_NAME, STATE_VERSION

__all__ = ["Decision", "NoveltyFilter", "RollingIndex", "Probe", "unit", "GLOBAL_SCOPE",
           "CANDIDATES", "INDEX_DTYPE", "STATE_NAME", "STATE_VERSION"]
