"""The blurred luma shared by refining a box and scoring its grid."""

from __future__ import annotations

import numpy as np
import pytest

from chromaline.engine import detect
from chromaline.engine.detect import BlurredLuma

BOX = np.array([[100.0, 80.0], [400.0, 80.0], [400.0, 280.0], [100.0, 280.0]])


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (400, 600, 3), dtype=np.uint8)


def test_a_box_within_the_last_crop_is_cut_from_it_without_blurring_again(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    blurred: list[tuple[int, ...]] = []
    blur = detect._blurred_luma

    def counted(crop: np.ndarray) -> np.ndarray:
        blurred.append(crop.shape)
        return blur(crop)

    monkeypatch.setattr(detect, "_blurred_luma", counted)
    luma = BlurredLuma(photo)
    luma.around(BOX)
    centre = BOX.mean(axis=0)
    moved = centre + 0.98 * (BOX - centre)  # refined a little inwards
    grey, offset = luma.around(moved)
    assert len(blurred) == 1
    fresh, fresh_offset = BlurredLuma(photo).around(moved)
    np.testing.assert_array_equal(offset, fresh_offset)
    assert grey.shape == fresh.shape
    inner = (slice(4, -4), slice(4, -4))  # the kernel's reach: only mirrored borders differ
    np.testing.assert_allclose(grey[inner], fresh[inner], atol=1e-4)


def test_a_box_reaching_past_the_last_crop_is_blurred_anew(photo: np.ndarray) -> None:
    luma = BlurredLuma(photo)
    first, _ = luma.around(BOX)
    elsewhere = np.add(BOX, (120.0, 60.0))
    grey, offset = luma.around(elsewhere)
    fresh, fresh_offset = BlurredLuma(photo).around(elsewhere)
    np.testing.assert_array_equal(offset, fresh_offset)
    np.testing.assert_array_equal(grey, fresh)
    assert grey.shape != first.shape or not np.array_equal(grey, first)
