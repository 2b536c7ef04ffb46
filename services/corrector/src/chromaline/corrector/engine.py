"""The local colour-correction job as plain functions.

The CLI, the services and the benchmarks all call these: ``measure`` (decode, find the chart,
sample its patches, score the photo as it is), ``fit_from_measurements`` (what the corrector
service does with a ``chart.detected`` event) and ``correct_photo`` (the whole job, ending with an
encoded image). Failures raise :class:`EngineError` with a machine-readable code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from chromaline.corrector.apply import apply_correction
from chromaline.corrector.encode import EncodedImage, EncodeError, OutputFormat, encode_image
from chromaline.corrector.fit import (
    DEFAULT_CANDIDATES,
    Correction,
    CrossValidation,
    FitError,
    Method,
    MethodChoice,
    Objective,
    choose_method,
    cross_validate,
    fit_correction,
    method_spec,
)
from chromaline.corrector.metrics import ChartReference, DeltaEReport, Summary, compare
from chromaline.corrector.profile import FitStatistics, Profile
from chromaline.corrector.rating import Rating, rate
from chromaline.detector.charts import Edition, chart_spec
from chromaline.detector.detect import ChartDetection, detect_charts, detection_from_corners
from chromaline.detector.image_io import DecodedImage, UnsupportedImageError, decode_image
from chromaline.detector.sample import PatchMeasurement, sample_patches

EXCLUDING_FLAGS = frozenset({"clipped", "outside_frame", "dark"})
"""Detector flags that always keep a patch out of the fit: its mean is not the patch's colour."""
SOFT_FLAGS = frozenset({"non_uniform"})
"""Flags that keep a patch out only while at least half the chart remains: a textured or noisy
patch's robust mean is still a usable estimate, and fitting on a handful of patches is worse."""
DEFAULT_CORNER_CHART = "classic24"


class EngineError(Exception):
    """A job that cannot finish; ``code`` is the reason in machine terms (e.g. ``no_chart``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MeasuredPatch(Protocol):
    """What fitting needs of a patch: detector measurements and event samples both qualify."""

    @property
    def index(self) -> int: ...

    @property
    def rgb(self) -> Sequence[float] | NDArray[np.floating]: ...

    @property
    def flags(self) -> Sequence[str]: ...


Timings = dict[str, float]


@contextmanager
def _timed(timings: Timings, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = (time.perf_counter() - started) * 1000.0


def chart_reference(chart_type: str, edition: Edition) -> ChartReference:
    try:
        chart_spec(chart_type)
    except ValueError as error:
        raise EngineError("unsupported_chart", str(error)) from None
    return ChartReference.for_chart(chart_type, edition)


@dataclass(frozen=True)
class PatchSelection:
    measured: NDArray[np.float64]
    """(N, 3) measured linear RGB in reference order (zeros where a patch is missing)."""
    used: NDArray[np.bool_]
    notes: list[str]


def select_patches(patches: Sequence[MeasuredPatch], reference: ChartReference) -> PatchSelection:
    """Measured RGB in reference order and the patches fit to use, given the detector's flags."""
    measured = np.zeros((reference.patch_count, 3))
    usable = np.zeros(reference.patch_count, dtype=bool)
    soft_flagged = np.zeros(reference.patch_count, dtype=bool)
    for patch in patches:
        if not 0 <= patch.index < reference.patch_count:
            raise EngineError(
                "invalid_measurements", f"patch index {patch.index} is not on a {reference.chart_type}"
            )
        rgb = np.asarray(patch.rgb, dtype=np.float64)
        if not np.all(np.isfinite(rgb)):
            continue
        measured[patch.index] = rgb
        usable[patch.index] = not EXCLUDING_FLAGS.intersection(patch.flags)
        soft_flagged[patch.index] = bool(SOFT_FLAGS.intersection(patch.flags))
    strict = usable & ~soft_flagged
    if strict.sum() >= reference.patch_count // 2:
        return PatchSelection(measured, strict, [])
    kept = int((usable & soft_flagged).sum())
    notes = (
        [f"{kept} patch(es) flagged non-uniform were kept: without them too few patches remain"]
        if kept
        else []
    )
    return PatchSelection(measured, usable, notes)


@dataclass(frozen=True)
class FitResult:
    correction: Correction
    reference: ChartReference
    measured: NDArray[np.float64]
    used: NDArray[np.bool_]
    cross_validation: CrossValidation
    choice: MethodChoice | None
    """Every candidate's score when the method was chosen automatically."""
    report: DeltaEReport
    rating_before: Rating
    rating_after: Rating
    notes: list[str] = field(default_factory=list)

    def statistics(self) -> FitStatistics:
        return FitStatistics(
            training_delta_e2000=self.cross_validation.training_mean,
            cross_validated_delta_e2000=self.cross_validation.cross_validated_mean,
            patch_count=int(self.used.sum()),
        )

    def profile(self, source_filename: str | None = None) -> Profile:
        white = self.reference.white_xy
        return Profile.from_correction(
            self.correction,
            chart_type=self.reference.chart_type,
            reference_edition=self.reference.edition,
            reference_white_xy=(float(white[0]), float(white[1])),
            statistics=self.statistics(),
            source_filename=source_filename,
        )


def fit_from_measurements(
    patches: Sequence[MeasuredPatch],
    chart_type: str,
    edition: Edition = "2014",
    method: Method | Literal["auto"] = "auto",
    *,
    objective: Objective = "least_squares",
) -> FitResult:
    """Fit a correction to sampled patches; ``auto`` picks the method by cross-validated ΔE2000."""
    reference = chart_reference(chart_type, edition)
    selection = select_patches(patches, reference)
    measured, used = selection.measured, selection.used
    choice: MethodChoice | None = None
    try:
        if method == "auto":
            choice = choose_method(measured, reference, DEFAULT_CANDIDATES, mask=used)
            spec = choice.chosen
            validation = choice.score_of(spec)
        else:
            spec = method_spec(method)
            validation = cross_validate(measured, reference, spec, mask=used)
        correction = fit_correction(measured, reference, spec, mask=used, objective=objective)
    except FitError as error:
        raise EngineError(error.code, error.message) from None
    report = compare(measured, correction.apply_to_pixels(measured), reference, used)
    return FitResult(
        correction=correction,
        reference=reference,
        measured=measured,
        used=used,
        cross_validation=validation,
        choice=choice,
        report=report,
        rating_before=rate(report.before["CIE 2000"]),
        rating_after=rate(report.after["CIE 2000"]),
        notes=selection.notes,
    )


@dataclass
class Measurement:
    image: DecodedImage
    detection: ChartDetection
    charts_found: int
    patches: list[PatchMeasurement]
    reference: ChartReference
    used: NDArray[np.bool_]
    report: DeltaEReport
    """``before`` is the photo as it is; ``after`` equals it (nothing corrected yet)."""
    rating: Rating
    timings: Timings = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def delta_e2000(self) -> Summary:
        return self.report.before["CIE 2000"]


def _decode(source: Path | bytes | DecodedImage, timings: Timings) -> DecodedImage:
    if isinstance(source, DecodedImage):
        return source
    with _timed(timings, "decode"):
        try:
            return decode_image(source)
        except UnsupportedImageError as error:
            raise EngineError(error.code, error.message) from None


def _detect(
    image: DecodedImage, chart_type: str, corners: Sequence[tuple[float, float]] | None, timings: Timings
) -> tuple[ChartDetection, int]:
    with _timed(timings, "detect"):
        if corners is not None:
            chart = DEFAULT_CORNER_CHART if chart_type == "auto" else chart_type
            try:
                return detection_from_corners(chart, list(corners)), 1
            except ValueError as error:
                raise EngineError("unsupported_chart", str(error)) from None
        try:
            outcome = detect_charts(image, chart_type)
        except ValueError as error:
            raise EngineError("unsupported_chart", str(error)) from None
    if not outcome.detections:
        raise EngineError(outcome.reason or "no_chart", outcome.message)
    return outcome.detections[0], len(outcome.detections)


def measure(
    source: Path | bytes | DecodedImage,
    *,
    chart_type: str = "auto",
    edition: Edition = "2014",
    corners: Sequence[tuple[float, float]] | None = None,
) -> Measurement:
    """Find the chart, sample its patches and score the photo as it is against the reference."""
    timings: Timings = {}
    image = _decode(source, timings)
    detection, charts_found = _detect(image, chart_type, corners, timings)
    reference = chart_reference(detection.chart_type, edition)
    with _timed(timings, "sample"):
        patches = sample_patches(image, detection, edition=edition)
    selection = select_patches(patches, reference)
    measured, used = selection.measured, selection.used
    if not used.any():
        raise EngineError("too_few_patches", "every patch on the chart is clipped or unusable")
    report = compare(measured, measured, reference, used)
    return Measurement(
        image=image,
        detection=detection,
        charts_found=charts_found,
        patches=patches,
        reference=reference,
        used=used,
        report=report,
        rating=rate(report.before["CIE 2000"]),
        timings=timings,
        notes=selection.notes,
    )


@dataclass
class CorrectionResult:
    encoded: EncodedImage
    correction: Correction
    profile: Profile
    """The profile fitted here, or the one that was applied."""
    measurement: Measurement | None
    """None when a saved profile was applied to a photo without a usable chart."""
    fit: FitResult | None
    """None when a saved profile was applied."""
    report: DeltaEReport | None
    rating_before: Rating | None
    rating_after: Rating | None
    timings: Timings
    notes: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.correction.spec.label


def correct_photo(
    source: Path | bytes | DecodedImage,
    *,
    chart_type: str = "auto",
    method: Method | Literal["auto"] = "auto",
    edition: Edition = "2014",
    profile: Profile | None = None,
    corners: Sequence[tuple[float, float]] | None = None,
    output_format: OutputFormat = "jpeg",
    bit_depth: Literal[8, 16] = 8,
    objective: Objective = "least_squares",
    source_filename: str | None = None,
) -> CorrectionResult:
    """Correct one photo: from its own chart, or with a saved ``profile`` (the chart then optional)."""
    timings: Timings = {}
    notes: list[str] = []
    image = _decode(source, timings)
    measurement: Measurement | None
    try:
        measurement = measure(image, chart_type=chart_type, edition=edition, corners=corners)
    except EngineError as error:
        if profile is None:
            raise
        measurement = None
        notes.append(f"no chart measured ({error.code}); the profile was applied without checking it")
    fit: FitResult | None = None
    if measurement is not None:
        timings.update(measurement.timings)
        notes.extend(measurement.notes)
    with _timed(timings, "fit"):
        if profile is not None:
            correction = profile.correction()
        else:
            assert measurement is not None
            fit = fit_from_measurements(
                measurement.patches, measurement.detection.chart_type, edition, method, objective=objective
            )
            correction = fit.correction
            profile = fit.profile(source_filename)
    report = _report(measurement, correction, fit)
    if output_format == "jpeg" and bit_depth == 16:
        bit_depth = 8
        notes.append("JPEG holds 8 bits per channel: the image was written at 8 bits")
    with _timed(timings, "apply"):
        pixels = apply_correction(image, correction, bit_depth=bit_depth)
    with _timed(timings, "encode"):
        try:
            encoded = encode_image(pixels, output_format, exif=image.exif)
        except EncodeError as error:
            raise EngineError(error.code, error.message) from None
    notes.extend(encoded.notes)
    return CorrectionResult(
        encoded=encoded,
        correction=correction,
        profile=profile,
        measurement=measurement,
        fit=fit,
        report=report,
        rating_before=rate(report.before["CIE 2000"]) if report else None,
        rating_after=rate(report.after["CIE 2000"]) if report else None,
        timings=timings,
        notes=notes,
    )


def _report(
    measurement: Measurement | None, correction: Correction, fit: FitResult | None
) -> DeltaEReport | None:
    if fit is not None:
        return fit.report
    if measurement is None:
        return None
    selection = select_patches(measurement.patches, measurement.reference)
    after = correction.apply_to_pixels(selection.measured)
    return compare(selection.measured, after, measurement.reference, selection.used)
