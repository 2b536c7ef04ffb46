from __future__ import annotations

from collections.abc import Callable

import colour
import numpy as np
import pytest
from numpy.typing import NDArray

from chromaline.engine.fit import (
    DEFAULT_CANDIDATES,
    OBJECTIVE_MARGIN,
    Correction,
    FitError,
    MethodSpec,
    _predictions,
    choose_method,
    correction_delta_e2000,
    cross_validate,
    expand,
    fit_correction,
    neutral_mask,
    validated_fit,
)
from chromaline.engine.metrics import ChartReference, delta_e, working_rgb_to_lab

MATRIX = np.array([[1.25, -0.18, -0.07], [-0.21, 1.32, -0.11], [0.04, -0.29, 1.25]])


@pytest.fixture(scope="module")
def reference() -> ChartReference:
    return ChartReference.for_chart("classic24", "2014")


def _measured_through(coefficients: NDArray[np.float64], reference: ChartReference) -> NDArray[np.float64]:
    """Camera values such that ``coefficients`` (3×3 or 3×4 affine) maps them exactly onto the reference."""
    square = coefficients[:, :3]
    offset = coefficients[:, 3] if coefficients.shape[1] == 4 else np.zeros(3)
    return np.asarray((reference.rgb - offset) @ np.linalg.inv(square).T)


def test_linear3x3_recovers_a_known_matrix(reference: ChartReference) -> None:
    measured = _measured_through(MATRIX, reference)
    correction = fit_correction(measured, reference, "linear3x3")
    np.testing.assert_allclose(correction.coefficients, MATRIX, atol=1e-10)


def test_affine3x4_recovers_a_known_matrix_with_offset(reference: ChartReference) -> None:
    affine = np.hstack([MATRIX, np.array([[0.01], [-0.005], [0.02]])])
    correction = fit_correction(_measured_through(affine, reference), reference, "affine3x4")
    np.testing.assert_allclose(correction.coefficients, affine, atol=1e-10)


def test_white_balance_recovers_gains_from_neutrals(reference: ChartReference) -> None:
    gains = np.array([1.3, 1.0, 0.7])
    correction = fit_correction(reference.rgb / gains, reference, "white_balance")
    np.testing.assert_allclose(correction.coefficients, np.diag(gains), atol=1e-10)


def test_white_balance_uses_only_neutral_patches(reference: ChartReference) -> None:
    gains = np.array([1.3, 1.0, 0.7])
    measured = reference.rgb / gains
    measured[~neutral_mask(reference)] = 0.5  # chromatic patches say nothing about white balance
    correction = fit_correction(measured, reference, "white_balance")
    np.testing.assert_allclose(np.diag(correction.coefficients), gains, atol=1e-10)


@pytest.mark.parametrize(
    "spec", [MethodSpec("root_polynomial", 2), MethodSpec("root_polynomial", 3), MethodSpec("polynomial", 2)]
)
def test_polynomial_methods_recover_known_coefficients(reference: ChartReference, spec: MethodSpec) -> None:
    rng = np.random.default_rng(7)
    measured = np.clip(reference.rgb @ np.linalg.inv(MATRIX).T, 0.001, None)
    coefficients = np.zeros((3, spec.term_count))
    coefficients[:, :3] = MATRIX
    coefficients[:, 3:] = rng.normal(0.0, 0.05, (3, spec.term_count - 3))
    target = expand(measured, spec) @ coefficients.T
    synthetic = ChartReference(
        reference.chart_type, reference.edition, reference.names, target, reference.lab, reference.white_xy
    )
    correction = fit_correction(measured, synthetic, spec)
    np.testing.assert_allclose(correction.coefficients, coefficients, atol=1e-8)


@pytest.mark.parametrize("degree", [2, 3])
def test_root_polynomial_terms_match_colour_science(degree: int) -> None:
    rgb = np.random.default_rng(1).uniform(0.01, 1.0, (20, 3))
    ours = expand(rgb, MethodSpec("root_polynomial", degree))
    theirs = colour.characterisation.polynomial_expansion_Finlayson2015(
        rgb, degree, root_polynomial_expansion=True
    )
    assert ours.shape == theirs.shape
    ours_sorted = np.sort(ours, axis=1)
    np.testing.assert_allclose(ours_sorted, np.sort(theirs, axis=1), rtol=1e-12)


def test_polynomial_terms_match_cheung_2004() -> None:
    rgb = np.random.default_rng(2).uniform(0.0, 1.0, (20, 3))
    ours = expand(rgb, MethodSpec("polynomial", 2))
    theirs = colour.characterisation.matrix_augmented_Cheung2004(rgb, terms=10)
    np.testing.assert_allclose(np.sort(ours, axis=1), np.sort(theirs, axis=1), rtol=1e-12)


@pytest.mark.parametrize("degree", [2, 3])
def test_root_polynomial_is_exposure_invariant(reference: ChartReference, degree: int) -> None:
    rng = np.random.default_rng(3)
    measured = reference.rgb @ np.linalg.inv(MATRIX).T + rng.normal(0, 0.004, reference.rgb.shape)
    correction = fit_correction(np.clip(measured, 0, None), reference, "root_polynomial", degree=degree)
    pixels = rng.uniform(0.0, 0.8, (100, 3))
    for exposure in (0.25, 1.7):
        np.testing.assert_allclose(
            correction.apply_to_pixels(exposure * pixels),
            exposure * correction.apply_to_pixels(pixels),
            rtol=1e-10,
        )


def test_ordinary_polynomial_is_not_exposure_invariant(reference: ChartReference) -> None:
    rng = np.random.default_rng(3)
    measured = reference.rgb @ np.linalg.inv(MATRIX).T + rng.normal(0, 0.004, reference.rgb.shape)
    correction = fit_correction(measured, reference, "polynomial")
    pixels = rng.uniform(0.1, 0.8, (100, 3))
    scaled = correction.apply_to_pixels(0.5 * pixels)
    assert np.max(np.abs(scaled - 0.5 * correction.apply_to_pixels(pixels))) > 1e-3


def _noisy_camera(reference: ChartReference, seed: int, noise: float = 0.006) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    measured = 0.8 * reference.rgb @ np.linalg.inv(MATRIX).T
    return np.asarray(measured + rng.normal(0.0, noise, measured.shape))


def test_masked_patches_do_not_influence_the_fit(reference: ChartReference) -> None:
    measured = _measured_through(MATRIX, reference)
    measured[3] = [0.9, 0.0, 0.9]
    mask = np.ones(reference.patch_count, dtype=bool)
    mask[3] = False
    correction = fit_correction(measured, reference, "linear3x3", mask=mask)
    np.testing.assert_allclose(correction.coefficients, MATRIX, atol=1e-10)
    zero_weight = np.ones(reference.patch_count)
    zero_weight[3] = 0.0
    weighted = fit_correction(measured, reference, "linear3x3", weights=zero_weight)
    np.testing.assert_allclose(weighted.coefficients, MATRIX, atol=1e-10)


def test_too_few_patches_is_a_typed_error(reference: ChartReference) -> None:
    mask = np.zeros(reference.patch_count, dtype=bool)
    mask[:2] = True
    with pytest.raises(FitError) as raised:
        fit_correction(reference.rgb, reference, "linear3x3", mask=mask)
    assert raised.value.code == "too_few_patches"


def test_delta_e2000_objective_lowers_mean_delta_e(reference: ChartReference) -> None:
    measured = _noisy_camera(reference, seed=11)
    least_squares = fit_correction(measured, reference, "affine3x4")
    refined = fit_correction(measured, reference, "affine3x4", objective="delta_e2000")
    before = correction_delta_e2000(least_squares, measured, reference).mean()
    after = correction_delta_e2000(refined, measured, reference).mean()
    assert refined.objective == "delta_e2000"
    assert after < before - 0.05


@pytest.mark.parametrize("method", ["linear3x3", "affine3x4", "root_polynomial", "polynomial"])
def test_cross_validated_error_is_not_below_training_error(reference: ChartReference, method: str) -> None:
    result = cross_validate(_noisy_camera(reference, seed=5), reference, method)  # type: ignore[arg-type]
    assert result.cross_validated_mean >= result.training_mean
    assert np.isfinite(result.per_patch).all()


def test_polynomial_on_few_patches_is_flagged_as_overfitting(reference: ChartReference) -> None:
    measured = _noisy_camera(reference, seed=5)
    mask = np.zeros(reference.patch_count, dtype=bool)
    mask[:13] = True
    polynomial = cross_validate(measured, reference, "polynomial", mask=mask)
    linear = cross_validate(measured, reference, "linear3x3", mask=mask)
    assert polynomial.overfit
    assert not linear.overfit
    assert np.isnan(polynomial.per_patch[13:]).all()


def test_choose_method_ranks_by_cross_validation_not_training(reference: ChartReference) -> None:
    choice = choose_method(_noisy_camera(reference, seed=5), reference)
    best_training = min(choice.scores, key=lambda score: score.training_mean)
    best_validated = min(choice.scores, key=lambda score: score.cross_validated_mean)
    assert choice.chosen == best_validated.spec
    assert best_training.spec != choice.chosen, "the data should make training error mislead"


def test_choose_method_skips_methods_with_too_many_terms(reference: ChartReference) -> None:
    mask = np.zeros(reference.patch_count, dtype=bool)
    mask[:10] = True
    choice = choose_method(_noisy_camera(reference, seed=5), reference, mask=mask)
    assert all(score.spec.term_count < 9 for score in choice.scores)


def test_correction_checks_coefficient_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        Correction("affine3x4", np.eye(3))
    assert Correction.identity().matrix_3x4().shape == (3, 4)


def _held_out_refitted(
    measured: NDArray[np.float64],
    reference: ChartReference,
    spec: MethodSpec,
    used: NDArray[np.bool_],
    weights: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Held-out predictions the plain way: one fit per left-out patch."""
    predicted = np.full_like(measured, np.nan)
    for index in np.flatnonzero(used):
        fold = used.copy()
        fold[index] = False
        correction = fit_correction(measured, reference, spec, mask=fold, weights=weights)
        predicted[index] = correction.apply_to_pixels(measured[index : index + 1])[0]
    return predicted


@pytest.mark.parametrize("spec", DEFAULT_CANDIDATES, ids=lambda spec: spec.label)
@pytest.mark.parametrize("seed", range(3))
def test_leave_one_out_identity_equals_refitting_every_fold(
    reference: ChartReference, spec: MethodSpec, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    measured = np.clip(_noisy_camera(reference, seed=seed) * rng.uniform(0.6, 1.4, 3), 0.0, None)
    used = rng.random(reference.patch_count) > 0.15
    used[neutral_mask(reference)] = True
    weights = rng.uniform(0.2, 2.0, reference.patch_count) if seed == 2 else None
    expected = _held_out_refitted(measured, reference, spec, used, weights)
    predicted = _predictions(measured, reference, spec, used, weights, "least_squares").held_out
    # The 13-term fit's 22 folds are ill-conditioned enough for their solves to differ at 1e-10.
    np.testing.assert_allclose(predicted[used], expected[used], rtol=1e-7, atol=1e-9)
    score = cross_validate(measured, reference, spec, mask=used, weights=weights)
    expected_delta_e = delta_e(reference.lab[used], working_rgb_to_lab(expected[used], reference.white_xy))
    np.testing.assert_allclose(score.per_patch[used], expected_delta_e, rtol=1e-6, atol=1e-8)
    assert np.isnan(score.per_patch[~used]).all()


def test_a_patch_that_alone_spans_a_term_is_refitted_not_extrapolated(reference: ChartReference) -> None:
    """Only one patch lights the blue channel: without it the affine fold is rank-deficient."""
    measured = np.zeros((reference.patch_count, 3))
    measured[:, :2] = np.random.default_rng(4).uniform(0.05, 0.9, (reference.patch_count, 2))
    measured[12, 2] = 0.4
    used = np.ones(reference.patch_count, dtype=bool)
    spec = MethodSpec("affine3x4")
    expected = _held_out_refitted(measured, reference, spec, used, None)
    predicted = _predictions(measured, reference, spec, used, None, "least_squares").held_out
    np.testing.assert_allclose(predicted, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", DEFAULT_CANDIDATES[:4], ids=lambda spec: spec.label)
def test_delta_e2000_folds_in_one_batch_equal_refitting_every_fold(
    reference: ChartReference, spec: MethodSpec
) -> None:
    rng = np.random.default_rng(8)
    measured = np.clip(_noisy_camera(reference, seed=8, noise=0.01), 1e-4, None)
    used = rng.random(reference.patch_count) > 0.2
    used[neutral_mask(reference)] = True
    predicted = _predictions(measured, reference, spec, used, None, "delta_e2000").held_out
    for index in np.flatnonzero(used):
        fold = used.copy()
        fold[index] = False
        alone = fit_correction(measured, reference, spec, mask=fold, objective="delta_e2000")
        np.testing.assert_allclose(
            predicted[index], alone.apply_to_pixels(measured[index : index + 1])[0], rtol=1e-8, atol=1e-10
        )


def _curved_camera(reference: ChartReference, seed: int) -> NDArray[np.float64]:
    """A camera a slight per-channel curve away from linear: no matrix fits it exactly."""
    rng = np.random.default_rng(seed)
    linear = np.clip(reference.rgb @ np.linalg.inv(MATRIX).T, 1e-4, None)
    return np.asarray(0.8 * linear ** rng.uniform(0.9, 1.1, 3) + rng.normal(0.0, 0.002, linear.shape))


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        (lambda reference: _curved_camera(reference, seed=1), "delta_e2000"),
        (lambda reference: _noisy_camera(reference, seed=6, noise=0.01), "least_squares"),
    ],
    ids=["curved camera", "noisy camera"],
)
def test_auto_objective_keeps_the_lower_cross_validated_error(
    reference: ChartReference, camera: Callable[[ChartReference], NDArray[np.float64]], expected: str
) -> None:
    measured = camera(reference)
    spec = MethodSpec("root_polynomial", 2)
    plain = cross_validate(measured, reference, spec)
    refined = cross_validate(measured, reference, spec, objective="delta_e2000")
    assert refined.training_mean < plain.training_mean
    chosen = validated_fit(measured, reference, spec, objective="auto")
    assert chosen.correction.objective == expected
    wins = refined.cross_validated_mean < plain.cross_validated_mean - OBJECTIVE_MARGIN
    assert wins == (expected == "delta_e2000")
    assert chosen.cross_validated_mean == (refined if wins else plain).cross_validated_mean


def test_auto_objective_keeps_least_squares_when_it_is_exact(reference: ChartReference) -> None:
    """A camera exactly one matrix away from the reference: least squares has nothing left to gain."""
    chosen = validated_fit(_measured_through(MATRIX, reference), reference, MethodSpec("linear3x3"))
    assert chosen.correction.objective == "least_squares"
    np.testing.assert_allclose(chosen.correction.coefficients, MATRIX, atol=1e-10)


def test_delta_e2000_folds_need_three_patches_each(reference: ChartReference) -> None:
    mask = np.zeros(reference.patch_count, dtype=bool)
    mask[[0, 5, 19]] = True
    with pytest.raises(FitError) as raised:
        cross_validate(reference.rgb, reference, "linear3x3", mask=mask, objective="delta_e2000")
    assert raised.value.code == "too_few_patches"
    chosen = validated_fit(
        reference.rgb * 0.9, reference, MethodSpec("white_balance"), mask=mask | neutral_mask(reference)
    )
    assert chosen.correction.method == "white_balance"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("objective", ["least_squares", "delta_e2000"])
def test_non_finite_measurements_are_a_typed_error_not_a_hang(
    reference: ChartReference, bad: float, objective: str
) -> None:
    measured = reference.rgb.copy()
    measured[5, 0] = bad
    with pytest.raises(FitError) as raised:
        fit_correction(measured, reference, "linear3x3", objective=objective)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_measurements"
    mask = np.ones(reference.patch_count, dtype=bool)
    mask[5] = False
    assert np.isfinite(fit_correction(measured, reference, "linear3x3", mask=mask).coefficients).all()
