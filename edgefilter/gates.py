"""Cheap per-frame checks that run in the capture thread, before the model.

:class:`QualityGate` drops frames no one wants (too dark, too bright, blurred,
frozen, corrupt), each counted under its reason. :class:`ChangeGate` is the
pre-gate: a frame whose grey thumbnail is certainly the same as the last frame
*embedded for a change* skips the model and reuses the last embedding, with a bound on how
many frames in a row may skip (a frame embedded for that bound alone leaves the reference).
"Certainly the same" is two tests: the brightness-normalised mean difference is small, and no
blob of pixels changed beyond exposure, shake and noise (``novelty.view``: the same test that
decides whether a scene went back to how it was).

Both keep per-source state and are used from that source's capture thread only.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .config import GatesConfig
from .novelty.view import grey_image, unchanged

THUMB_SIZE = (64, 36)  # (w, h): small enough to cost ~0.1 ms, large enough to see a hand enter


def grey_thumbnail(image: np.ndarray) -> np.ndarray:
    """A float32 grey thumbnail of ``THUMB_SIZE`` (area-averaged, which also averages sensor noise away)."""
    return cv2.resize(grey_image(image), THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def normalise_brightness(thumb: np.ndarray) -> np.ndarray:
    """Remove global gain and offset, so auto-exposure steps and flicker do not count as change."""
    mean = float(thumb.mean())
    std = float(thumb.std())
    return (thumb - mean) * (48.0 / max(std, 4.0))  # 48: a typical std, keeps the scale in grey levels


def corrupt(image: Any) -> bool:
    """Not a frame the pipeline can read: not uint8 pixels of 8x8 or more in 1, 3 or 4 channels."""
    return (image is None or not isinstance(image, np.ndarray) or image.dtype != np.uint8
            or image.ndim not in (2, 3) or image.shape[0] < 8 or image.shape[1] < 8
            or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)))


class QualityGate:
    """Drops unusable frames; ``check`` returns the drop reason or None."""

    def __init__(self, cfg: GatesConfig):
        self.cfg = cfg
        self._previous: np.ndarray | None = None

    def check(self, image: np.ndarray | None, thumb: np.ndarray | None = None,
              work: np.ndarray | None = None) -> str | None:
        """``thumb``: the frame's grey thumbnail and ``work``: its working copy
        (:func:`~edgefilter.preprocess.working_copy`), where the caller has them already."""
        cfg = self.cfg
        if corrupt(image):
            return "corrupt"
        if not cfg.enabled:
            return None
        if cfg.frozen:
            previous, self._previous = self._previous, image
            # every 16th row first: a live frame differs there (noise), and the whole compare of a 1080p frame
            # costs 0.45 ms; only a repeated frame pays it
            if (previous is not None and previous.shape == image.shape
                    and np.array_equal(previous[::16], image[::16]) and np.array_equal(previous, image)):
                return "frozen"
        if thumb is None:
            thumb = grey_thumbnail(image)
        level = float(thumb.mean())
        if level < cfg.dark:
            return "dark"
        if level > cfg.bright:
            return "bright"
        if cfg.blur > 0:
            sharpness = float(cv2.Laplacian(thumb_for_blur(image if work is None else work), cv2.CV_32F).var())
            if sharpness < cfg.blur:
                return "blurred"
        return None

    def reconfigure(self, cfg: GatesConfig) -> None:
        self.cfg = cfg


def thumb_for_blur(image: np.ndarray) -> np.ndarray:
    """Grey image at 320 px wide: blur is judged at a fixed scale, whatever the camera resolution."""
    grey = grey_image(image)
    h, w = grey.shape[:2]
    if w > 320:
        grey = cv2.resize(grey, (320, max(1, round(h * 320 / w))), interpolation=cv2.INTER_AREA)
    return grey


class ChangeGate:
    """Pre-gate: skip the model for frames certainly unchanged since the last one embedded for a change."""

    def __init__(self, cfg: GatesConfig):
        self.cfg = cfg
        self._reference: np.ndarray | None = None  # normalised thumbnail of the last frame embedded for a change
        self._reference_view: np.ndarray | None = None  # its view thumbnail
        self._skipped = 0

    @property
    def active(self) -> bool:
        return self.cfg.skip_unchanged > 0

    def difference(self, thumb: np.ndarray) -> float | None:
        if self._reference is None:
            return None
        return float(np.abs(normalise_brightness(thumb) - self._reference).mean())

    def should_skip(self, thumb: np.ndarray, view: np.ndarray | None = None) -> bool:
        """True when this frame may reuse the last embedding; otherwise it is embedded, and it becomes the new
        reference unless it was embedded only because ``max_skip`` frames were skipped.

        ``view`` (``novelty.view.view_thumbnail``) adds the test that no blob of pixels changed; without
        it only the mean difference decides.
        """
        if not self.active:
            return False
        diff = self.difference(thumb)
        same = (diff is not None and diff < self.cfg.skip_unchanged
                and (view is None or self._reference_view is None or unchanged(view, self._reference_view)))
        if same and self._skipped < self.cfg.max_skip:
            self._skipped += 1
            return True
        if same:
            # embedded only because max_skip frames in a row were skipped: the scene is still the reference's, and the
            # reference stays the frame its still scene began with. The filter asks its stillness of that frame too
            # (the still run's first), and finds this answer for the same two thumbnails in view.unchanged's memo:
            # one change test a frame on an unchanged scene, not two (benchmarks/RESULTS.md, 2026-12-05)
            self._skipped = 0
            return False
        self._reference = normalise_brightness(thumb)
        self._reference_view = view
        self._skipped = 0
        return False

    def reconfigure(self, cfg: GatesConfig) -> None:
        self.cfg = cfg
