"""Fitting a colour correction from measured chart patches.

Every method is linear in its coefficients once the measured RGB is expanded into terms, so the
fit is ordinary (optionally weighted) least squares in linear working RGB; a second stage can
refine that solution by minimising the mean ΔE2000 against the published Lab reference
(:mod:`chromaline.engine.delta_e_fit`).

Methods and their terms (r, g, b linear, rows of the coefficient matrix map terms to one output
channel):

- ``white_balance``: diagonal gains from the neutral patches only.
- ``linear3x3``: r, g, b.
- ``affine3x4``: r, g, b, 1.
- ``root_polynomial``: Finlayson, Mackiewicz & Hurlbert (2015), "Color Correction Using
  Root-Polynomial Regression", IEEE TIP 24(5). Every term has degree one in the exposure
  (products raised to 1/order), so scaling the input scales the output.
- ``polynomial``: Cheung, Westland, Connah & Ripamonti (2004), "A comparative study of the
  characterisation of colour cameras by means of neural networks and polynomial transforms",
  Coloration Technology 120(1): the 10-term second-degree set r, g, b, rg, rb, gb, r², g², b², 1.

Methods are chosen by leave-one-patch-out cross-validated ΔE2000, never by training error, which
always favours the method with most terms; so is the objective (:func:`validated_fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.delta_e_fit import design_matrix, minimise_mean_delta_e2000
from chromaline.engine.metrics import ChartReference, FloatArray, delta_e, working_rgb_to_lab

Method = Literal["white_balance", "linear3x3", "affine3x4", "root_polynomial", "polynomial"]
Objective = Literal["least_squares", "delta_e2000"]
ObjectiveChoice = Objective | Literal["auto"]
OBJECTIVES: tuple[Objective, ...] = ("least_squares", "delta_e2000")
METHODS: tuple[Method, ...] = ("white_balance", "linear3x3", "affine3x4", "root_polynomial", "polynomial")
WORKING_SPACE_NAME: Literal["sRGB-linear"] = "sRGB-linear"
NEUTRAL_MAX_CHROMA = 4.0
"""Reference patches with C*ab below this count as neutral for white balance."""
OBJECTIVE_MARGIN = 1e-3
"""ΔE2000 by which minimising ΔE2000 must beat least squares held out to be chosen: far below a
visible difference, above the rounding noise of two fits that are both exact."""
OVERFIT_RATIO = 2.0
OVERFIT_MARGIN = 1.0

Floating = TypeVar("Floating", np.float32, np.float64)


class FitError(ValueError):
    """The data cannot support the requested fit (too few patches, no neutrals...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MethodSpec:
    method: Method
    degree: int = 1

    def __post_init__(self) -> None:
        allowed = {"root_polynomial": (2, 3), "polynomial": (2,)}.get(self.method, (1,))
        if self.degree not in allowed:
            raise ValueError(f"{self.method} supports degree {allowed}, not {self.degree}")

    @property
    def term_count(self) -> int:
        return TERM_COUNTS[(self.method, self.degree)]

    @property
    def label(self) -> str:
        return self.method if self.degree == 1 else f"{self.method}(degree={self.degree})"


TERM_COUNTS: dict[tuple[Method, int], int] = {
    ("white_balance", 1): 3,
    ("linear3x3", 1): 3,
    ("affine3x4", 1): 4,
    ("root_polynomial", 2): 6,
    ("root_polynomial", 3): 13,
    ("polynomial", 2): 10,
}
DEFAULT_DEGREE: dict[Method, int] = {"root_polynomial": 2, "polynomial": 2}
DEFAULT_CANDIDATES: tuple[MethodSpec, ...] = (
    MethodSpec("white_balance"),
    MethodSpec("linear3x3"),
    MethodSpec("affine3x4"),
    MethodSpec("root_polynomial", 2),
    MethodSpec("root_polynomial", 3),
    MethodSpec("polynomial", 2),
)


def method_spec(method: Method | MethodSpec, degree: int | None = None) -> MethodSpec:
    if isinstance(method, MethodSpec):
        return method
    return MethodSpec(method, degree if degree is not None else DEFAULT_DEGREE.get(method, 1))


def term_planes(
    r: NDArray[Floating], g: NDArray[Floating], b: NDArray[Floating], spec: MethodSpec
) -> list[NDArray[Floating]]:
    """The terms of ``spec`` as separate arrays shaped like the channel arrays ``r, g, b``."""
    if spec.method in ("white_balance", "linear3x3"):
        return [r, g, b]
    if spec.method == "affine3x4":
        return [r, g, b, np.ones_like(r)]
    if spec.method == "polynomial":
        return [r, g, b, r * g, r * b, g * b, r * r, g * g, b * b, np.ones_like(r)]
    # Roots of negative noise would be NaN; the root terms see the non-negative part only.
    rp, gp, bp = np.maximum(r, 0), np.maximum(g, 0), np.maximum(b, 0)
    terms = [r, g, b, np.sqrt(rp * gp), np.sqrt(gp * bp), np.sqrt(rp * bp)]
    if spec.degree == 3:
        terms += [
            np.cbrt(rp * gp * gp),
            np.cbrt(gp * bp * bp),
            np.cbrt(rp * bp * bp),
            np.cbrt(gp * rp * rp),
            np.cbrt(bp * gp * gp),
            np.cbrt(bp * rp * rp),
            np.cbrt(rp * gp * bp),
        ]
    return terms


def expand(rgb: NDArray[Floating], spec: MethodSpec) -> NDArray[Floating]:
    """The (N, K) term matrix of ``spec`` for linear RGB rows, in the input's float type."""
    return np.stack(term_planes(rgb[:, 0], rgb[:, 1], rgb[:, 2], spec), axis=1)


@dataclass
class Correction:
    """A fitted correction: ``output = expand(rgb) @ coefficients.T`` in linear working RGB."""

    method: Method
    coefficients: FloatArray
    degree: int = 1
    working_space: str = WORKING_SPACE_NAME
    objective: Objective = "least_squares"

    def __post_init__(self) -> None:
        self.coefficients = np.asarray(self.coefficients, dtype=np.float64)
        expected = (3, self.spec.term_count)
        if self.coefficients.shape != expected:
            raise ValueError(
                f"{self.spec.label} needs coefficients of shape {expected}, got {self.coefficients.shape}"
            )

    @property
    def spec(self) -> MethodSpec:
        return MethodSpec(self.method, self.degree)

    @property
    def is_matrix(self) -> bool:
        """True when the correction is a 3×3 or 3×4 matrix (applied with cv2.transform)."""
        return self.method in ("white_balance", "linear3x3", "affine3x4")

    def matrix_3x4(self) -> FloatArray:
        """The correction as a 3×4 affine matrix; only for matrix methods."""
        if not self.is_matrix:
            raise ValueError(f"{self.spec.label} is not a matrix correction")
        if self.coefficients.shape[1] == 4:
            return self.coefficients.copy()
        return np.hstack([self.coefficients, np.zeros((3, 1))])

    def apply_to_pixels(self, rgb_linear: NDArray[np.floating]) -> NDArray[np.floating]:
        """Corrected (N, 3) linear RGB, in the input's precision (float32 stays float32)."""
        rgb = np.asarray(rgb_linear)
        if rgb.dtype == np.float32:
            rgb32 = np.asarray(rgb, dtype=np.float32)
            return np.asarray(expand(rgb32, self.spec) @ self.coefficients.T.astype(np.float32))
        rgb64 = np.asarray(rgb, dtype=np.float64)
        return np.asarray(expand(rgb64, self.spec) @ self.coefficients.T)

    @classmethod
    def identity(cls) -> Correction:
        return cls("linear3x3", np.eye(3))


def neutral_mask(reference: ChartReference) -> NDArray[np.bool_]:
    chroma = np.hypot(reference.lab[:, 1], reference.lab[:, 2])
    return np.asarray(chroma < NEUTRAL_MAX_CHROMA)


def _used_mask(count: int, mask: NDArray[np.bool_] | Sequence[bool] | None) -> NDArray[np.bool_]:
    used = np.ones(count, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if used.shape != (count,):
        raise ValueError(f"mask must have one entry per patch ({count}), got shape {used.shape}")
    return used


def _weights(count: int, weights: NDArray[np.floating] | Sequence[float] | None) -> FloatArray:
    w = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite, non-negative and one per patch")
    return w


def _least_squares(
    measured: FloatArray, target: FloatArray, weights: FloatArray, spec: MethodSpec
) -> FloatArray:
    root_w = np.sqrt(weights)[:, None]
    if spec.method == "white_balance":
        num = np.sum(weights[:, None] * measured * target, axis=0)
        den = np.sum(weights[:, None] * measured * measured, axis=0)
        if np.any(den <= 0):
            raise FitError(
                "too_few_patches", "white balance needs neutral patches with signal in every channel"
            )
        return np.diag(num / den)
    terms = expand(measured, spec) * root_w
    solution, *_ = np.linalg.lstsq(terms, target * root_w, rcond=None)
    return np.asarray(solution.T, dtype=np.float64)


def _weighted_least_squares_batch(terms: FloatArray, target: FloatArray, weights: FloatArray) -> FloatArray:
    """``(B, 3, K)``: the least-squares fit of ``terms`` onto ``target`` under each row of
    ``weights`` ``(B, N)``, as :func:`np.linalg.lstsq` finds it (minimum norm, the same cut-off
    for small singular values), all rows in one batched pseudo-inverse."""
    root = np.sqrt(weights)[..., None]
    cutoff = np.finfo(np.float64).eps * max(terms.shape)
    inverse = np.linalg.pinv(terms[None] * root, rtol=cutoff)
    return np.asarray(np.matmul(inverse, target[None] * root).transpose(0, 2, 1), dtype=np.float64)


def _refine_delta_e2000(
    starts: FloatArray,
    measured: FloatArray,
    reference: ChartReference,
    weights: FloatArray,
    spec: MethodSpec,
    steps: int | None = None,
) -> FloatArray:
    """Coefficients ``(B, 3, K)`` minimising each problem's weighted mean ΔE2000, from the
    least-squares ``starts``; ``weights`` ``(B, N)`` are zero where a problem leaves a patch out."""
    diagonal = spec.method == "white_balance"
    design = design_matrix(measured if diagonal else expand(measured, spec), diagonal)
    params = np.stack([np.diag(start) for start in starts]) if diagonal else starts.reshape(len(starts), -1)
    refined = minimise_mean_delta_e2000(design, params, weights, reference, steps)
    if diagonal:
        return np.stack([np.diag(gains) for gains in refined])
    return refined.reshape(starts.shape)


def fit_correction(
    measured: NDArray[np.floating],
    reference: ChartReference,
    method: Method | MethodSpec = "linear3x3",
    *,
    degree: int | None = None,
    mask: NDArray[np.bool_] | Sequence[bool] | None = None,
    weights: NDArray[np.floating] | Sequence[float] | None = None,
    objective: Objective = "least_squares",
    refinement_steps: int | None = None,
) -> Correction:
    """Fit ``method`` mapping measured linear RGB (N, 3) onto the chart reference.

    ``mask`` excludes patches (e.g. flagged clipped by the detector); ``weights`` weight the
    remaining ones. White balance only uses the neutral patches among those kept.
    ``refinement_steps`` bounds the ΔE2000 refinement's steps (its default when None).
    """
    spec = method_spec(method, degree)
    measured64 = np.asarray(measured, dtype=np.float64)
    if measured64.shape != (reference.patch_count, 3):
        raise ValueError(f"measured must have shape ({reference.patch_count}, 3), got {measured64.shape}")
    used = _used_mask(reference.patch_count, mask)
    w = _weights(reference.patch_count, weights)
    if not np.all(np.isfinite(measured64[used])):
        # LAPACK's least squares never returns on an infinite value.
        raise FitError("invalid_measurements", "measured colours must be finite numbers")
    if spec.method == "white_balance":
        used = used & neutral_mask(reference)
        if not used.any():
            raise FitError("too_few_patches", "no usable neutral patch for white balance")
    if used.sum() < 3:
        raise FitError(
            "too_few_patches", f"{spec.label} needs at least 3 usable patches, got {int(used.sum())}"
        )
    kept = reference.subset(used)
    coefficients = _least_squares(measured64[used], kept.rgb, w[used], spec)
    if objective == "delta_e2000":
        coefficients = _refine_delta_e2000(
            coefficients[None], measured64[used], kept, w[used][None], spec, refinement_steps
        )[0]
    return Correction(spec.method, coefficients, degree=spec.degree, objective=objective)


def correction_delta_e2000(
    correction: Correction, measured: NDArray[np.floating], reference: ChartReference
) -> FloatArray:
    """Per-patch ΔE2000 of the corrected measurements against the reference."""
    corrected = correction.apply_to_pixels(np.asarray(measured, dtype=np.float64))
    return delta_e(reference.lab, working_rgb_to_lab(corrected, reference.white_xy), "CIE 2000")


@dataclass(frozen=True)
class CrossValidation:
    spec: MethodSpec
    correction: Correction = field(repr=False)
    """The fit on every used patch, whose leave-one-out score this is."""
    training_mean: float
    cross_validated_mean: float
    per_patch: FloatArray = field(repr=False)
    """Held-out ΔE2000 per patch; NaN for patches that were not used."""

    @property
    def overfit(self) -> bool:
        """Held-out error far above training error: the method memorises the chart."""
        return (
            self.cross_validated_mean > OVERFIT_RATIO * self.training_mean
            and self.cross_validated_mean - self.training_mean > OVERFIT_MARGIN
        )


LEVERAGE_LIMIT = 1.0 - 1e-6
"""A patch with a leverage this close to 1 carries the fit alone in some direction: without it the
fold is rank-deficient, so its held-out prediction is refitted rather than taken from the identity."""


@dataclass(frozen=True)
class _Predictions:
    spec: MethodSpec
    correction: Correction
    training: FloatArray
    """(N, 3) the fit on every used patch, applied to every patch."""
    held_out: FloatArray
    """(N, 3) each used patch as predicted by the fit that left it out (zeros for unused patches)."""


def _held_out_by_refitting(
    measured: FloatArray,
    reference: ChartReference,
    spec: MethodSpec,
    used: NDArray[np.bool_],
    indices: NDArray[np.intp],
    weights: NDArray[np.floating] | Sequence[float] | None,
) -> FloatArray:
    """Held-out least-squares predictions of the patches ``indices``, one fit without each."""
    predicted = np.zeros((len(indices), 3))
    for row, index in enumerate(indices):
        fold = used.copy()
        fold[index] = False
        correction = fit_correction(measured, reference, spec, mask=fold, weights=weights)
        predicted[row] = correction.apply_to_pixels(measured[index : index + 1])[0]
    return predicted


def _leverages(design: FloatArray) -> FloatArray:
    """The diagonal of the hat matrix of ``design``, over the column space ``np.linalg.lstsq`` uses
    (singular values below its default cut-off count as zero)."""
    left, singular, _ = np.linalg.svd(design, full_matrices=False)
    cutoff = np.finfo(np.float64).eps * max(design.shape) * singular[0]
    rank = int(np.sum(singular > cutoff))
    return np.asarray(np.sum(left[:, :rank] ** 2, axis=1), dtype=np.float64)


def _held_out_least_squares(
    measured: FloatArray,
    reference: ChartReference,
    spec: MethodSpec,
    used: NDArray[np.bool_],
    weights: NDArray[np.floating] | Sequence[float] | None,
    training_rgb: FloatArray,
) -> FloatArray:
    """Leave-one-out predictions of a least-squares fit, without refitting once per patch.

    Least squares obeys the leave-one-out identity: the fit without patch i predicts it as
    ``y_i - e_i / (1 - h_i)``, where ``e_i`` is the full fit's residual on it and ``h_i`` its
    leverage, the diagonal of the (weighted) hat matrix. This is exact, not an approximation; only
    patches whose removal would leave a rank-deficient fold are refitted. White balance is fitted
    from the neutral patches alone: leaving out any other patch leaves its fit unchanged, so only
    the neutral folds are refitted.
    """
    indices = np.flatnonzero(used)
    held_out = np.zeros_like(measured)
    if spec.method == "white_balance":
        held_out[used] = training_rgb[used]
        neutral = indices[neutral_mask(reference)[indices]]
        held_out[neutral] = _held_out_by_refitting(measured, reference, spec, used, neutral, weights)
        return held_out
    root_weights = np.sqrt(_weights(reference.patch_count, weights)[indices])
    leverage = _leverages(expand(measured[indices], spec) * root_weights[:, None])
    target = reference.rgb[indices]
    residual = target - training_rgb[indices]
    identity = leverage < LEVERAGE_LIMIT
    held_out[indices[identity]] = target[identity] - residual[identity] / (1.0 - leverage[identity, None])
    refit = indices[~identity]
    held_out[refit] = _held_out_by_refitting(measured, reference, spec, used, refit, weights)
    return held_out


def _predictions(
    measured: FloatArray,
    reference: ChartReference,
    spec: MethodSpec,
    used: NDArray[np.bool_],
    weights: NDArray[np.floating] | Sequence[float] | None,
    objective: Objective,
    refinement_steps: int | None = None,
) -> _Predictions:
    if objective == "delta_e2000":
        return _predictions_delta_e2000(measured, reference, spec, used, weights, refinement_steps)
    training = fit_correction(measured, reference, spec, mask=used, weights=weights)
    training_rgb = np.asarray(training.apply_to_pixels(measured), dtype=np.float64)
    if used.sum() > 3:
        held_out = _held_out_least_squares(measured, reference, spec, used, weights, training_rgb)
    else:
        # Refitting raises the same FitError a fold too small to fit would.
        held_out = np.zeros_like(measured)
        indices = np.flatnonzero(used)
        held_out[indices] = _held_out_by_refitting(measured, reference, spec, used, indices, weights)
    return _Predictions(spec, training, training_rgb, held_out)


def _predictions_delta_e2000(
    measured: FloatArray,
    reference: ChartReference,
    spec: MethodSpec,
    used: NDArray[np.bool_],
    weights: NDArray[np.floating] | Sequence[float] | None,
    refinement_steps: int | None,
) -> _Predictions:
    """The ΔE2000 fit on every used patch and one per leave-one-out fold, refined as one batch.

    Each problem starts from its own least-squares fit; row 0 is the fit on every used patch,
    row ``1 + j`` leaves out the ``j``-th used patch.
    """
    indices = np.flatnonzero(used)
    count = len(indices)
    if count <= 3:
        raise FitError(
            "too_few_patches", f"{spec.label} needs at least 3 patches in every fold, got {count - 1}"
        )
    fitted = _weights(reference.patch_count, weights)[indices]
    if spec.method == "white_balance":
        fitted = fitted * neutral_mask(reference)[indices]
    problems = np.tile(fitted, (count + 1, 1))
    problems[np.arange(1, count + 1), np.arange(count)] = 0.0
    kept = reference.subset(used)
    rows = measured[indices]
    if spec.method == "white_balance":
        starts = np.stack([_least_squares(rows, kept.rgb, problem, spec) for problem in problems])
    else:
        if np.any(np.sum(problems > 0, axis=1) < 3):
            raise FitError("too_few_patches", f"{spec.label} needs at least 3 weighted patches in every fold")
        starts = _weighted_least_squares_batch(expand(rows, spec), kept.rgb, problems)
    refined = _refine_delta_e2000(starts, rows, kept, problems, spec, refinement_steps)
    training = Correction(spec.method, refined[0], degree=spec.degree, objective="delta_e2000")
    held_out = np.zeros_like(measured)
    terms = expand(rows, spec)
    held_out[indices] = np.einsum("nk,nck->nc", terms, refined[1:])
    return _Predictions(spec, training, np.asarray(training.apply_to_pixels(measured)), held_out)


def _scores(
    predictions: Sequence[_Predictions], reference: ChartReference, used: NDArray[np.bool_]
) -> list[CrossValidation]:
    """Every method's training and held-out ΔE2000, from one Lab conversion and one ΔE2000 call
    (per-call overheads in colour-science cost more than the arithmetic on a few hundred rows)."""
    if not predictions:
        return []
    rgb = np.concatenate([rows for p in predictions for rows in (p.training[used], p.held_out[used])])
    errors = delta_e(
        np.tile(reference.lab[used], (2 * len(predictions), 1)),
        working_rgb_to_lab(rgb, reference.white_xy),
        "CIE 2000",
    ).reshape(len(predictions), 2, -1)
    scores = []
    for prediction, (training_errors, held_out_errors) in zip(predictions, errors, strict=True):
        per_patch = np.full(reference.patch_count, np.nan)
        per_patch[used] = held_out_errors
        scores.append(
            CrossValidation(
                spec=prediction.spec,
                correction=prediction.correction,
                training_mean=float(np.mean(training_errors)),
                cross_validated_mean=float(np.mean(held_out_errors)),
                per_patch=per_patch,
            )
        )
    return scores


def cross_validate(
    measured: NDArray[np.floating],
    reference: ChartReference,
    method: Method | MethodSpec,
    *,
    degree: int | None = None,
    mask: NDArray[np.bool_] | Sequence[bool] | None = None,
    weights: NDArray[np.floating] | Sequence[float] | None = None,
    objective: Objective = "least_squares",
    refinement_steps: int | None = None,
) -> CrossValidation:
    """Leave-one-patch-out ΔE2000: each used patch is predicted by a fit that never saw it.

    White balance is fitted from neutrals only, but is scored on every used patch like the others.
    Least-squares folds come from the leave-one-out identity (see :func:`_held_out_least_squares`);
    with ``objective="delta_e2000"`` every fold is refined from its own least-squares fit, all
    folds in one batch (see :func:`_predictions_delta_e2000`).
    """
    spec = method_spec(method, degree)
    measured64 = np.asarray(measured, dtype=np.float64)
    used = _used_mask(reference.patch_count, mask)
    predictions = _predictions(measured64, reference, spec, used, weights, objective, refinement_steps)
    return _scores([predictions], reference, used)[0]


@dataclass(frozen=True)
class MethodChoice:
    chosen: MethodSpec
    scores: list[CrossValidation]

    def score_of(self, spec: MethodSpec) -> CrossValidation:
        return next(score for score in self.scores if score.spec == spec)


def choose_method(
    measured: NDArray[np.floating],
    reference: ChartReference,
    candidates: Sequence[MethodSpec] = DEFAULT_CANDIDATES,
    *,
    mask: NDArray[np.bool_] | Sequence[bool] | None = None,
    weights: NDArray[np.floating] | Sequence[float] | None = None,
) -> MethodChoice:
    """The candidate with the lowest cross-validated mean ΔE2000.

    Candidates with at least as many terms as the folds have patches are skipped: they can fit
    every training fold exactly and their held-out error says nothing useful. So are candidates
    the data cannot support at all (white balance with no neutral patch).
    """
    used = _used_mask(reference.patch_count, mask)
    measured64 = np.asarray(measured, dtype=np.float64)
    fold_size = int(used.sum()) - 1
    predictions: list[_Predictions] = []
    for spec in candidates:
        if spec.term_count >= fold_size:
            continue
        try:
            predictions.append(_predictions(measured64, reference, spec, used, weights, "least_squares"))
        except FitError:
            continue
    scores = _scores(predictions, reference, used)
    if not scores:
        raise FitError("too_few_patches", f"no candidate method can be validated on {fold_size + 1} patches")
    best = min(scores, key=lambda score: score.cross_validated_mean)
    return MethodChoice(chosen=best.spec, scores=scores)


def validated_fit(
    measured: NDArray[np.floating],
    reference: ChartReference,
    spec: MethodSpec,
    *,
    mask: NDArray[np.bool_] | Sequence[bool] | None = None,
    objective: ObjectiveChoice = "auto",
    least_squares: CrossValidation | None = None,
    refinement_steps: int | None = None,
) -> CrossValidation:
    """The fit of ``spec`` on every used patch with its leave-one-out score.

    ``auto`` cross-validates both objectives and keeps ΔE2000 minimisation when its held-out mean
    ΔE2000 is lower by more than ``OBJECTIVE_MARGIN``, least squares otherwise (and when a fold is
    too small to refine). ``least_squares`` is
    that objective's score when the caller has it already (from :func:`choose_method`);
    ``refinement_steps`` bounds the ΔE2000 refinement's steps (:mod:`chromaline.engine.delta_e_fit`).
    """
    if objective == "delta_e2000":
        return cross_validate(
            measured, reference, spec, mask=mask, objective="delta_e2000", refinement_steps=refinement_steps
        )
    plain = least_squares or cross_validate(measured, reference, spec, mask=mask)
    if objective == "least_squares":
        return plain
    try:
        refined = cross_validate(
            measured, reference, spec, mask=mask, objective="delta_e2000", refinement_steps=refinement_steps
        )
    except FitError:
        return plain
    return refined if refined.cross_validated_mean < plain.cross_validated_mean - OBJECTIVE_MARGIN else plain
