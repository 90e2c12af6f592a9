"""A posteriori error bound: residual dual norm over a coercivity lower bound.

For a residual ``r(mu) = sum_p theta_p(mu) R_p`` (``R_p``: fixed vectors, ``theta_p``:
scalars computed online) and an SPD product matrix ``X``, the dual norm is
``||r||_{X'} = ||G||_X`` with the Riesz representative ``G = X^{-1} r = sum_p theta_p G_p``.
The bound is ``||u - u_N||_X <= ||r||_{X'} / alpha_LB(mu)``. Two online evaluations:

- **classical**: ``||r||^2 = theta^T Gram theta`` with ``Gram_pq = R_p^T G_q``. The
  terms are O(||f||^2) and cancel down to O(||r||^2): absolute round-off ~eps ||f||^2, so
  ``||r|| / ||f||`` stalls near ``sqrt(eps) ~ 1e-8``.
- **stable** (EIM of the Riesz representative, Casenave-Ern-Lelievre 2014): an EIM of the
  family ``{G_p}`` (magic entries ``x_k``, basis ``xi_k``, unit lower-triangular ``B``) is
  exact on ``span{G_p}``, so ``G(mu) = sum_k lambda_k xi_k`` with ``B lambda = G(mu)(x_k) =
  P theta`` (``P_kp = G_p(x_k)``). Then ``||G||_X = ||L^T lambda||_2`` with
  ``L L^T = (xi_k^T X xi_l)``. The magic values have absolute round-off ~eps ||f||, and
  the norm is a 2-norm of a vector of size ~||r||: no squaring before the cancellation,
  the bound stays accurate down to ``||r|| / ||f|| ~ 1e-12`` and below.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from scipy.linalg import solve_triangular

from ..parallel import as_comm
from ._dist import GatheredSolver, allsum, gather_rows, offsets_of
from .greedy import Greedy

__all__ = [
    "Coercivity",
    "OnlineEstimator",
    "ResidualEstimator",
    "coercivity_of",
    "sampled_coercivity",
]

Coercivity = float | Callable[[np.ndarray], float]


@dataclass(frozen=True)
class MinTheta:
    """Min-theta coercivity bound for ``A(mu) = sum_p mu_p K_p`` (K_p SPSD), ``X = A(mu_ref)``:
    ``alpha_LB(mu) = min_p mu_p / mu_ref_p``. Storable in the artifact (unlike a lambda).

    Attributes
    ----------
    reference : (P,) the reference parameter ``mu_ref`` (all entries > 0)
    """

    reference: tuple[float, ...]

    def __call__(self, mu: np.ndarray) -> float:
        return float(np.min(np.asarray(mu, dtype=float) / np.asarray(self.reference)))


def coercivity_of(spec: Coercivity, mu: np.ndarray) -> float:
    """Evaluate a coercivity lower bound (constant or ``mu -> float``); must be > 0."""
    a = float(spec(mu)) if callable(spec) else float(spec)
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"coercivity lower bound must be finite and > 0, got {a} at mu = {mu}")
    return a


@dataclass
class OnlineEstimator:
    """The small arrays evaluating ``||r(mu)||_{X'}`` from ``theta`` (Q,).

    Attributes
    ----------
    gram : (Q, Q) ``R_p^T X^{-1} R_q`` (classical)
    P : (Q, K) values of the Riesz representatives ``G_p`` at the K magic entries
    B : (K, K) unit lower-triangular EIM matrix of the Riesz representatives
    Lt : (K, K) upper-triangular ``Lt^T Lt = (xi_k^T X xi_l)``
    """

    gram: np.ndarray
    P: np.ndarray
    B: np.ndarray
    Lt: np.ndarray

    def classical(self, theta: np.ndarray) -> float:
        """``sqrt(max(theta^T Gram theta, 0))`` for the first ``len(theta)`` components."""
        q = theta.size
        s = float(theta @ (self.gram[:q, :q] @ theta))
        return float(np.sqrt(max(s, 0.0)))

    def stable(self, theta: np.ndarray) -> float:
        """``||Lt B^{-1} P^T theta||_2`` (EIM of the Riesz representative)."""
        g = self.P[:theta.size].T @ theta
        lam = solve_triangular(self.B, g, lower=True, unit_diagonal=True)
        return float(np.linalg.norm(self.Lt @ lam))

    def __call__(self, theta: np.ndarray, method: str = "stable") -> float:
        if method == "stable":
            return self.stable(theta)
        if method == "classical":
            return self.classical(theta)
        raise ValueError(f"estimator must be 'stable' or 'classical', got {method!r}")


class ResidualEstimator:
    """Offline builder of :class:`OnlineEstimator`; components can be added incrementally.

    Parameters
    ----------
    product : (n_local, N) CSR row block of X (global columns)
    comm : communicator (``None``: serial)
    riesz : optional ``R (n_local, k) -> X^{-1} R`` (local rows); default: SuperLU of the
        all-gathered X on every rank
    tol : EIM of the Riesz representatives stops when every normalized ``G_p`` is
        interpolated to ``tol`` in the max norm (default 1e-13, i.e. round-off)
    """

    def __init__(self, product: Any, *, comm: MPI.Comm | None = None,
                 riesz: Callable[[np.ndarray], np.ndarray] | None = None, tol: float = 1e-13):
        self.comm = as_comm(comm)
        if not sp.issparse(product):
            raise ValueError(f"product must be a scipy sparse row block, got "
                             f"{type(product).__name__}")
        self.X = sp.csr_matrix(product)
        n_local = self.X.shape[0]
        self._riesz = riesz if riesz is not None else GatheredSolver(self.X, self.comm).solve
        self.tol = float(tol)
        lo = int(offsets_of(n_local, self.comm)[self.comm.rank])
        self.greedy = Greedy(np.arange(lo, lo + n_local, dtype=np.int64), self.comm)
        self.R = np.empty((0, n_local))
        self.G = np.empty((0, n_local))
        self.gram = np.zeros((0, 0))

    def apply_X(self, Y_local: np.ndarray) -> np.ndarray:
        """``X Y`` (local rows) for ``Y_local`` (n_local, k) (collective)."""
        return self.X @ gather_rows(Y_local, self.comm)

    def add(self, R_new: np.ndarray) -> None:
        """Append components ``R_new`` (k, n_local) (collective)."""
        R_new = np.atleast_2d(np.asarray(R_new, dtype=np.float64))
        G_new = np.ascontiguousarray(self._riesz(np.ascontiguousarray(R_new.T)).T)
        q0 = self.R.shape[0]
        cross = allsum(self.R @ G_new.T, self.comm)            # (q0, k)
        diag = allsum(R_new @ G_new.T, self.comm)
        gram = np.zeros((q0 + len(R_new),) * 2)
        gram[:q0, :q0] = self.gram
        gram[:q0, q0:] = cross
        gram[q0:, :q0] = cross.T
        gram[q0:, q0:] = 0.5 * (diag + diag.T)
        self.gram = gram
        self.R = np.vstack([self.R, R_new])
        self.G = np.vstack([self.G, G_new])
        s = np.abs(G_new).max(axis=1) if G_new.shape[1] else np.zeros(len(G_new))
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, s, op=MPI.MAX)
        self.greedy.add(G_new / np.where(s > 0, s, 1.0)[:, None])
        self.greedy.run(self.tol, max_terms=self.R.shape[0])

    def online(self) -> OnlineEstimator:
        """The small online arrays for the components added so far (collective)."""
        g = self.greedy
        P = g.values_at_magic(self.G)                          # (Q, K)
        xi = g.Q                                               # (K, n_local)
        M = allsum(xi @ self.apply_X(xi.T), self.comm)
        M = 0.5 * (M + M.T)
        try:
            Lt = np.linalg.cholesky(M).T
        except np.linalg.LinAlgError:                          # numerically semi-definite
            w, U = np.linalg.eigh(M)
            Lt = (U * np.sqrt(np.clip(w, 0.0, None))).T
        return OnlineEstimator(gram=self.gram.copy(), P=P, B=g.B.copy(), Lt=Lt)

    def dual_norm(self, r_local: np.ndarray) -> float:
        """Reference ``sqrt(r^T X^{-1} r)`` of an explicit residual (n_local,) (collective)."""
        r = np.asarray(r_local, dtype=np.float64)
        G = self._riesz(r[:, None])[:, 0]
        return float(np.sqrt(max(allsum([r @ G], self.comm)[0], 0.0)))


def sampled_coercivity(assemble: Callable[[np.ndarray], Any], product: Any,
                       samples: np.ndarray, *, safety: float = 0.9) -> float:
    """"SCM-light": ``safety * min_k lambda_min(A(mu_k), X)`` over sampled parameters (serial).

    The smallest generalized eigenvalue of the symmetric part of ``A(mu_k)`` against ``X``
    (shift-invert Lanczos) on each sample; the minimum times ``safety`` is a constant lower
    bound estimate. Not rigorous between samples: prefer a user-given bound when one is
    known (e.g. ``min_x k(x; mu)`` for heat conduction with ``X`` the unit-k stiffness).
    """
    import scipy.sparse.linalg as spla

    if not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1], got {safety}")
    X = sp.csc_matrix(product)
    lam = []
    for mu in np.atleast_2d(samples):
        A = sp.csc_matrix(assemble(mu))
        A = 0.5 * (A + A.T)
        w = spla.eigsh(A, k=1, M=X, sigma=0.0, which="LM", return_eigenvectors=False)
        lam.append(float(w[0]))
    return safety * min(lam)
