"""Warnings attached to a correction that succeeded but deserves a second look."""

from __future__ import annotations

from chromaline.common.measurements import PatchResult
from chromaline.engine.doubts import SMALL_PATCH_PX, result_warnings
from chromaline.engine.rating import FADGI_2016, lowest_mean_limit


def _patch(
    index: int, before: float, after: float, *, flags: list[str] | None = None, used: bool = True
) -> PatchResult:
    lab = (50.0, 0.0, 0.0)
    return PatchResult(
        index=index,
        name=f"patch {index}",
        reference_lab=lab,
        before_lab=lab,
        after_lab=lab,
        before_srgb=(128, 128, 128),
        after_srgb=(128, 128, 128),
        reference_srgb=(128, 128, 128),
        delta_e76=(before, after),
        delta_e94=(before, after),
        delta_e2000=(before, after),
        flags=flags or [],
        used_in_fit=used,
        quad=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
    )


def test_a_clean_result_has_no_warnings() -> None:
    patches = [_patch(i, 6.0, 1.0) for i in range(24)]
    assert result_warnings(patches, 1.5, 40.0, FADGI_2016) == []


def test_each_doubt_is_named_once() -> None:
    patches = [_patch(0, 1.0, 3.5), _patch(1, 5.0, 1.0, flags=["clipped"], used=False)]
    patches += [_patch(i, 6.0, 1.0) for i in range(2, 24)]
    cross_validated = lowest_mean_limit(FADGI_2016) + 0.5
    warnings = result_warnings(patches, cross_validated, SMALL_PATCH_PX - 1, FADGI_2016)
    assert [warning.code for warning in warnings] == [
        "patch_worse_after",
        "cross_validated_above_limit",
        "patches_dropped",
        "small_patches",
    ]
    assert "patch 0" in warnings[0].message
    assert "patch 1 (clipped)" in warnings[2].message


def test_a_patch_worse_by_exactly_the_limit_is_not_reported() -> None:
    patches = [_patch(0, 1.0, 3.0)] + [_patch(i, 6.0, 1.0) for i in range(1, 24)]
    assert result_warnings(patches, None, None, FADGI_2016) == []
