"""Gappy-POD (Everson & Sirovich 1995): fit a basis to a field known at a few points.

``c = argmin ||Psi_M c - f_M||_2`` where ``Psi_M`` is the basis restricted to the point
set M; the field is reconstructed everywhere as ``Psi c`` and the relative residual
``||Psi_M c - f_M|| / ||f_M||`` measures how far ``f_M`` is from the span of the basis
there (the online error indicator of the adaptive ROM).

Orientation: ``basis_at_points`` is ``(n_points, n_modes)``: **rows = points, columns =
modes**, like every basis in :mod:`rom.hyper`. Modes stored as rows (``(n_modes,
n_points)``, as in Mordicus) must be transposed: ``gappy(modes.T, f)``.
"""
from __future__ import annotations

import warnings

import numpy as np

from ._common import float_array, nonfinite_message

__all__ = ["GappyPOD", "GappyWarning", "gappy"]


class GappyWarning(RuntimeWarning):
    """The point set determines the coefficients only poorly (ill-conditioned fit)."""


class GappyPOD:
    """A Gappy-POD fit on a fixed point set, factored once (SVD) for repeated online use.

    Parameters
    ----------
    basis_at_points : (n_points, n_modes) the basis at the points (rows = points)
    rank_rtol : singular values below ``rank_rtol * s_max`` count as zero; default
        ``max(n_points, n_modes) * eps``
    warn_cond : warn (:class:`GappyWarning`) when the condition number exceeds this

    Raises
    ------
    ValueError
        fewer points than modes; a rank-deficient ``basis_at_points`` (the message gives
        the numerical rank and the condition number); NaN/inf entries.
    """

    def __init__(self, basis_at_points: np.ndarray, *, rank_rtol: float | None = None,
                 warn_cond: float = 1e8):
        Psi = float_array(basis_at_points, "basis_at_points", 2)
        msg = nonfinite_message(Psi, "basis_at_points", ("point", "mode"))
        if msg:
            raise ValueError(msg)
        p, n = Psi.shape
        if n == 0:
            raise ValueError("basis_at_points has no columns (modes)")
        if p < n:
            raise ValueError(f"basis_at_points is {p} x {n}: fewer points ({p}) than modes ({n}), "
                             f"the coefficients are not determined (rows must be points, "
                             f"columns modes; transpose modes stored as rows)")
        U, s, Vt = np.linalg.svd(Psi, full_matrices=False)
        rtol = max(p, n) * np.finfo(float).eps if rank_rtol is None else float(rank_rtol)
        rank = int(np.count_nonzero(s > rtol * s[0])) if s[0] > 0 else 0
        cond = float(s[0] / s[-1]) if s[-1] > 0 else np.inf
        if rank < n:
            raise ValueError(f"basis_at_points ({p} points x {n} modes) has numerical rank {rank} "
                             f"< {n} modes (condition number {cond:.3e}): the points cannot "
                             f"determine the coefficients; add points or drop modes")
        if cond > warn_cond:
            warnings.warn(f"Gappy-POD fit is ill-conditioned: condition number {cond:.3e} > "
                          f"{warn_cond:.1e} ({p} points, {n} modes)", GappyWarning, stacklevel=2)
        self.basis_at_points = Psi
        self.condition_number = cond
        self._pinv = (Vt.T / s) @ U.T                 # (n, p)

    @property
    def n_points(self) -> int:
        return self.basis_at_points.shape[0]

    def fit(self, values_at_points: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """Coefficients and relative residual for values at the points.

        Parameters
        ----------
        values_at_points : (n_points,) or (n_points, k) field values at the points (any unit)

        Returns
        -------
        coefficients : (n_modes,) or (n_modes, k)
        relative_residual : ``||Psi_M c - f_M|| / ||f_M||`` (float, or (k,) per column);
            0 where ``f_M = 0``
        """
        f = float_array(values_at_points, "values_at_points", np.ndim(values_at_points))
        if f.ndim not in (1, 2) or f.shape[0] != self.n_points:
            raise ValueError(f"values_at_points has shape {f.shape} but basis_at_points has "
                             f"{self.n_points} rows (points): expected ({self.n_points},) or "
                             f"({self.n_points}, k)")
        msg = nonfinite_message(f, "values_at_points", ("point", "column")[:f.ndim])
        if msg:
            raise ValueError(msg)
        c = self._pinv @ f
        res = np.linalg.norm(self.basis_at_points @ c - f, axis=0)
        nf = np.linalg.norm(f, axis=0)
        rel = np.where(nf > 0, res / np.where(nf > 0, nf, 1.0), 0.0)
        return c, (float(rel) if f.ndim == 1 else rel)

    @staticmethod
    def reconstruct(basis: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """The field everywhere: ``basis @ coefficients``, basis (n_rows, n_modes) (local rows)."""
        return np.asarray(basis) @ np.asarray(coefficients)


def gappy(basis_at_points: np.ndarray, values_at_points: np.ndarray, *,
          warn_cond: float = 1e8) -> tuple[np.ndarray, np.ndarray | float]:
    """Gappy-POD least-squares fit (see :class:`GappyPOD`).

    Parameters
    ----------
    basis_at_points : (n_points, n_modes) the basis at the points: rows = points, columns = modes
    values_at_points : (n_points,) or (n_points, k) the field at the same points
    warn_cond : warn when the condition number of ``basis_at_points`` exceeds this

    Returns
    -------
    coefficients : (n_modes,) or (n_modes, k)
    relative_residual : ``||Psi_M c - f_M||_2 / ||f_M||_2`` (0 when ``f_M = 0``)

    Examples
    --------
    >>> import numpy as np
    >>> modes = np.array([[1., 0, 0], [0, 1, 0]])      # 2 modes as rows over 3 points
    >>> c, res = gappy(modes.T, np.array([1., 0, 1]))
    >>> c.tolist(), round(res, 12)
    ([1.0, 0.0], 0.707106781187)
    """
    return GappyPOD(basis_at_points, warn_cond=warn_cond).fit(values_at_points)
