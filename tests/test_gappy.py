"""Gappy-POD (rom.hyper.gappy): reference value, exact recovery in the span, residual as an
error indicator, and the errors/warnings when the points cannot determine the coefficients."""
from __future__ import annotations

import numpy as np
import pytest

from rom.hyper import GappyPOD, GappyWarning, gappy, qdeim


def test_reference_value():
    modes = np.array([[1.0, 0, 0], [0, 1, 0]])          # 2 modes stored as rows over 3 points
    c, res = gappy(modes.T, np.array([1.0, 0, 1]))       # rows = points: transpose
    np.testing.assert_allclose(c, [1.0, 0.0], atol=1e-15)
    assert res == pytest.approx(1 / np.sqrt(2), rel=1e-14)


def test_modes_as_rows_are_refused_with_a_hint():
    modes = np.array([[1.0, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="fewer points \\(2\\) than modes \\(3\\).*transpose"):
        gappy(modes, np.array([1.0, 0, 1]))


def test_exact_recovery_in_span(rng):
    Psi = np.linalg.qr(rng.standard_normal((200, 6)))[0]
    pts = qdeim(Psi)
    pts = np.concatenate([pts, [17, 99, 150]])           # oversampled
    c_true = rng.standard_normal(6)
    f = Psi @ c_true
    c, res = gappy(Psi[pts], f[pts])
    np.testing.assert_allclose(c, c_true, rtol=1e-12, atol=1e-13)
    assert res <= 1e-13
    np.testing.assert_allclose(GappyPOD.reconstruct(Psi, c), f, atol=1e-12)


def test_residual_positive_off_span_and_indicator(rng):
    Psi = np.linalg.qr(rng.standard_normal((200, 4)))[0]
    pts = np.arange(0, 200, 10)                           # 20 points
    g = rng.standard_normal(200)
    g -= Psi @ (Psi.T @ g)                                # orthogonal to the span
    fit = GappyPOD(Psi[pts])
    residuals = [fit.fit((Psi @ np.ones(4) + eps * g)[pts])[1] for eps in (0.0, 1e-3, 1e-1)]
    assert residuals[0] <= 1e-13 < residuals[1] < residuals[2]   # grows with the distance


def test_several_fields_and_zero_field(rng):
    Psi = np.linalg.qr(rng.standard_normal((50, 3)))[0]
    pts = np.arange(0, 50, 5)
    F = np.column_stack([Psi @ [1.0, 2, 3], np.zeros(50), rng.standard_normal(50)])
    c, res = gappy(Psi[pts], F[pts])
    assert c.shape == (3, 3) and res.shape == (3,)
    np.testing.assert_allclose(c[:, 0], [1, 2, 3], atol=1e-12)
    assert res[0] <= 1e-13 and res[1] == 0.0 and res[2] > 0.1


def test_rank_deficient_raises_with_rank_and_condition():
    Psi = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    with pytest.raises(ValueError, match=r"numerical rank 1 < 2 modes \(condition number"):
        gappy(Psi, np.ones(3))


def test_ill_conditioned_warns():
    Psi = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-10], [1.0, 1.0]])
    with pytest.warns(GappyWarning, match="condition number"):
        GappyPOD(Psi)


@pytest.mark.parametrize("Psi, f, match", [
    (np.eye(3)[:, :2], np.ones(4), r"values_at_points has shape \(4,\)"),
    (np.eye(3)[:, :2], np.array([1.0, np.nan, 0]), r"values_at_points contains nan at \(point 1\)"),
    (np.where(np.eye(3)[:, :2] == 1, np.inf, 0), np.ones(3), "basis_at_points contains inf"),
    (np.zeros((3, 0)), np.ones(3), "no columns"),
])
def test_input_errors(Psi, f, match):
    with pytest.raises(ValueError, match=match):
        gappy(Psi, f)
