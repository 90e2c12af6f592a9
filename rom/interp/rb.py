"""Nonintrusive reduced-basis pipeline for linear parametric problems ``A(mu) u = f(mu)``.

Offline (:func:`build_rb`, collective): matrix EIM of ``A``, vector EIM of ``f``, then a
greedy over the training set driven by the error bound: solve the high-fidelity problem
at the worst parameter, add the X-orthonormalized snapshot to the basis ``V``, update the
reduced matrices ``V^T Q_m V`` (``Q_m``: EIM basis matrices, combinations of the training
matrices ``A(mu_l)``), the reduced loads ``V^T q_n`` and the estimator. Online
(:meth:`RBModel.solve`): magic values of ``A(mu)`` and ``f(mu)`` (hook or one assembly),
two triangular solves, an ``n x n`` dense solve, and the bound.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from mpi4py import MPI

from ..parallel import as_comm
from ._dist import GatheredSolver, allsum, as_local_csr, check, gather_rows
from .estimator import Coercivity, OnlineEstimator, ResidualEstimator, coercivity_of
from .meim import MagicCost, MatrixEIM, VectorEIM, as_training, matrix_eim, vector_eim

__all__ = ["LinearProblem", "RBModel", "RBResult", "build_rb"]


@dataclass
class LinearProblem:
    """The user's solver, seen from outside (all callables take ``mu`` of shape (d,)).

    Attributes
    ----------
    assemble : ``mu -> A(mu)``, this rank's CSR row block (n_local, N), global columns
    rhs : ``mu -> f(mu)`` (n_local,)
    matrix_entries : optional hook ``(mu, rows, cols) -> values`` for the owned magic entries
    rhs_entries : optional hook ``(mu, rows) -> values``
    solve : optional high-fidelity solver ``mu -> u(mu)`` (n_local,); default: assemble and
        solve with SuperLU on the all-gathered matrix (small problems)
    """

    assemble: Callable[[np.ndarray], Any]
    rhs: Callable[[np.ndarray], np.ndarray]
    matrix_entries: Callable[..., np.ndarray] | None = None
    rhs_entries: Callable[..., np.ndarray] | None = None
    solve: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass
class RBResult:
    """One online query.

    Attributes
    ----------
    mu : (d,) parameter
    coefficients : (n,) reduced solution in the X-orthonormal basis
    error_bound : ``residual_norm / coercivity`` >= ``||u_h - V c||_X`` (up to EIM error)
    residual_norm : ``||r(mu)||_{X'}`` (stable or classical evaluation)
    coercivity : the lower bound used
    estimator : ``"stable"`` or ``"classical"``
    gamma_matrix, gamma_rhs : (Ma,), (Mf,) EIM coefficients
    costs : how the magic values were obtained (:class:`rom.interp.meim.MagicCost`)
    seconds : online wall time of the query [s]
    """

    mu: np.ndarray
    coefficients: np.ndarray
    error_bound: float
    residual_norm: float
    coercivity: float
    estimator: str
    gamma_matrix: np.ndarray
    gamma_rhs: np.ndarray
    costs: dict[str, MagicCost]
    seconds: float
    basis: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def field(self) -> np.ndarray:
        """The reconstructed field ``V c`` (n_local,), computed on first access."""
        if self.basis is None:
            raise ValueError("this model has no basis stored: cannot reconstruct the field")
        return self.basis[:, :self.coefficients.size] @ self.coefficients

    @property
    def norm(self) -> float:
        """``||V c||_X = ||c||_2`` (the basis is X-orthonormal)."""
        return float(np.linalg.norm(self.coefficients))


@dataclass
class RBModel:
    """Reduced model: online data (small, replicated) plus the local rows of the basis.

    Attributes
    ----------
    matrix_eim, rhs_eim : the interpolants (online parts suffice)
    reduced_matrices : (Ma, n, n) ``V^T Q_m V``
    reduced_rhs : (Mf, n) ``V^T q_n``
    online_estimator : :class:`rom.interp.estimator.OnlineEstimator`
    coercivity : constant or ``mu -> alpha_LB(mu)``
    basis : (n_local, n) local rows of the X-orthonormal basis (or ``None``)
    history : greedy record: ``selected`` indices, ``max_bound`` per size, timings
    """

    matrix_eim: MatrixEIM
    rhs_eim: VectorEIM
    reduced_matrices: np.ndarray
    reduced_rhs: np.ndarray
    online_estimator: OnlineEstimator
    coercivity: Coercivity
    basis: np.ndarray | None = None
    problem: LinearProblem | None = None
    estimator: str = "stable"
    history: dict = field(default_factory=dict)
    comm: MPI.Comm = field(default_factory=lambda: MPI.COMM_SELF, repr=False)

    @property
    def n_basis(self) -> int:
        return int(self.reduced_rhs.shape[1])

    @property
    def n_params(self) -> int:
        return int(self.matrix_eim.parameters.shape[1])

    def attach(self, problem: LinearProblem) -> None:
        """Attach the user's solver (hooks) used for the magic values of new parameters."""
        self.problem = problem

    def solve_coefficients(self, gamma_a: np.ndarray, gamma_f: np.ndarray, mu: np.ndarray,
                           *, n: int | None = None, estimator: str | None = None):
        """Reduced solve and bound from EIM coefficients: ``(c, residual_norm, alpha)``."""
        n = self.n_basis if n is None else int(n)
        if not 1 <= n <= self.n_basis:
            raise ValueError(f"n must be in [1, {self.n_basis}], got {n}")
        Ar = np.tensordot(gamma_a, self.reduced_matrices[:gamma_a.size, :n, :n], axes=1)
        fr = gamma_f @ self.reduced_rhs[:gamma_f.size, :n]
        c = np.linalg.solve(Ar, fr)
        theta = np.concatenate([gamma_f, (c[:, None] * gamma_a[None, :]).ravel()])
        res = self.online_estimator(theta, estimator or self.estimator)
        return c, res, coercivity_of(self.coercivity, mu)

    def solve(self, mu: Any, *, n: int | None = None, estimator: str | None = None,
              matrix_values: np.ndarray | None = None,
              rhs_values: np.ndarray | None = None) -> RBResult:
        """Online solve for a new parameter (collective over the model's communicator).

        Parameters
        ----------
        mu : (d,) parameter
        n : use the first ``n`` basis functions (default: all)
        estimator : ``"stable"`` (default of the model) or ``"classical"``
        matrix_values, rhs_values : magic values of ``A(mu)`` (Ma,) and ``f(mu)`` (Mf,)
            when the caller has them; otherwise from the attached problem (hooks first,
            else one assembly: see ``result.costs``)
        """
        t0 = time.perf_counter()
        mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
        if mu.shape != (self.n_params,) or not np.all(np.isfinite(mu)):
            raise ValueError(f"mu must be a finite vector of {self.n_params} values, got {mu!r}")
        costs: dict[str, MagicCost] = {}
        p = self.problem
        if matrix_values is None:
            if p is None:
                raise ValueError("no problem attached: call model.attach(LinearProblem(...)) "
                                 "or pass matrix_values")
            matrix_values, costs["matrix"] = self.matrix_eim.magic_values(
                mu, assemble=p.assemble, entries=p.matrix_entries)
        if rhs_values is None:
            if p is None:
                raise ValueError("no problem attached: call model.attach(...) or pass rhs_values")
            rhs_values, costs["rhs"] = self.rhs_eim.magic_values(mu, rhs=p.rhs,
                                                                 entries=p.rhs_entries)
        ga = self.matrix_eim.coefficients(matrix_values)
        gf = self.rhs_eim.coefficients(rhs_values)
        c, res, alpha = self.solve_coefficients(ga, gf, mu, n=n, estimator=estimator)
        return RBResult(mu=mu, coefficients=c, error_bound=res / alpha, residual_norm=res,
                        coercivity=alpha, estimator=estimator or self.estimator,
                        gamma_matrix=ga, gamma_rhs=gf, costs=costs,
                        seconds=time.perf_counter() - t0, basis=self.basis)


def build_rb(problem: LinearProblem, training: Any, *, product: Any, coercivity: Coercivity,
             comm: MPI.Comm | None = None, matrix_tol: float = 1e-10, rhs_tol: float = 1e-10,
             max_matrix_terms: int | None = None, max_rhs_terms: int | None = None,
             rb_tol: float = 1e-6, max_basis: int = 30, estimator: str = "stable",
             residual_tol: float = 1e-13,
             riesz: Callable[[np.ndarray], np.ndarray] | None = None,
             log: Callable[[str], None] | None = None) -> RBModel:
    """Offline stage: EIM of A and f, then the estimator-driven greedy (collective).

    Parameters
    ----------
    problem : the user's assembly callables (row blocks) and optional hooks/solver
    training : (K, d) training parameters, identical on every rank
    product : (n_local, N) CSR row block of the SPD product matrix X (e.g. an energy matrix)
    coercivity : lower bound of the coercivity constant in X: a constant > 0 or a callable
    comm : communicator
    matrix_tol, rhs_tol : relative max-entry EIM tolerances; max_*_terms : caps
    rb_tol : stop when ``max_k error_bound(mu_k) / ||u_N(mu_k)||_X <= rb_tol``
    max_basis : at most this many basis functions
    estimator : ``"stable"`` or ``"classical"`` (drives the greedy; both are stored)
    residual_tol : EIM tolerance of the Riesz representatives (stable estimator)
    riesz : optional distributed solver ``R (n_local, k) -> X^{-1} R``
    log : optional ``print``-like callable for progress (called on every rank)

    Returns
    -------
    RBModel with ``history = {"selected", "max_bound", "seconds"}``.
    """
    comm = as_comm(comm)
    P = as_training(training)
    msg = None
    if estimator not in ("stable", "classical"):
        msg = f"estimator must be 'stable' or 'classical', got {estimator!r}"
    elif not (0 < rb_tol < 1) or int(max_basis) != max_basis or max_basis < 1:
        msg = f"need 0 < rb_tol < 1 and max_basis >= 1, got {rb_tol}, {max_basis}"
    check(msg, comm)
    times: dict[str, float] = {}
    t = time.perf_counter()
    A_eim = matrix_eim(problem.assemble, P, comm=comm, tol=matrix_tol, max_terms=max_matrix_terms)
    times["matrix_eim"] = time.perf_counter() - t
    t = time.perf_counter()
    f_eim = vector_eim(problem.rhs, P, comm=comm, tol=rhs_tol, max_terms=max_rhs_terms)
    times["rhs_eim"] = time.perf_counter() - t
    say = log or (lambda s: None)
    say(f"EIM: {A_eim.n_terms} matrix terms (err {A_eim.errors[-1]:.2e}), "
        f"{f_eim.n_terms} rhs terms (err {f_eim.errors[-1]:.2e})")
    X = as_local_csr(product, "product")
    est = ResidualEstimator(X, comm=comm, riesz=riesz, tol=residual_tol)
    est.add(f_eim.Q)
    Qm = [A_eim.basis_matrix(m) for m in range(A_eim.n_terms)]
    n_local = X.shape[0]
    V = np.empty((n_local, 0))
    QV = np.empty((A_eim.n_terms, n_local, 0))
    model = None
    selected, max_bound = [], []
    k_star = 0
    t = time.perf_counter()
    for _ in range(int(max_basis)):
        mu = P[k_star]
        if problem.solve is not None:
            u = np.asarray(problem.solve(mu.copy()), dtype=np.float64)
        else:
            A = as_local_csr(problem.assemble(mu.copy()), "assemble(mu)")
            u = GatheredSolver(A, comm).solve(np.asarray(problem.rhs(mu.copy()), dtype=float))
        v = u.copy()
        for _pass in range(2):                                  # X-Gram-Schmidt, twice
            v -= V @ allsum(V.T @ est.apply_X(v[:, None])[:, 0], comm)
        nu = np.sqrt(allsum([u @ est.apply_X(u[:, None])[:, 0]], comm)[0])
        nv = np.sqrt(allsum([v @ est.apply_X(v[:, None])[:, 0]], comm)[0])
        if not nv > 1e-12 * nu:
            say(f"snapshot at training parameter {k_star} is already in the space: stop")
            break
        v /= nv
        selected.append(k_star)
        V = np.column_stack([V, v])
        v_full = gather_rows(v, comm)
        qv = np.stack([Qm_ @ v_full for Qm_ in Qm])              # (Ma, n_local)
        QV = np.concatenate([QV, qv[:, :, None]], axis=2)
        est.add(-qv)
        reduced = allsum(np.einsum("ni,mnj->mij", V, QV), comm)
        fr = allsum(f_eim.Q @ V, comm)
        model = RBModel(A_eim, f_eim, reduced, fr, est.online(), coercivity, basis=V,
                        problem=problem, estimator=estimator, comm=comm)
        rel = np.empty(len(P))
        for k in range(len(P)):
            c, res, alpha = model.solve_coefficients(A_eim.training_gamma[k],
                                                     f_eim.training_gamma[k], P[k])
            rel[k] = res / alpha / max(np.linalg.norm(c), np.finfo(float).tiny)
        k_star = int(np.argmax(rel))
        max_bound.append(float(rel[k_star]))
        say(f"basis {V.shape[1]:3d}: max relative bound {rel[k_star]:.3e} at {k_star}")
        if rel[k_star] <= rb_tol:
            break
        if k_star in selected:
            say(f"worst parameter {k_star} already selected (EIM error level?): stop")
            break
    times["greedy"] = time.perf_counter() - t
    if model is None:
        raise ValueError("reduced-basis greedy produced no basis (zero solution?)")
    model.history = {"selected": np.array(selected), "max_bound": np.array(max_bound),
                     "seconds": times, "training": P}
    return model
