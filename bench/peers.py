"""The pipelines compared: ours and the chart-correction tools installable from PyPI.

Each pipeline takes the photo's bytes and returns a :class:`PipelineOutcome`: the patch centres it
found (reference order) and its corrected image as 8-bit sRGB. ``seconds`` is the wall time from
bytes to the corrected pixels; ours also includes encoding the output JPEG, the peers stop at the
corrected array (and the colour-science pipelines' conversion of it to 8 bits is not timed).

- ``chromaline``: :func:`chromaline.engine.correct.correct_photo` with its defaults (automatic
  chart type and method).
- ``opencv mcc+ccm``: ``cv2.mcc.CCheckerDetector`` (MCC24) on the full-resolution photo, then
  ``cv2.ccm.ColorCorrectionModel`` with the Macbeth reference, a linear 3×3 matrix, gamma 2.2
  linearisation and sRGB as the target space, applied with ``correctImage``.
- ``ccd+colour Cheung 2004`` / ``ccd+colour Finlayson 2015``: colour-checker-detection's
  segmentation detector, its swatch colours decoded from sRGB, then
  ``colour.characterisation.matrix_colour_correction`` (Cheung 2004 with 3 terms; Finlayson 2015
  root-polynomial of degree 2) fitted to the chart reference in linear sRGB, applied to the
  linearised photo with ``apply_matrix_colour_correction``.
- ``plantcv``: PlantCV's ``transform.detect_color_card`` (its default settings) and the affine
  correction its ``auto_correct_color`` makes: the chips' mean colours mapped onto PlantCV's
  standard card values (``std_color_matrix(pos=1)``: the white chip's position in PlantCV's chip
  order for these charts) by ``affine_color_correction``, in 8-bit sRGB code values, as PlantCV
  does it.
  Which chip is which reference patch comes from PlantCV's own standard values (each chip is
  matched to the reference patch nearest its standard colour), never from the scene's truth.

Each outcome also carries its fitted correction as a function of another 8-bit sRGB photo, applied
the way the pipeline applies it to its own photo: ours through the engine's
:func:`~chromaline.engine.apply.apply_correction` with the returned profile's correction;
OpenCV's through the fitted model's ``correctImage``; colour's through
``apply_matrix_colour_correction`` with the fitted matrix, on the sRGB-decoded photo.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import colour
import cv2
import numpy as np
from numpy.typing import NDArray

from bench.accuracy import CHART, PipelineOutcome, reference_chart
from chromaline.engine.apply import apply_correction
from chromaline.engine.correct import EngineError, correct_photo
from chromaline.engine.fit import Correction
from chromaline.engine.geometry import patch_centres
from chromaline.engine.image_io import SRGB_ENCODING, DecodedImage

Pipeline = Callable[[bytes], list[PipelineOutcome]]
CHROMALINE = "chromaline"
OPENCV = "opencv mcc+ccm"
CCD_CHEUNG = "ccd+colour Cheung 2004"
CCD_FINLAYSON = "ccd+colour Finlayson 2015"
PLANTCV = "plantcv"
CCD_WORKING_WIDTH = 1440
"""colour-checker-detection's default working width (it detects on a copy resized to this)."""


def _decode_bgr(data: bytes) -> NDArray[np.uint8]:
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("cv2 cannot decode the photo")
    return np.asarray(bgr, dtype=np.uint8)


def _decode_rgb(data: bytes) -> NDArray[np.uint8]:
    bgr = _decode_bgr(data)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _chromaline_correct(correction: Correction, rgb8: NDArray[np.uint8]) -> NDArray[np.uint8]:
    image = DecodedImage(
        pixels=rgb8,
        bit_depth=8,
        transfer=SRGB_ENCODING.description,
        icc_profile=None,
        exif=None,
        format="jpeg",
    )
    return np.asarray(apply_correction(image, correction, bit_depth=8), dtype=np.uint8)


def chromaline_pipeline(data: bytes) -> list[PipelineOutcome]:
    started = time.perf_counter()
    try:
        result = correct_photo(data)
    except EngineError as error:
        return [PipelineOutcome(CHROMALINE, None, None, time.perf_counter() - started, error.code)]
    seconds = time.perf_counter() - started
    assert result.measurement is not None
    detection = result.measurement.detection
    centres = patch_centres(detection.chart_type, detection.corners)
    if detection.chart_type != CHART:
        return [PipelineOutcome(CHROMALINE, None, None, seconds, f"found a {detection.chart_type}")]
    correct_other = partial(_chromaline_correct, result.profile.correction())
    corrected = _decode_rgb(result.encoded.data)
    return [PipelineOutcome(CHROMALINE, centres, corrected, seconds, result.method, correct_other)]


def _opencv_correct(model: Any, rgb8: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(model.correctImage(rgb8), dtype=np.uint8)


def opencv_pipeline(data: bytes) -> list[PipelineOutcome]:
    started = time.perf_counter()
    bgr = _decode_bgr(data)
    detector = cv2.mcc.CCheckerDetector_create()  # type: ignore[attr-defined]  # missing from the stubs
    detector.setColorChartType(cv2.mcc.MCC24)
    if not detector.process(bgr, 1):
        return [PipelineOutcome(OPENCV, None, None, time.perf_counter() - started, "no chart")]
    checker = detector.getBestColorChecker()
    centres = np.asarray(checker.getColorCharts(), dtype=np.float64).reshape(24, 4, 2).mean(axis=1)
    # getChartsRGB: one row per (patch, channel) with [pixel count, mean, stddev, min, max].
    means = np.asarray(checker.getChartsRGB(), dtype=np.float64).reshape(24, 3, 5)[:, :, 1] / 255.0
    model = cv2.ccm.ColorCorrectionModel(means.reshape(24, 1, 3), cv2.ccm.COLORCHECKER_MACBETH)
    model.setColorSpace(cv2.ccm.COLOR_SPACE_SRGB)
    model.setCcmType(cv2.ccm.CCM_LINEAR)
    model.setLinearization(cv2.ccm.LINEARIZATION_GAMMA)
    model.setLinearizationGamma(2.2)
    model.compute()
    corrected = _opencv_correct(model, np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8))
    seconds = time.perf_counter() - started
    return [
        PipelineOutcome(OPENCV, centres, corrected, seconds, "CCM_LINEAR", partial(_opencv_correct, model))
    ]


def _ccd_centres(detected: Any, image_size: tuple[int, int]) -> NDArray[np.float64]:
    """Swatch centres in the photo, from the swatch masks in the detector's levelled chart image."""
    width, height = image_size
    portrait = width < height
    working_width = CCD_WORKING_WIDTH
    landscape_width = height if portrait else width
    ratio = landscape_width / working_width
    levelled_height, levelled_width = detected.colour_checker.shape[:2]
    # The detector's own target rectangle, which starts at the top-right corner.
    rectangle = np.array(
        [[levelled_width, 0], [levelled_width, levelled_height], [0, levelled_height], [0, 0]],
        dtype=np.float32,
    )
    to_levelled = cv2.getPerspectiveTransform(np.asarray(detected.quadrilateral, dtype=np.float32), rectangle)
    masks = np.asarray(detected.swatch_masks, dtype=np.float64)
    levelled = np.stack([(masks[:, 2] + masks[:, 3]) / 2, (masks[:, 0] + masks[:, 1]) / 2], axis=1)
    working = cv2.perspectiveTransform(levelled.reshape(-1, 1, 2), np.linalg.inv(to_levelled)).reshape(-1, 2)
    x, y = working[:, 0] * ratio, working[:, 1] * ratio
    if portrait:
        # The detector turned a portrait photo 90° clockwise before resizing it.
        x, y = y, height - 1 - x
    return np.stack([x, y], axis=1).astype(np.float64)


def _srgb8_from_linear(linear: NDArray[np.floating]) -> NDArray[np.uint8]:
    encoded = colour.cctf_encoding(np.clip(linear, 0.0, 1.0), function="sRGB")
    return np.asarray(np.rint(np.asarray(encoded) * 255.0), dtype=np.uint8)


def _colour_correct(
    matrix: NDArray[np.floating], method: str, options: dict[str, int], rgb8: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    linear = np.asarray(colour.cctf_decoding(rgb8.astype(np.float32) / 255.0, function="sRGB"))
    corrected = colour.characterisation.apply_matrix_colour_correction(
        linear, matrix, method=method, **options
    )
    return _srgb8_from_linear(corrected)


def ccd_pipelines(data: bytes) -> list[PipelineOutcome]:
    names = (CCD_CHEUNG, CCD_FINLAYSON)
    try:
        from colour_checker_detection import detect_colour_checkers_segmentation
    except ImportError:
        return [PipelineOutcome(name, None, None, 0.0, "not installed") for name in names]
    started = time.perf_counter()
    rgb = _decode_rgb(data).astype(np.float32) / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = detect_colour_checkers_segmentation(rgb, additional_data=True)
    if not found:
        seconds = time.perf_counter() - started
        return [PipelineOutcome(name, None, None, seconds, "no chart") for name in names]
    detected = found[0]
    centres = _ccd_centres(detected, (rgb.shape[1], rgb.shape[0]))
    swatches = np.asarray(colour.cctf_decoding(detected.swatch_colours, function="sRGB"), dtype=np.float64)
    linear = np.asarray(colour.cctf_decoding(rgb, function="sRGB"))
    shared = time.perf_counter() - started
    target = reference_chart().rgb
    outcomes = []
    for name, method, options in (
        (CCD_CHEUNG, "Cheung 2004", {"terms": 3}),
        (CCD_FINLAYSON, "Finlayson 2015", {"degree": 2}),
    ):
        fit_started = time.perf_counter()
        matrix = colour.characterisation.matrix_colour_correction(swatches, target, method=method, **options)
        corrected = colour.characterisation.apply_matrix_colour_correction(
            linear, matrix, method=method, **options
        )
        seconds = shared + time.perf_counter() - fit_started
        correct_other = partial(_colour_correct, matrix, method, options)
        outcomes.append(
            PipelineOutcome(name, centres, _srgb8_from_linear(corrected), seconds, method, correct_other)
        )
    return outcomes


PLANTCV_WHITE_POSITION = 1
"""``std_color_matrix``'s card position whose chip order matches the charts in these photos, as a
PlantCV user sets it once per setup (``auto_correct_color`` assumes 3, another orientation)."""


def _plantcv_correct(
    source: NDArray[np.floating], target: NDArray[np.floating], rgb8: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    from plantcv import plantcv as pcv

    bgr = np.ascontiguousarray(rgb8[:, :, ::-1])
    corrected = pcv.transform.affine_color_correction(rgb_img=bgr, source_matrix=source, target_matrix=target)
    return np.ascontiguousarray(np.asarray(corrected, dtype=np.uint8)[:, :, ::-1])


def _plantcv_reference_order(standard: NDArray[np.floating]) -> NDArray[np.intp]:
    """For each reference patch, the row of PlantCV's standard matrix (index, R, G, B in 0-1)
    whose colour is nearest the patch's published colour."""
    reference = np.asarray(colour.cctf_encoding(np.clip(reference_chart().rgb, 0.0, 1.0), function="sRGB"))
    distances = np.linalg.norm(reference[:, None, :] - standard[None, :, 1:], axis=2)
    return np.asarray(distances.argmin(axis=1), dtype=np.intp)


def plantcv_pipeline(data: bytes) -> list[PipelineOutcome]:
    try:
        from plantcv import plantcv as pcv
    except ImportError:
        return [PipelineOutcome(PLANTCV, None, None, 0.0, "not installed")]
    started = time.perf_counter()
    bgr = _decode_bgr(data)
    # PlantCV prints its deprecation notices to standard error.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            mask = pcv.transform.detect_color_card(rgb_img=bgr)
        except RuntimeError as error:
            return [PipelineOutcome(PLANTCV, None, None, time.perf_counter() - started, f"no chart: {error}")]
        _, source = pcv.transform.get_color_matrix(rgb_img=bgr, mask=mask)
        target = pcv.transform.std_color_matrix(pos=PLANTCV_WHITE_POSITION)
        corrected = pcv.transform.affine_color_correction(
            rgb_img=bgr, source_matrix=source, target_matrix=target
        )
    seconds = time.perf_counter() - started
    labels = np.asarray(source[:, 0])
    order = _plantcv_reference_order(np.asarray(target, dtype=np.float64))
    chips = [np.argwhere(mask == label) for label in labels[order]]
    centres = np.array([chip.mean(axis=0)[::-1] for chip in chips], dtype=np.float64)
    rgb = np.ascontiguousarray(np.asarray(corrected, dtype=np.uint8)[:, :, ::-1])
    return [
        PipelineOutcome(PLANTCV, centres, rgb, seconds, "affine", partial(_plantcv_correct, source, target))
    ]


PIPELINES: tuple[tuple[tuple[str, ...], Pipeline], ...] = (
    ((CHROMALINE,), chromaline_pipeline),
    ((OPENCV,), opencv_pipeline),
    ((CCD_CHEUNG, CCD_FINLAYSON), ccd_pipelines),
    ((PLANTCV,), plantcv_pipeline),
)


def pipeline_names() -> list[str]:
    return [name for names, _ in PIPELINES for name in names]
