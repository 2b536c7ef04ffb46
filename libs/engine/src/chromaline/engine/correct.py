"""The local colour-correction job as plain functions.

The CLI, the services and the benchmarks all call these: ``measure`` (decode, find the chart,
sample its patches, score the photo as it is), ``fit_from_measurements`` (what the corrector
service does with a ``chart.detected`` event) and ``correct_photo`` (the whole job, ending with an
encoded image). Failures raise :class:`EngineError` with a machine-readable code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from chromaline.common.measurements import (
    DeltaESummaries,
    Measurements,
    OtherChart,
    PatchResult,
    ResultWarning,
    method_label,
)
from chromaline.common.measurements import Summary as SummaryDocument
from chromaline.engine.apply import apply_correction
from chromaline.engine.charts import Edition, chart_spec
from chromaline.engine.custom_chart import CUSTOM_CHART_TYPE, ChartDefinition
from chromaline.engine.custom_detect import (
    custom_detection_from_corners,
    detect_custom_chart,
    sample_custom_chart,
)
from chromaline.engine.detect import (
    CandidateSet,
    ChartDetection,
    NotAChartError,
    checked_detection_from_corners,
    detect_charts,
    detection_from_corners,
    preview_candidates,
    with_other_charts,
)
from chromaline.engine.doubts import result_warnings
from chromaline.engine.encode import (
    EncodedImage,
    EncodeError,
    JpegStripEncoder,
    OutputFormat,
    embedded_profile,
    encode_image,
)
from chromaline.engine.fit import (
    DEFAULT_CANDIDATES,
    Correction,
    CrossValidation,
    FitError,
    Method,
    MethodChoice,
    ObjectiveChoice,
    choose_method,
    method_spec,
    validated_fit,
)
from chromaline.engine.geometry import chart_layout, layout_patch_side_px
from chromaline.engine.icc import OutputSpace
from chromaline.engine.image_io import (
    DecodedImage,
    UnsupportedImageError,
    decode_image,
    decode_preview,
    reduced,
    srgb_encode,
)
from chromaline.engine.metrics import (
    ChartReference,
    DeltaEMethod,
    DeltaEReport,
    Summary,
    compare,
    working_rgb_to_lab,
)
from chromaline.engine.previews import PhotoPreviews, photo_previews
from chromaline.engine.profile import FitStatistics, Profile
from chromaline.engine.rating import DEFAULT_GUIDELINE, Guideline, Rating, rate
from chromaline.engine.raw import WhiteBalance
from chromaline.engine.sample import PatchMeasurement, sample_patches

EXCLUDING_FLAGS = frozenset({"clipped", "outside_frame", "dark"})
"""Detector flags that always keep a patch out of the fit: its mean is not the patch's colour."""
SOFT_FLAGS = frozenset({"non_uniform"})
"""Flags that keep a patch out only while at least half the chart remains: a textured or noisy
patch's robust mean is still a usable estimate, and fitting on a handful of patches is worse."""
DEFAULT_CORNER_CHART = "classic24"
PREVIEW_MIN_SIDE = 480
"""Least long side of the reduced JPEG preview searched for the chart while the full image decodes
(1/8 scale for a 12 MP photo: its decode and search take less time than the full decode)."""


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


class SampledPatch(MeasuredPatch, Protocol):
    """A measured patch that also knows where it was sampled (for the measurements document)."""

    @property
    def quad(self) -> Sequence[tuple[float, float]] | NDArray[np.floating]: ...


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

    def profile(self, source_filename: str | None = None, image: DecodedImage | None = None) -> Profile:
        """The fitted profile; ``image``, the photo it was fitted on, says its input encoding and camera."""
        white = self.reference.white_xy
        return Profile.from_correction(
            self.correction,
            chart_type=self.reference.chart_type,
            reference_edition=self.reference.edition,
            reference_white_xy=(float(white[0]), float(white[1])),
            statistics=self.statistics(),
            source_filename=source_filename,
            input_encoding="linear-camera" if image is not None and image.linear_camera else "encoded",
            camera_model=image.camera_model if image is not None else None,
        )


RAW_REFINEMENT_STEPS = 12
"""Steps of the ΔE2000 refinement (:mod:`chromaline.engine.delta_e_fit`) for a RAW file's chart,
instead of its default 3. On the renderer's exact raw Classic 24 patches (3 cameras × 6 lights) the
leave-one-out mean goes from 1.326 (3 steps) to 1.298 (6), 1.285 (8), 1.268 (12), 1.271 (20) and
1.270 (30). A Classic 24 fit takes about 55 ms instead of 20: nothing beside a RAW file's
demosaic (seconds), too much beside a 12 MP JPEG's whole correction (about 260 ms)."""
RAW_REFINEMENT_MAX_PATCHES = 48
"""Charts with more patches keep the default steps: each step refines one fit per patch over
every patch, so the Digital SG's 140 patches take 1.4 s instead of 0.42 s for 12 steps, and gain
0.014 (0.875 to 0.861) on the same exact patches."""


def refinement_steps(linear_camera: bool, patch_count: int) -> int | None:
    """The ΔE2000 refinement's steps for a chart of ``patch_count`` patches (None: its default)."""
    return RAW_REFINEMENT_STEPS if linear_camera and patch_count <= RAW_REFINEMENT_MAX_PATCHES else None


def fit_from_measurements(
    patches: Sequence[MeasuredPatch],
    chart_type: str,
    edition: Edition = "2014",
    method: Method | Literal["auto"] = "auto",
    *,
    objective: ObjectiveChoice = "auto",
    chart: ChartDefinition | None = None,
    linear_camera: bool = False,
) -> FitResult:
    """Fit a correction to sampled patches; ``auto`` picks the method, and the objective, by
    leave-one-out cross-validated ΔE2000. A custom ``chart`` brings its own reference values;
    ``linear_camera`` says the patches are a RAW file's camera RGB (:data:`RAW_REFINEMENT_STEPS`)."""
    reference = chart.reference if chart is not None else chart_reference(chart_type, edition)
    steps = refinement_steps(linear_camera, len(patches))
    selection = select_patches(patches, reference)
    measured, used = selection.measured, selection.used
    choice: MethodChoice | None = None
    try:
        least_squares: CrossValidation | None = None
        if method == "auto":
            choice = choose_method(measured, reference, DEFAULT_CANDIDATES, mask=used)
            spec = choice.chosen
            least_squares = choice.score_of(spec)
        else:
            spec = method_spec(method)
        validation = validated_fit(
            measured,
            reference,
            spec,
            mask=used,
            objective=objective,
            least_squares=least_squares,
            refinement_steps=steps,
        )
        correction = validation.correction
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
    other_charts: list[ChartDetection]
    """The other charts found in the photo, most confident first (checked, not fitted)."""
    patches: list[PatchMeasurement]
    reference: ChartReference
    used: NDArray[np.bool_]
    measured: NDArray[np.float64]
    """(N, 3) measured linear RGB in reference order."""
    timings: Timings = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def charts_found(self) -> int:
        return 1 + len(self.other_charts)

    @cached_property
    def report(self) -> DeltaEReport:
        """``before`` is the photo as it is; ``after`` equals it (nothing corrected yet). Made
        when asked: correcting a photo reports from its fit instead."""
        return compare(self.measured, self.measured, self.reference, self.used)

    @property
    def rating(self) -> Rating:
        return rate(self.report.before["CIE 2000"])

    @property
    def delta_e2000(self) -> Summary:
        return self.report.before["CIE 2000"]


def _decode(
    source: bytes | DecodedImage, timings: Timings, white_balance: WhiteBalance = "none"
) -> DecodedImage:
    if isinstance(source, DecodedImage):
        return source
    with _timed(timings, "decode"):
        try:
            return decode_image(source, white_balance=white_balance)
        except UnsupportedImageError as error:
            raise EngineError(error.code, error.message) from None


def search_preview(
    data: bytes, chart_type: str, white_balance: WhiteBalance = "none"
) -> Iterator[CandidateSet] | None:
    """Chart candidates found on a reduced decode of a JPEG or RAW file (None for other formats),
    for :func:`~chromaline.engine.detect.detect_charts`: searching the DCT-scaled preview costs
    far less than downscaling the full decode and searching that."""
    preview = decode_preview(data, PREVIEW_MIN_SIDE, white_balance)
    if preview is None:
        return None
    pixels, reduction = preview
    return preview_candidates(pixels, reduction, chart_type)


ChartSearch = Future[Iterator[CandidateSet] | None]


@contextmanager
def _decoding(
    source: bytes | DecodedImage,
    chart_type: str,
    corners: Sequence[tuple[float, float]] | None,
    timings: Timings,
    white_balance: WhiteBalance = "none",
) -> Iterator[tuple[DecodedImage, ChartSearch | None]]:
    """Decode the photo while a worker thread looks for the chart on a reduced preview of it.

    OpenCV and LibRaw release the GIL while they decode and search, so on two cores the search
    costs little more than the decode. Only JPEGs and RAW files have a cheap preview; other
    sources get no search.
    """
    if isinstance(source, DecodedImage) or corners is not None or chart_type == CUSTOM_CHART_TYPE:
        yield _decode(source, timings, white_balance), None
        return
    data = source
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chart-search") as pool:
        search = pool.submit(search_preview, data, chart_type, white_balance)
        yield _decode(data, timings, white_balance), search


def _detect(
    image: DecodedImage,
    chart_type: str,
    corners: Sequence[tuple[float, float]] | None,
    search: ChartSearch | None,
    timings: Timings,
    small_charts: bool = True,
    chart: ChartDefinition | None = None,
) -> tuple[ChartDetection, list[ChartDetection]]:
    """The chart to measure and the other charts found beside it."""
    if chart is not None:
        with _timed(timings, "detect"):
            return _detect_custom(image, chart, corners)
    with _timed(timings, "detect"):
        if corners is not None:
            known = DEFAULT_CORNER_CHART if chart_type == "auto" else chart_type
            try:
                given, *others = with_other_charts(
                    image, checked_detection_from_corners(image, known, list(corners))
                )
                return given, others
            except NotAChartError as error:
                raise EngineError(error.code, str(error)) from None
            except ValueError as error:
                raise EngineError("unsupported_chart", str(error)) from None
        try:
            candidates = search.result() if search is not None else None
            outcome = detect_charts(image, chart_type, candidates=candidates, small_charts=small_charts)
        except ValueError as error:
            raise EngineError("unsupported_chart", str(error)) from None
    if not outcome.detections:
        raise EngineError(outcome.reason or "no_chart", outcome.message)
    return outcome.detections[0], outcome.detections[1:]


def _detect_custom(
    image: DecodedImage, chart: ChartDefinition, corners: Sequence[tuple[float, float]] | None
) -> tuple[ChartDetection, list[ChartDetection]]:
    if corners is not None:
        try:
            return custom_detection_from_corners(image, chart, corners), []
        except NotAChartError as error:
            raise EngineError(error.code, str(error)) from None
    outcome = detect_custom_chart(image, chart)
    if not outcome.detections:
        raise EngineError(outcome.reason or "no_chart", outcome.message)
    return outcome.detections[0], outcome.detections[1:]


def measure(
    source: bytes | DecodedImage,
    *,
    chart_type: str = "auto",
    edition: Edition = "2014",
    corners: Sequence[tuple[float, float]] | None = None,
    white_balance: WhiteBalance = "none",
    chart: ChartDefinition | None = None,
) -> Measurement:
    """Find the chart, sample its patches and score the photo as it is against the reference
    (``white_balance`` applies to RAW files: whether the camera's is applied when decoding).
    A custom ``chart`` is found by its layout and scored against its own values."""
    timings: Timings = {}
    if chart is not None:
        chart_type = CUSTOM_CHART_TYPE
    with _decoding(source, chart_type, corners, timings, white_balance) as (image, search):
        measurement = _measure_decoded(image, search, chart_type, edition, corners, chart=chart)
    measurement.timings = timings | measurement.timings
    return measurement


def _measure_decoded(
    image: DecodedImage,
    search: ChartSearch | None,
    chart_type: str,
    edition: Edition,
    corners: Sequence[tuple[float, float]] | None,
    small_charts: bool = True,
    chart: ChartDefinition | None = None,
) -> Measurement:
    timings: Timings = {}
    detection, other_charts = _detect(image, chart_type, corners, search, timings, small_charts, chart)
    with _timed(timings, "sample"):
        if chart is not None:
            reference = chart.reference
            patches = sample_custom_chart(image, detection, chart)
        else:
            reference = chart_reference(detection.chart_type, edition)
            patches = sample_patches(image, detection, edition=edition)
    selection = select_patches(patches, reference)
    measured, used = selection.measured, selection.used
    if not used.any():
        raise EngineError("too_few_patches", "every patch on the chart is clipped or unusable")
    return Measurement(
        image=image,
        detection=detection,
        other_charts=other_charts,
        patches=patches,
        reference=reference,
        used=used,
        measured=measured,
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
    image_width: int
    image_height: int
    notes: list[str] = field(default_factory=list)
    guideline: Guideline = DEFAULT_GUIDELINE
    """The rating guideline the report leads with."""
    preview: EncodedImage | None = None
    """A small 8-bit sRGB JPEG of the corrected photo, when asked for (RAW input by default)."""
    previews: PhotoPreviews | None = None
    """The report's pictures of the photo before and after, when asked for."""
    chart: ChartDefinition | None = None
    """The custom chart measured, when it was one."""
    other_charts: list[OtherChart] = field(default_factory=list)
    """The charts found beside the one fitted, with the correction checked on each."""
    profile_mismatches: list[str] = field(default_factory=list)
    """How the saved profile applied does not fit this photo (``profile_mismatch`` warnings)."""

    @property
    def method(self) -> str:
        return self.correction.spec.label

    @property
    def method_label(self) -> str:
        """The method and what its fit minimised, for people."""
        return method_label(self.method, self.correction.objective)

    def measurements(self, filename: str, job_id: uuid.UUID | None = None) -> Measurements:
        """The shared measurements document for this job (no patches when no chart was measured)."""
        measurement = self.measurement
        return measurements_document(
            filename=filename,
            correction=self.correction,
            reference=measurement.reference if measurement else None,
            patches=measurement.patches if measurement else [],
            image_size=(self.image_width, self.image_height),
            corners=measurement.detection.corners if measurement else None,
            cross_validated_delta_e2000=self.fit.cross_validation.cross_validated_mean if self.fit else None,
            timings=self.timings,
            job_id=job_id,
            guideline=self.guideline,
            chart=self.chart,
            other_charts=self.other_charts,
            profile_mismatches=self.profile_mismatches,
        )


def correct_photo(
    source: bytes | DecodedImage,
    *,
    chart_type: str = "auto",
    method: Method | Literal["auto"] = "auto",
    edition: Edition = "2014",
    profile: Profile | None = None,
    corners: Sequence[tuple[float, float]] | None = None,
    output_format: OutputFormat = "jpeg",
    bit_depth: Literal[8, 16] = 8,
    objective: ObjectiveChoice = "auto",
    source_filename: str | None = None,
    guideline: Guideline = DEFAULT_GUIDELINE,
    output_space: OutputSpace = "srgb",
    preview: bool | None = None,
    white_balance: WhiteBalance = "none",
    chart: ChartDefinition | None = None,
    previews: bool = False,
) -> CorrectionResult:
    """Correct one photo: from its own chart, or with a saved ``profile`` (the chart then optional).

    The output is encoded in ``output_space`` with its ICC profile; ``preview`` (by default only
    for RAW input) adds a small sRGB JPEG of the result, ``previews`` the report's pictures of the
    photo before and after (:mod:`chromaline.engine.previews`). ``white_balance`` says whether a RAW
    file's own white balance is applied when decoding (the fit absorbs it either way). A custom
    ``chart`` is found by its layout and fitted to its own values.
    """
    timings: Timings = {}
    notes: list[str] = []
    measurement: Measurement | None
    if chart is not None:
        chart_type = CUSTOM_CHART_TYPE
    with _decoding(source, chart_type, corners, timings, white_balance) as (image, search):
        try:
            # With a saved profile the chart only checks it: no slow search for a small one.
            measurement = _measure_decoded(
                image, search, chart_type, edition, corners, profile is None, chart=chart
            )
        except EngineError as error:
            if profile is None:
                raise
            measurement = None
            notes.append(f"no chart measured ({error.code}); the profile was applied without checking it")
    fit: FitResult | None = None
    mismatches: list[str] = []
    if measurement is not None:
        timings.update(measurement.timings)
        notes.extend(measurement.notes)
    with _timed(timings, "fit"):
        if profile is not None:
            correction = profile.correction()
            mismatches = profile_fit_notes(profile, image)
        else:
            assert measurement is not None
            fit = fit_from_measurements(
                measurement.patches,
                measurement.detection.chart_type,
                edition,
                method,
                objective=objective,
                chart=chart,
                linear_camera=image.linear_camera,
            )
            correction = fit.correction
            profile = fit.profile(source_filename, image)
    report = _report(measurement, correction, fit)
    checked: list[OtherChart] = []
    if measurement is not None and measurement.other_charts:
        with _timed(timings, "check"):
            checked = [
                checked_other_chart(image, other, correction, edition) for other in measurement.other_charts
            ]
    if output_format == "jpeg" and bit_depth == 16:
        bit_depth = 8
        notes.append("JPEG holds 8 bits per channel: the image was written at 8 bits")
    try:
        encoded = apply_and_encode(
            image,
            correction,
            timings,
            output_format=output_format,
            bit_depth=bit_depth,
            output_space=output_space,
        )
        small: EncodedImage | None = None
        if preview if preview is not None else image.linear_camera:
            with _timed(timings, "preview"):
                small = preview_jpeg(image, correction)
        pictures: PhotoPreviews | None = None
        if previews:
            with _timed(timings, "previews"):
                pictures = photo_previews(image, correction)
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
        rating_before=rate(report.before["CIE 2000"], guideline) if report else None,
        rating_after=rate(report.after["CIE 2000"], guideline) if report else None,
        timings=timings,
        image_width=image.width,
        image_height=image.height,
        notes=notes,
        guideline=guideline,
        preview=small,
        previews=pictures,
        chart=chart,
        other_charts=checked,
        profile_mismatches=mismatches,
    )


PREVIEW_LONG_SIDE = 2048


def preview_jpeg(
    image: DecodedImage, correction: Correction, long_side: int = PREVIEW_LONG_SIDE
) -> EncodedImage:
    """The corrected photo as an 8-bit sRGB JPEG whose long side is at most ``long_side``
    (area-averaged from the decoded codes: a preview, not a measurement)."""
    small = reduced(image, long_side)
    corrected = apply_correction(small, correction, bit_depth=8)
    return encode_image(np.asarray(corrected, dtype=np.uint8), "jpeg", exif=image.exif)


def profile_fit_notes(profile: Profile, image: DecodedImage) -> list[str]:
    """What to tell people when a saved profile is applied to a photo it was not made for."""
    notes: list[str] = []
    raw_profile = profile.input_encoding == "linear-camera"
    if raw_profile and not image.linear_camera:
        notes.append(
            "the profile was made from a RAW file's linear camera RGB, but this photo is encoded "
            f"({image.transfer}): its colours will be off; use a profile made from the same kind of file"
        )
    elif image.linear_camera and not raw_profile:
        notes.append(
            "the profile was made from an encoded photo, but this is a RAW file in linear camera RGB: "
            "its colours will be off; make a profile from a RAW chart shot of this camera"
        )
    if profile.camera_model and image.camera_model and profile.camera_model != image.camera_model:
        notes.append(
            f"the profile was made with a {profile.camera_model}; this photo is from a {image.camera_model}: "
            "a camera profile only fits the camera it was made with"
        )
    return notes


def apply_and_encode(
    image: DecodedImage,
    correction: Correction,
    timings: Timings,
    *,
    output_format: OutputFormat,
    bit_depth: Literal[8, 16],
    output_space: OutputSpace = "srgb",
) -> EncodedImage:
    """The corrected photo, encoded in ``output_space`` with its ICC profile; a JPEG strip by strip
    on two threads (:func:`_apply_and_encode_jpeg`). Adds ``apply`` and ``encode`` to ``timings``;
    raises :class:`~chromaline.engine.encode.EncodeError`."""
    if output_format == "jpeg":
        return _apply_and_encode_jpeg(image, correction, timings, output_space)
    with _timed(timings, "apply"):
        pixels = apply_correction(image, correction, bit_depth=bit_depth, output_space=output_space)
    with _timed(timings, "encode"):
        return encode_image(
            pixels, output_format, exif=image.exif, icc_profile=embedded_profile(output_space)
        )


JPEG_THREADS = 2
"""Threads that correct and encode the strips of a JPEG, each taking the next strip in turn."""


def _apply_and_encode_jpeg(
    image: DecodedImage, correction: Correction, timings: Timings, output_space: OutputSpace = "srgb"
) -> EncodedImage:
    """Correct and encode the photo strip by strip, each of two threads taking the next strip and
    doing both (OpenCV releases the GIL for each), so both cores share all the work: about half
    the sum of correcting and encoding, where correcting on this thread while one worker encoded
    took as long as the slower of the two.

    ``apply`` and ``encode`` are the time the threads spent on each, over the thread count: the
    shares of the stage's wall time when both threads are busy throughout.
    """
    encoder = JpegStripEncoder(
        image.width, image.height, image.exif, icc_profile=embedded_profile(output_space)
    )
    spent = np.zeros((encoder.strip_count, 2))  # seconds correcting and encoding each strip

    def correct_and_encode(number: int) -> None:
        started = time.perf_counter()
        strip = replace(image, pixels=image.pixels[encoder.rows(number)])
        corrected = apply_correction(
            strip, correction, bit_depth=8, workers=1, bgr=True, output_space=output_space
        )
        corrected_at = time.perf_counter()
        encoder.encode(number, np.asarray(corrected, dtype=np.uint8), bgr=True)
        spent[number] = (corrected_at - started, time.perf_counter() - corrected_at)

    with ThreadPoolExecutor(max_workers=JPEG_THREADS, thread_name_prefix="jpeg-strips") as pool:
        list(pool.map(correct_and_encode, range(encoder.strip_count)))
    finishing = time.perf_counter()
    encoded = encoder.finish()
    applying, encoding = spent.sum(axis=0) / JPEG_THREADS
    timings["apply"] = applying * 1000.0
    timings["encode"] = (encoding + time.perf_counter() - finishing) * 1000.0
    return encoded


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


_DOCUMENT_KEYS: dict[DeltaEMethod, str] = {
    "CIE 1976": "cie1976",
    "CIE 1994": "cie1994",
    "CIE 2000": "cie2000",
}


def _summaries(summaries: dict[DeltaEMethod, Summary]) -> DeltaESummaries:
    return DeltaESummaries.model_validate(
        {key: SummaryDocument(**vars(summaries[method])) for method, key in _DOCUMENT_KEYS.items()}
    )


def _triple(values: NDArray[np.floating]) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _srgb8(linear: NDArray[np.floating]) -> NDArray[np.int64]:
    return np.asarray(np.rint(srgb_encode(np.asarray(linear, dtype=np.float64)) * 255), dtype=np.int64)


def _patch_results(
    correction: Correction, reference: ChartReference, patches: Sequence[SampledPatch]
) -> tuple[list[PatchResult], DeltaEReport]:
    selection = select_patches(patches, reference)
    after_rgb = np.asarray(correction.apply_to_pixels(selection.measured), dtype=np.float64)
    report = compare(selection.measured, after_rgb, reference, selection.used)
    before_lab = working_rgb_to_lab(selection.measured, reference.white_xy)
    after_lab = working_rgb_to_lab(after_rgb, reference.white_xy)
    before_srgb, after_srgb, reference_srgb = (
        _srgb8(selection.measured),
        _srgb8(after_rgb),
        _srgb8(reference.rgb),
    )
    by_index = {patch.index: patch for patch in patches}
    results = []
    for scored in report.patches:
        i = scored.index
        sampled = by_index.get(i)
        quad = (
            [(0.0, 0.0)] * 4
            if sampled is None
            else [(float(x), float(y)) for x, y in np.asarray(sampled.quad)]
        )
        results.append(
            PatchResult(
                index=i,
                name=scored.name,
                reference_lab=_triple(reference.lab[i]),
                before_lab=_triple(before_lab[i]),
                after_lab=_triple(after_lab[i]),
                before_srgb=(int(before_srgb[i, 0]), int(before_srgb[i, 1]), int(before_srgb[i, 2])),
                after_srgb=(int(after_srgb[i, 0]), int(after_srgb[i, 1]), int(after_srgb[i, 2])),
                reference_srgb=(
                    int(reference_srgb[i, 0]),
                    int(reference_srgb[i, 1]),
                    int(reference_srgb[i, 2]),
                ),
                delta_e76=(scored.before["CIE 1976"], scored.after["CIE 1976"]),
                delta_e94=(scored.before["CIE 1994"], scored.after["CIE 1994"]),
                delta_e2000=(scored.before["CIE 2000"], scored.after["CIE 2000"]),
                flags=[] if sampled is None else list(sampled.flags),
                used_in_fit=scored.used,
                quad=quad,
            )
        )
    return results, report


def checked_other_chart(
    image: DecodedImage, detection: ChartDetection, correction: Correction, edition: Edition = "2014"
) -> OtherChart:
    """A chart found beside the fitted one, its patches measured and compared with its reference
    before and after ``correction``. No ΔE when none of its patches is usable, or when its corners
    make no quadrilateral to sample (corners another process sent): the check never fails the job."""
    found = OtherChart(
        chart_type=detection.chart_type,
        corners=[(float(x), float(y)) for x, y in detection.corners],
        confidence=float(np.clip(detection.confidence, 0.0, 1.0)),
    )
    reference = chart_reference(detection.chart_type, edition)
    try:
        patches = sample_patches(image, detection, edition=edition)
    except (ValueError, np.linalg.LinAlgError):
        return found
    selection = select_patches(patches, reference)
    if not selection.used.any():
        return found
    after = np.asarray(correction.apply_to_pixels(selection.measured), dtype=np.float64)
    report = compare(selection.measured, after, reference, selection.used)
    return found.model_copy(
        update={
            "patches_compared": int(selection.used.sum()),
            "delta_e2000_before": SummaryDocument(**vars(report.before["CIE 2000"])),
            "delta_e2000_after": SummaryDocument(**vars(report.after["CIE 2000"])),
        }
    )


def check_found_charts(
    image: DecodedImage, charts: Sequence[OtherChart], correction: Correction, edition: Edition = "2014"
) -> list[OtherChart]:
    """Charts another process found (type, corners and confidence), each checked with ``correction``."""
    return [
        checked_other_chart(
            image,
            replace(detection_from_corners(chart.chart_type, chart.corners), confidence=chart.confidence),
            correction,
            edition,
        )
        for chart in charts
    ]


def measurements_document(
    *,
    filename: str,
    correction: Correction,
    reference: ChartReference | None,
    patches: Sequence[SampledPatch],
    image_size: tuple[int, int],
    corners: Sequence[tuple[float, float]] | NDArray[np.floating] | None = None,
    cross_validated_delta_e2000: float | None = None,
    timings: Timings | None = None,
    job_id: uuid.UUID | None = None,
    guideline: Guideline = DEFAULT_GUIDELINE,
    chart: ChartDefinition | None = None,
    other_charts: Sequence[OtherChart] = (),
    profile_mismatches: Sequence[str] = (),
) -> Measurements:
    """The measurements document (see :mod:`chromaline.common.measurements`) for corrected patches;
    ``chart`` is the custom chart measured, if it was one, ``other_charts`` those found beside it,
    ``profile_mismatches`` how the saved profile applied does not fit the photo."""
    results: list[PatchResult] = []
    report: DeltaEReport | None = None
    warnings: list[ResultWarning] = []
    if reference is not None and patches:
        results, report = _patch_results(correction, reference, patches)
        layout = chart.layout if chart is not None else chart_layout(reference.chart_type)
        side = None if corners is None else layout_patch_side_px(layout, np.asarray(corners))
        warnings = result_warnings(results, cross_validated_delta_e2000, side, guideline)
    warnings += [ResultWarning(code="profile_mismatch", message=text) for text in profile_mismatches]
    return Measurements(
        job_id=job_id,
        filename=filename,
        chart_type=reference.chart_type if report and reference else None,
        reference_edition=reference.edition if report and reference else None,
        method=correction.spec.label,
        objective=correction.objective,
        corners=None if corners is None else [(float(x), float(y)) for x, y in np.asarray(corners)],
        image_size=image_size,
        patches=results,
        before=_summaries(report.before) if report else None,
        after=_summaries(report.after) if report else None,
        cross_validated_delta_e2000=cross_validated_delta_e2000,
        rating_before=str(rate(report.before["CIE 2000"], guideline)) if report else None,
        rating_after=str(rate(report.after["CIE 2000"], guideline)) if report else None,
        rating_guideline=guideline.name,
        timings_ms=dict(timings or {}),
        warnings=warnings,
        other_charts=list(other_charts),
    )
