"""Reasons to doubt a correction that otherwise succeeded.

A job with doubts still ends ``done``; its measurements document, its event and the job view
list them, so that a person looks before trusting the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from chromaline.common.measurements import PatchResult, ResultWarning
from chromaline.engine.rating import Guideline, lowest_mean_limit

WORSE_AFTER_DELTA_E2000 = 2.0
"""A patch whose ΔE2000 grew by more than this through the correction is reported."""
SMALL_PATCH_PX = 12.0
"""Patches narrower than this (pixels, side of the whole patch) are reported: the central region
sampled (half the side each way) then holds fewer than 36 pixels, too few to average out noise
and JPEG blocks."""
DROPPING_FLAGS = frozenset({"clipped", "non_uniform", "outside_frame", "dark"})


def result_warnings(
    patches: Sequence[PatchResult],
    cross_validated_delta_e2000: float | None,
    patch_side_px: float | None,
    guideline: Guideline,
) -> list[ResultWarning]:
    """The warnings a finished correction deserves (none when nothing looks wrong)."""
    found: list[ResultWarning] = []
    worse = [p for p in patches if p.delta_e2000[1] - p.delta_e2000[0] > WORSE_AFTER_DELTA_E2000]
    if worse:
        names = ", ".join(f"{p.name} ({p.delta_e2000[0]:.1f} → {p.delta_e2000[1]:.1f})" for p in worse)
        found.append(
            ResultWarning(
                code="patch_worse_after",
                message=f"{len(worse)} patch(es) worse after correction by more than "
                f"{WORSE_AFTER_DELTA_E2000:g} ΔE2000: {names}",
            )
        )
    limit = lowest_mean_limit(guideline)
    if cross_validated_delta_e2000 is not None and cross_validated_delta_e2000 > limit:
        found.append(
            ResultWarning(
                code="cross_validated_above_limit",
                message=f"cross-validated ΔE2000 {cross_validated_delta_e2000:.2f} is above {guideline.name}'s "
                f"lowest level ({limit:g}): the correction may not hold away from the chart's patches",
            )
        )
    dropped = [p for p in patches if not p.used_in_fit and DROPPING_FLAGS.intersection(p.flags)]
    if dropped:
        names = ", ".join(
            f"{p.name} ({'/'.join(sorted(DROPPING_FLAGS.intersection(p.flags)))})" for p in dropped
        )
        found.append(
            ResultWarning(
                code="patches_dropped",
                message=f"{len(dropped)} patch(es) left out of the fit: {names}",
            )
        )
    if patch_side_px is not None and patch_side_px < SMALL_PATCH_PX:
        found.append(
            ResultWarning(
                code="small_patches",
                message=f"the chart's patches are about {patch_side_px:.0f} px across (under {SMALL_PATCH_PX:g} px): "
                "their colours are measured on few pixels",
            )
        )
    return found
