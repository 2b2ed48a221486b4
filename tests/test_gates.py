from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgefilter.config import GatesConfig
from edgefilter.novelty.view import view_thumbnail
from edgefilter.gates import ChangeGate, QualityGate, grey_image, grey_thumbnail


def scene(seed: int = 0, level: float = 1.0, h: int = 180, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(40, 200, (18, 32, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(img, (50, 40), (120, 150), (30, 160, 220), -1)
    return np.clip(img.astype(np.float32) * level, 0, 255).astype(np.uint8)


def noisy(img: np.ndarray, seed: int, sigma: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_dark_bright_and_usable_frames():
    gate = QualityGate(GatesConfig(frozen=False))
    assert gate.check(np.full((100, 100, 3), 3, np.uint8)) == "dark"
    assert gate.check(np.full((100, 100, 3), 252, np.uint8)) == "bright"
    assert gate.check(scene()) is None


@pytest.mark.parametrize("bad", [None, np.zeros((4, 4, 3), np.uint8), np.zeros((50, 50, 3), np.float32),
                                 np.zeros((50, 50, 5), np.uint8)])
def test_corrupt_frames(bad):
    assert QualityGate(GatesConfig()).check(bad) == "corrupt"


def test_frozen_means_identical_to_the_previous_frame():
    gate = QualityGate(GatesConfig())
    img = scene()
    assert gate.check(img) is None
    assert gate.check(img.copy()) == "frozen"
    assert gate.check(noisy(img, 1)) is None  # sensor noise: a live camera, not a frozen one
    one_pixel = noisy(img, 1)
    gate.check(one_pixel)
    one_pixel = one_pixel.copy()
    one_pixel[1, 0, 0] ^= 1  # a row the quick look at every 16th row skips
    assert gate.check(one_pixel) is None


def test_blur_gate_only_when_configured():
    sharp = scene()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    assert QualityGate(GatesConfig(frozen=False)).check(blurred) is None
    gate = QualityGate(GatesConfig(frozen=False, blur=20.0))
    assert gate.check(sharp) is None
    assert gate.check(blurred) == "blurred"


def test_disabled_gates_only_catch_corrupt_frames():
    gate = QualityGate(GatesConfig(enabled=False))
    assert gate.check(np.zeros((100, 100, 3), np.uint8)) is None
    assert gate.check(None) == "corrupt"


def test_change_gate_skips_noise_and_exposure_flicker_but_not_a_new_object():
    gate = ChangeGate(GatesConfig(skip_unchanged=6.0, max_skip=1000))
    base = scene()
    assert gate.should_skip(grey_thumbnail(base)) is False  # first frame is always embedded
    for i in range(20):
        flicker = scene(level=1.0 + 0.15 * np.sin(i))  # auto-exposure steps and flicker
        assert gate.should_skip(grey_thumbnail(noisy(flicker, i))) is True
    changed = base.copy()
    cv2.circle(changed, (250, 90), 30, (240, 240, 240), -1)  # a new object
    assert gate.should_skip(grey_thumbnail(changed)) is False


def test_change_gate_bounds_consecutive_skips():
    gate = ChangeGate(GatesConfig(skip_unchanged=6.0, max_skip=3))
    thumb = grey_thumbnail(scene())
    decisions = [gate.should_skip(thumb) for _ in range(9)]
    assert decisions == [False, True, True, True, False, True, True, True, False]


def test_an_unchanged_scene_embedded_after_max_skip_is_compared_with_the_frame_it_began_with(monkeypatch):
    # The filter asks its stillness of the still run's first frame; the pre-gate, keeping that frame as its
    # reference through the embeds max_skip forces, asks of the same two thumbnails: one change test a frame
    from edgefilter.novelty import view
    asked = []
    real = view.change_mask
    monkeypatch.setattr(view, "change_mask", lambda f, b: asked.append(b) or real(f, b))
    gate = ChangeGate(GatesConfig(max_skip=3))
    frames = [noisy(scene(), i, sigma=2.0) for i in range(9)]
    views = [view_thumbnail(f) for f in frames]
    decisions = [gate.should_skip(grey_thumbnail(f), v) for f, v in zip(frames, views)]
    assert decisions == [False, True, True, True, False, True, True, True, False]
    assert len(asked) == 8 and all(b is views[0] for b in asked)
    changed = frames[0].copy()
    cv2.rectangle(changed, (200, 40), (260, 120), (250, 250, 250), -1)
    changed_view = view_thumbnail(changed)
    assert not gate.should_skip(grey_thumbnail(changed), changed_view)  # a change: the new reference
    assert gate.should_skip(grey_thumbnail(changed), view_thumbnail(noisy(changed, 20, sigma=2.0)))
    assert asked[-1] is changed_view


def test_change_gate_on_by_default_and_off_at_zero():
    thumb = grey_thumbnail(scene())
    assert ChangeGate(GatesConfig()).active
    off = ChangeGate(GatesConfig(skip_unchanged=0.0))
    assert not off.active
    assert [off.should_skip(thumb) for _ in range(3)] == [False, False, False]


def test_change_gate_embeds_a_blob_of_change_that_the_mean_hides():
    # a thing of 0.3 % of the image moves the brightness-normalised mean by far less than the threshold,
    # but it is a blob of change: the model must see it; exposure, noise and a 2 px shake alone are skipped
    rng = np.random.default_rng(3)
    base = scene()
    gate = ChangeGate(GatesConfig(max_skip=1000))

    def ask(img):
        return gate.should_skip(grey_thumbnail(img), view_thumbnail(img))

    assert not ask(base)
    for i in range(20):
        shift = np.float32([[1, 0, rng.integers(-2, 3)], [0, 1, rng.integers(-2, 3)]])
        shaken = cv2.warpAffine(base, shift, (base.shape[1], base.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        noisy = np.clip(shaken.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 3, base.shape), 0, 255)
        assert ask(noisy.astype(np.uint8)), f"unchanged frame {i} was not skipped"
    with_thing = base.copy()
    cv2.rectangle(with_thing, (150, 100), (172, 128), (255, 255, 255), -1)
    assert gate.difference(grey_thumbnail(with_thing)) < GatesConfig().skip_unchanged  # the mean alone would skip it
    assert not ask(with_thing)


def test_the_thumbnails_from_one_grey_conversion_are_the_thumbnails_of_the_frame():
    """The daemon converts a frame to grey once for both thumbnails; they must be the frame's own."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (7, 7), 0)
    grey = grey_image(image)
    assert np.array_equal(view_thumbnail(image, grey), view_thumbnail(image))
    assert np.array_equal(grey_thumbnail(grey), grey_thumbnail(image))
    assert not np.array_equal(view_thumbnail(image, grey[::-1].copy()), view_thumbnail(image))
    assert np.array_equal(grey_image(grey), grey)


def test_unchanged_answers_the_same_two_thumbnails_once_and_others_afresh(monkeypatch):
    # The pre-gate asks it on the capture threads, then the filter thread asks it again of the same two
    # thumbnails: the second answer is remembered, by identity, so equal content elsewhere is asked afresh.
    from edgefilter.novelty import view
    calls = []
    real = view.change_mask
    monkeypatch.setattr(view, "change_mask", lambda f, b: calls.append(1) or real(f, b))
    base = view_thumbnail(scene())
    same = view_thumbnail(noisy(scene(), 1, sigma=2.0))
    with_thing = scene()
    cv2.rectangle(with_thing, (150, 60), (230, 150), (255, 255, 255), -1)
    thing = view_thumbnail(with_thing)
    assert view.unchanged(same, base) and view.unchanged(same, base)
    assert len(calls) == 1
    assert not view.unchanged(thing, base) and not view.unchanged(thing, base)
    assert len(calls) == 2
    assert view.unchanged(same, base.copy())  # another array with the same pixels: asked afresh
    assert view.unchanged(same.copy(), base)
    assert len(calls) == 4
    assert not view.unchanged(thing, same)  # the same frame against another background: asked afresh
    assert len(calls) == 5


def test_change_and_changed_cells_answer_the_same_two_thumbnails_once_and_lock_what_they_share(monkeypatch):
    # An event's frames are asked change() by the test that opens or continues the event and again for its view;
    # the region rule asks changed_cells() again where the pixels changed. One answer per pair of arrays (by
    # identity) and question, read-only: every caller gets the same arrays. The exposure fit is shared by all three.
    from edgefilter.novelty import view
    stats, fits = [], []
    real_stats, real_fit = view._blob_stats, view._fit
    monkeypatch.setattr(view, "_blob_stats", lambda *a, **k: stats.append(1) or real_stats(*a, **k))
    monkeypatch.setattr(view, "_fit", lambda b, f: fits.append(1) or real_fit(b, f))
    base = view_thumbnail(scene())
    with_thing = scene()
    cv2.rectangle(with_thing, (150, 60), (230, 150), (255, 255, 255), -1)
    thing = view_thumbnail(with_thing)
    first = view.change(thing, base)
    assert first.whole > 0 and view.change(thing, base) is first and len(stats) == 1
    assert not first.mask.flags.writeable
    cells = view.changed_cells(thing, base, 7, 7)
    assert cells.any() and view.changed_cells(thing, base, 7, 7) is cells and len(stats) == 2
    assert not cells.flags.writeable
    assert view.changed_cells(thing, base, 7, 7, things=True) is not cells and len(stats) == 3  # another question
    assert not view.unchanged(thing, base)
    assert len(fits) == 1  # one exposure fit for the pair, whatever was asked of it
    assert view.change(thing, base.copy()) == first and len(stats) == 4  # another array: asked afresh
    assert len(fits) == 2
