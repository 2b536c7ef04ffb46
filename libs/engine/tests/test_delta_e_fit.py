"""The ΔE2000 minimiser: its Lab and Jacobian against colour-science, its local metric against
ΔE2000 itself, and its optimum against a general-purpose solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from chromaline.engine import delta_e_fit
from chromaline.engine.delta_e_fit import (
    design_matrix,
    local_delta_e2000_metric,
    minimise_mean_delta_e2000,
    rgb_to_lab_with_jacobian,
)
from chromaline.engine.fit import expand, fit_correction, method_spec
from chromaline.engine.metrics import ChartReference, delta_e, working_rgb_to_lab


@pytest.fixture(scope="module")
def reference() -> ChartReference:
    return ChartReference.for_chart("classic24", "2014")


def _camera(reference: ChartReference, seed: int) -> np.ndarray:
    """A camera whose response is not a matrix away from the reference: a 3×3 mix, a slight
    per-channel curve and noise, so no correction fits exactly."""
    rng = np.random.default_rng(seed)
    mix = np.eye(3) + rng.normal(0.0, 0.12, (3, 3))
    measured = np.clip(reference.rgb @ mix.T, 1e-4, None) ** rng.uniform(0.9, 1.1, 3)
    return np.asarray(0.8 * measured + rng.normal(0.0, 0.004, measured.shape))


def test_lab_equals_colour_science_on_both_sides_of_the_cube_root_knee(reference: ChartReference) -> None:
    rgb = np.concatenate([reference.rgb, [[0.0005, 0.001, 0.0002], [0.002, 0.0001, 0.003], [1.2, 1.0, 0.9]]])
    lab, _ = rgb_to_lab_with_jacobian(rgb, reference.white_xy)
    np.testing.assert_allclose(lab, working_rgb_to_lab(rgb, reference.white_xy), atol=1e-9)


def test_lab_jacobian_equals_finite_differences(reference: ChartReference) -> None:
    rgb = np.concatenate([reference.rgb, [[0.0005, 0.001, 0.0002]]])
    _, jacobian = rgb_to_lab_with_jacobian(rgb, reference.white_xy)
    step = 1e-7
    for channel in range(3):
        shifted = rgb.copy()
        shifted[:, channel] += step
        numeric = (
            working_rgb_to_lab(shifted, reference.white_xy) - working_rgb_to_lab(rgb, reference.white_xy)
        ) / step
        np.testing.assert_allclose(jacobian[:, :, channel], numeric, rtol=1e-4, atol=1e-3)


def test_local_metric_predicts_small_delta_e2000(reference: ChartReference) -> None:
    metric = local_delta_e2000_metric(reference.lab)
    assert np.all(np.linalg.eigvalsh(metric) > 0)
    rng = np.random.default_rng(3)
    offsets = rng.normal(0.0, 0.3, reference.lab.shape)
    predicted = np.sqrt(np.einsum("ni,nij,nj->n", offsets, metric, offsets))
    actual = delta_e(reference.lab, reference.lab + offsets)
    np.testing.assert_allclose(predicted, actual, rtol=0.05)


def test_reaches_the_optimum_a_general_solver_finds(
    reference: ChartReference, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = _camera(reference, seed=1)
    spec = method_spec("affine3x4")
    start = fit_correction(measured, reference, spec).coefficients

    def mean_delta_e(params: np.ndarray) -> float:
        rgb = expand(measured, spec) @ params.reshape(3, -1).T
        return float(np.mean(delta_e(reference.lab, working_rgb_to_lab(rgb, reference.white_xy))))

    general = minimize(
        mean_delta_e, start.ravel(), method="Powell", options={"maxfev": 20000, "xtol": 1e-8, "ftol": 1e-10}
    )

    def ours() -> float:
        return mean_delta_e(
            minimise_mean_delta_e2000(
                design_matrix(expand(measured, spec), diagonal=False),
                start.reshape(1, -1),
                np.ones((1, reference.patch_count)),
                reference,
            )[0]
        )

    least_squares, best = mean_delta_e(start.ravel()), float(general.fun)
    assert best < least_squares - 0.1
    # The default three steps go most of the way from the least-squares fit to the optimum...
    assert ours() <= best + 0.3 * (least_squares - best)
    # ...and more steps reach the same optimum as the general solver, in far fewer evaluations.
    monkeypatch.setattr(delta_e_fit, "MAX_ITERATIONS", 30)
    monkeypatch.setattr(delta_e_fit, "RELATIVE_TOLERANCE", 1e-9)
    assert ours() == pytest.approx(best, abs=0.005)


def test_a_problem_never_ends_worse_than_it_started(reference: ChartReference) -> None:
    measured = _camera(reference, seed=2)
    spec = method_spec("root_polynomial", 2)
    terms = expand(measured, spec)
    rng = np.random.default_rng(0)
    starts = fit_correction(measured, reference, spec).coefficients.ravel() + rng.normal(0, 0.5, (4, 18))
    weights = np.ones((4, reference.patch_count))
    refined = minimise_mean_delta_e2000(design_matrix(terms, diagonal=False), starts, weights, reference)

    def mean_delta_e(params: np.ndarray) -> float:
        rgb = terms @ params.reshape(3, -1).T
        return float(np.mean(delta_e(reference.lab, working_rgb_to_lab(rgb, reference.white_xy))))

    for start, end in zip(starts, refined, strict=True):
        assert mean_delta_e(end) <= mean_delta_e(start)


def test_problems_in_a_batch_end_as_they_would_alone(reference: ChartReference) -> None:
    measured = _camera(reference, seed=4)
    spec = method_spec("linear3x3")
    design = design_matrix(expand(measured, spec), diagonal=False)
    start = fit_correction(measured, reference, spec).coefficients.ravel()
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.0, 2.0, (3, reference.patch_count))
    together = minimise_mean_delta_e2000(design, np.tile(start, (3, 1)), weights, reference)
    for row in range(3):
        alone = minimise_mean_delta_e2000(design, start[None], weights[row : row + 1], reference)[0]
        np.testing.assert_allclose(together[row], alone, rtol=1e-10, atol=1e-12)


def test_white_balance_design_has_one_gain_per_channel(reference: ChartReference) -> None:
    gains = np.array([1.4, 1.0, 0.6])
    design = design_matrix(reference.rgb / gains, diagonal=True)
    assert design.shape == (reference.patch_count, 3, 3)
    np.testing.assert_allclose(np.einsum("ncp,p->nc", design, gains), reference.rgb)
