"""Frame preprocessing: size, colour order, grey/BGRA input, area resampling, batching."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgefilter.gates import grey_thumbnail
from edgefilter.novelty.view import view_thumbnail
from edgefilter.preprocess import area_factor, preprocess, stack, working_copy

BLUE_BGR = (255, 0, 0)


def solid(h: int, w: int, bgr=BLUE_BGR) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgr
    return img


def test_full_hd_frame_becomes_model_input():
    out = preprocess(np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_size_is_width_then_height():
    assert preprocess(solid(360, 640), (160, 120)).shape == (120, 160, 3)


def test_bgr_becomes_rgb_and_bgr_stays():
    assert tuple(preprocess(solid(50, 60))[10, 10]) == (0, 0, 255)
    assert tuple(preprocess(solid(50, 60), colour="BGR")[10, 10]) == (255, 0, 0)


def test_grey_input_of_both_shapes():
    grey = np.full((300, 400), 77, np.uint8)
    for img in (grey, grey[:, :, None]):
        out = preprocess(img)
        assert out.shape == (224, 224, 3)
        assert (out == 77).all()


def test_bgra_drops_alpha_and_reorders():
    img = np.zeros((100, 100, 4), np.uint8)
    img[:] = (10, 20, 30, 0)  # B, G, R, fully transparent
    assert tuple(preprocess(img)[5, 5]) == (30, 20, 10)
    assert tuple(preprocess(img, colour="BGR")[5, 5]) == (10, 20, 30)


def test_shrinking_averages_instead_of_aliasing():
    # A one-pixel checkerboard: area averaging gives flat mid-grey; point sampling would keep 0/255.
    y, x = np.mgrid[0:448, 0:448]
    board = (((x + y) % 2) * 255).astype(np.uint8)
    out = preprocess(np.dstack([board] * 3))
    assert out.std() < 2 and abs(float(out.mean()) - 127.5) < 2


def test_enlarging_a_small_frame():
    out = preprocess(solid(80, 100, (0, 255, 0)))
    assert out.shape == (224, 224, 3) and tuple(out[100, 100]) == (0, 255, 0)


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2), np.uint8),
                                 np.zeros((0, 10, 3), np.uint8), np.zeros((10,), np.uint8)])
def test_unsupported_input_is_a_value_error(bad):
    with pytest.raises(ValueError, match="preprocess"):
        preprocess(bad)


def test_stack_batches_and_keeps_order():
    frames = [preprocess(solid(40, 40, (i, i, i))) for i in range(5)]
    batch = stack(frames)
    assert batch.shape == (5, 224, 224, 3) and batch.dtype == np.uint8
    assert [int(batch[i, 0, 0, 0]) for i in range(5)] == list(range(5))


def test_stack_of_one_is_a_view():
    frame = preprocess(solid(40, 40))
    batch = stack([frame])
    assert batch.shape == (1, 224, 224, 3) and np.shares_memory(batch, frame)


def test_stack_rejects_mixed_sizes_and_empty():
    with pytest.raises(ValueError, match="frame 1 has shape"):
        stack([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        stack([])


@pytest.mark.parametrize("src, k", [((640, 360), 2), ((1920, 1080), 4), ((1280, 720), 4), ((320, 240), 1),
                                    ((224, 224), 1), ((100, 80), 1)])
def test_area_factor_keeps_both_sides_at_least_three_quarters_of_the_target(src, k):
    assert area_factor(src[0], src[1], 224, 224) == k
    assert src[0] // k * 4 >= 3 * 224 or k == 1


def test_fast_shrink_matches_a_true_area_resize_and_does_not_alias():
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 6)
    ours = preprocess(smooth, colour="BGR").astype(np.float32)
    area = cv2.resize(smooth, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(ours - area).mean() < 1.5
    # one-pixel stripes average to grey, as INTER_AREA does; a plain bilinear shrink would sample them
    stripes = np.zeros((1080, 1920, 3), np.uint8)
    stripes[:, ::2] = 255
    out = preprocess(stripes, colour="BGR")
    assert abs(float(out.mean()) - 127.5) < 3 and out.std() < 20
    naive = cv2.resize(stripes, (224, 224), interpolation=cv2.INTER_LINEAR)
    assert naive.std() > 60  # the check above could fail: bilinear alone aliases these stripes


@pytest.mark.parametrize("shape, halved", [
    ((1080, 1920, 3), (540, 960, 3)), ((720, 1280, 3), (360, 640, 3)), ((2160, 3840, 3), (540, 960, 3)),
    ((1920, 1080, 3), (960, 540, 3)), ((1080, 1920), (540, 960)),
])
def test_a_frame_twice_the_working_size_is_block_averaged_down_to_it(shape, halved):
    img = np.zeros(shape, np.uint8)
    img[::2] = 200  # every other row: a 2x2 block average is 100 everywhere
    work = working_copy(img)
    assert work.shape == halved and (work == 100).all()


@pytest.mark.parametrize("shape", [(360, 640, 3), (719, 1279, 3), (480, 640), (1279, 720, 3), (240, 320, 3)])
def test_smaller_frames_are_worked_on_as_they_are(shape):
    img = np.zeros(shape, np.uint8)
    assert working_copy(img) is img


def test_what_the_filter_sees_of_a_large_frame_differs_from_the_full_frame_by_rounding_alone():
    # noise is the worst case for rounding twice; the model input and the thumbnails the filter compares
    img = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    work = working_copy(img)
    assert np.abs(preprocess(img).astype(int) - preprocess(work).astype(int)).max() <= 2
    assert np.abs(view_thumbnail(img).astype(int) - view_thumbnail(work).astype(int)).max() <= 2
    assert np.abs(grey_thumbnail(img) - grey_thumbnail(work)).max() <= 1
