"""Saved correction profiles: a fitted correction plus where it came from and how good it was.

A profile is JSON so people can read and diff it. It can be exported as a .cube 3D LUT (sRGB in,
sRGB out) for editing and grading software, for matrix methods as the bare matrix, for 3×3
methods as an ICC input profile (matrix/shaper) that colour-managed software applies itself, and
for 3×3 RAW profiles as a DNG Camera Profile (.dcp) for raw converters.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chromaline.engine.dcp import (
    Calibration,
    CalibrationLight,
    DcpError,
    camera_profile_dcp,
    ordered_calibrations,
)
from chromaline.engine.fit import WORKING_SPACE_NAME, Correction, Method, MethodSpec, Objective
from chromaline.engine.icc import (
    D50_XYZ,
    D65_XYZ,
    LINEAR_CURVE,
    SRGB_CURVE,
    bradford,
    matrix_shaper_profile,
    working_to_pcs,
)
from chromaline.engine.lut import cube_text, srgb_transform

PROFILE_VERSION: Literal[1] = 1
InputEncoding = Literal["encoded", "linear-camera"]


class ProfileError(ValueError):
    code = "invalid_profile"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FitStatistics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    training_delta_e2000: float = Field(ge=0, description="Mean ΔE2000 over the patches used for the fit.")
    cross_validated_delta_e2000: float | None = Field(
        default=None, ge=0, description="Leave-one-patch-out mean ΔE2000."
    )
    patch_count: int = Field(ge=1, description="Patches used for the fit.")


MAX_COEFFICIENT = 1e4
"""Far beyond any fit to a chart (their terms stay within a few units); a larger one overflows
float32 on the way to the pixels, and the photo and its ΔE come out as NaN."""


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = PROFILE_VERSION
    method: Method
    degree: int = 1
    objective: Objective = "least_squares"
    coefficients: list[list[float]] = Field(description="3 rows (R, G, B out) × one column per term.")
    working_space: Literal["sRGB-linear"] = WORKING_SPACE_NAME
    chart_type: str
    reference_edition: Literal["2005", "2014"]
    reference_white_xy: tuple[float, float] = Field(
        description="White of the Lab comparison (the chart's D50)."
    )
    statistics: FitStatistics
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source_filename: str | None = None
    input_encoding: InputEncoding = Field(
        default="encoded",
        description="What the fit's input was: an encoded photo (linearised through its curve or ICC profile) "
        "or a RAW file's linear camera RGB.",
    )
    camera_model: str | None = Field(default=None, description="The camera that shot the chart, when known.")

    @model_validator(mode="after")
    def _coefficients_fit_method(self) -> Profile:
        try:
            spec = MethodSpec(self.method, self.degree)
        except ValueError as error:
            raise ValueError(str(error)) from None
        if len(self.coefficients) != 3 or any(len(row) != spec.term_count for row in self.coefficients):
            raise ValueError(f"{spec.label} needs 3 rows of {spec.term_count} coefficients")
        if not all(math.isfinite(value) for row in self.coefficients for value in row):
            raise ValueError("coefficients must be finite numbers")
        if any(abs(value) > MAX_COEFFICIENT for row in self.coefficients for value in row):
            raise ValueError(f"coefficients must lie within ±{MAX_COEFFICIENT:g}")
        return self

    def correction(self) -> Correction:
        return Correction(
            method=self.method,
            coefficients=np.asarray(self.coefficients, dtype=np.float64),
            degree=self.degree,
            working_space=self.working_space,
            objective=self.objective,
        )

    @classmethod
    def from_correction(
        cls,
        correction: Correction,
        *,
        chart_type: str,
        reference_edition: Literal["2005", "2014"],
        reference_white_xy: tuple[float, float],
        statistics: FitStatistics,
        source_filename: str | None = None,
        input_encoding: InputEncoding = "encoded",
        camera_model: str | None = None,
    ) -> Profile:
        return cls(
            method=correction.method,
            degree=correction.degree,
            objective=correction.objective,
            coefficients=correction.coefficients.tolist(),
            chart_type=chart_type,
            reference_edition=reference_edition,
            reference_white_xy=reference_white_xy,
            statistics=statistics,
            source_filename=source_filename,
            input_encoding=input_encoding,
            camera_model=camera_model,
        )


def dump_profile(profile: Profile) -> str:
    return profile.model_dump_json(indent=2)


def load_profile(document: str | bytes) -> Profile:
    """Parse a saved profile, refusing anything that is not a profile of a version we know."""
    try:
        raw: Any = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ProfileError(f"a profile must be JSON: {error}") from None
    except RecursionError:
        raise ProfileError("a profile must be JSON nested a few levels deep, not thousands") from None
    if not isinstance(raw, dict) or "version" not in raw:
        raise ProfileError("not a Chromaline profile: expected a JSON object with a version")
    if raw["version"] != PROFILE_VERSION:
        raise ProfileError(
            f"profile version {raw['version']!r} is not supported (expected {PROFILE_VERSION})"
        )
    try:
        return Profile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'profile'}: {e['msg']}" for e in error.errors()
        )
        raise ProfileError(f"invalid profile: {problems}") from None


def to_cube(profile: Profile, size: int = 33) -> str:
    """A .cube 3D LUT from sRGB-encoded input to sRGB-encoded corrected output."""
    correction = profile.correction()
    title = f"Chromaline {MethodSpec(profile.method, profile.degree).label} from {profile.chart_type}"
    return cube_text(srgb_transform(correction.apply_to_pixels), size, title)


def matrix_export(profile: Profile, *, as_format: Literal["text", "json"] = "text") -> str:
    """The 3×3 or 3×4 matrix of a matrix profile, applied to linear sRGB (column vector r, g, b[, 1])."""
    correction = profile.correction()
    if not correction.is_matrix:
        raise ProfileError(f"{profile.method} is not a matrix correction; export a .cube LUT instead")
    matrix = correction.coefficients
    if as_format == "json":
        return json.dumps(
            {"working_space": profile.working_space, "input": "linear", "matrix": matrix.tolist()}, indent=2
        )
    return "\n".join(" ".join(f"{value:.8f}" for value in row) for row in matrix) + "\n"


def to_icc(profile: Profile) -> bytes:
    """An ICC v4 input profile (matrix/shaper) of a 3×3 profile: the sRGB curve as its shaper for
    profiles fitted on encoded photos, the identity for RAW profiles (linear camera RGB), and the
    correction followed by the working space's matrix to the D50 connection space."""
    correction = profile.correction()
    if correction.method not in ("white_balance", "linear3x3"):
        raise ProfileError(
            f"an ICC matrix/shaper profile holds a 3×3 matrix; {profile.method} is not one (fit with linear3x3)"
        )
    curve = LINEAR_CURVE if profile.input_encoding == "linear-camera" else SRGB_CURVE
    source = profile.camera_model or profile.source_filename or profile.chart_type
    return matrix_shaper_profile(
        description=f"Chromaline camera profile: {source} ({profile.chart_type})",
        rgb_to_pcs=working_to_pcs() @ correction.coefficients,
        curve=curve,
        adaptation=bradford(D65_XYZ, D50_XYZ),
        profile_class="input",
    )


def to_dcp(
    profile: Profile, light: CalibrationLight, second: tuple[Profile, CalibrationLight] | None = None
) -> bytes:
    """A DNG Camera Profile of a 3×3 RAW profile; ``light`` is the one the chart was shot under.
    ``second`` is a profile of the same camera from a chart shot under another light, for a
    two-illuminant DCP."""
    shots = [(profile, light)] if second is None else [(profile, light), second]
    calibrations = [Calibration(_dcp_matrix(shot), shot_light) for shot, shot_light in shots]
    cameras = {shot.camera_model for shot, _ in shots}
    if len(cameras) > 1:
        raise ProfileError(
            f"the two chart shots come from different cameras ({' and '.join(sorted(map(str, cameras)))})"
        )
    camera = profile.camera_model or "unknown camera"
    try:
        lights = "+".join(calibration.light for calibration in ordered_calibrations(calibrations))
        return camera_profile_dcp(
            calibrations,
            camera_model=camera,
            profile_name=f"Chromaline {camera} {profile.chart_type} {lights}",
        )
    except DcpError as error:
        raise ProfileError(error.message) from None


def _dcp_matrix(profile: Profile) -> NDArray[np.float64]:
    if profile.input_encoding != "linear-camera":
        raise ProfileError("a DCP describes a camera's RAW data; this profile was fitted on an encoded photo")
    correction = profile.correction()
    if correction.method not in ("white_balance", "linear3x3"):
        raise ProfileError(f"a DCP holds a 3×3 matrix; {profile.method} is not one (fit with linear3x3)")
    return correction.coefficients
