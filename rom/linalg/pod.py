"""Proper orthogonal decomposition of distributed snapshot matrices.

``X`` (N x m, m snapshots as columns) is held as row blocks. Three methods
(see docs/pod.md for costs and accuracy):

- ``"snapshots"``: Gram ``X^T M X`` (one ``Allreduce`` of m x m), ``eigh``, modes
  ``X V / s``, CholQR re-orthonormalization. Fastest; resolves s_i >= sqrt(m eps) s_1 only.
- ``"tsqr"``: tall-skinny QR then SVD of R. Stable to machine precision.
- ``"randomized"``: Halko-Martinsson-Tropp range finder with power iterations; for
  many snapshots and few modes (a sketch of >= m/2 columns falls back to the exact
  ``"tsqr"`` path, or ``"snapshots"`` for a general product: it would save nothing).

Truncation: the smallest n with ``sum_{i>n} s_i^2 <= rtol^2 sum_i s_i^2``, capped by
``max_modes`` and by the method's round-off floor (``PODResult.floor``).
Sign convention: each right singular vector has its largest-magnitude entry positive,
so modes agree across methods and rank counts.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
from mpi4py import MPI

from ..parallel import as_comm, check_same
from .distributed import (
    Product,
    as_float_array,
    as_product,
    global_offsets,
    gram,
    raise_collectively,
)
from .orth import TSQR, cholqr, tsqr, tsqr_r

__all__ = ["METHODS", "PODResult", "pod"]

METHODS = ("snapshots", "tsqr", "randomized")
EPS = np.finfo(np.float64).eps
#: randomized: the captured-energy test ``total - sum s_i^2 <= rtol^2 total`` is trusted
#: only when ``rtol^2 >= RANDOMIZED_MIN_RTOL2`` (cancellation); else the sketch grows to m.
RANDOMIZED_MIN_RTOL2 = 1e3 * EPS


@dataclass
class PODResult:
    """Result of :func:`pod`. Distributed arrays are local row blocks.

    Attributes
    ----------
    modes : (n_local, n) local rows of the M-orthonormal modes
    singular_values : (n,) descending
    right_vectors : (m, n) right singular vectors (replicated), ``X ~= modes @ coefficients``
    all_singular_values : every singular value the method computed (m for snapshots,
        min(N, m) for tsqr, the sketch size for randomized)
    total_energy : ``||X||_M^2 = sum_i s_i^2`` over all singular values
    energy : captured fraction ``sum_{i<=n} s_i^2 / total_energy``
    truncation_error : relative projection error ``||X - P X||_M / ||X||_M`` (from the tail)
    floor : round-off floor: singular values ``<= floor`` are never returned
    method, rtol, max_modes, n_snapshots : the request
    info : method details (sketch size, re-orthonormalization passes, ...)
    """

    modes: np.ndarray
    singular_values: np.ndarray
    right_vectors: np.ndarray
    all_singular_values: np.ndarray
    total_energy: float
    energy: float
    truncation_error: float
    floor: float
    method: str
    rtol: float
    max_modes: int | None
    n_snapshots: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_modes(self) -> int:
        return int(self.singular_values.size)

    @property
    def coefficients(self) -> np.ndarray:
        """(n, m) reduced coordinates ``diag(s) V^T`` of the snapshots."""
        return self.singular_values[:, None] * self.right_vectors.T


def _validate(X: Any, comm: MPI.Comm, method: str, rtol: float, max_modes: int | None,
              oversampling: int, power_iterations: int) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"pod: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not (isinstance(rtol, (int, float, np.floating)) and 0 <= rtol < 1):
        raise ValueError(f"pod: rtol must be a number with 0 <= rtol < 1, got {rtol!r}")
    if max_modes is not None and (not isinstance(max_modes, (int, np.integer)) or max_modes < 1):
        raise ValueError(f"pod: max_modes must be None or an integer >= 1, got {max_modes!r}")
    if oversampling < 0 or power_iterations < 0:
        raise ValueError("pod: oversampling and power_iterations must be >= 0")
    error = None
    try:
        X = as_float_array(X, "pod: X")
    except ValueError as exc:
        error = f"{exc} (local row block n_local x m expected)"
    raise_collectively(error, comm)
    widths = comm.allgather(X.shape[1]) if comm.size > 1 else [X.shape[1]]
    if len(set(widths)) > 1:
        raise ValueError(f"pod: X has a different number of columns on different ranks: {widths}")
    return X


def _raise_nonfinite(X: np.ndarray, comm: MPI.Comm) -> None:
    """Called (collectively) once non-finite data is known to exist: say where."""
    offset = int(global_offsets(X.shape[0], comm)[comm.rank])
    bad = np.argwhere(~np.isfinite(X))
    msg = None
    if bad.size:
        i, j = (int(v) for v in bad[0])
        msg = (f"pod: X contains {X[i, j]} at local row {i} (global row {offset + i}), "
               f"column {j}; {len(bad)} non-finite entries on this rank")
    raise_collectively(msg, comm)
    raise ValueError("pod: the product of X with itself is not finite (overflow?)")


def _total_energy(X: np.ndarray, M: Product, comm: MPI.Comm) -> float:
    """``||X||_M^2 = trace(X^T M X)`` in one pass and one Allreduce; raises on NaN/inf."""
    if M.kind == "euclidean":
        energy = np.einsum("ij,ij->j", X, X)
    elif M.kind == "diagonal":
        energy = np.einsum("ij,ij->i", X, X) @ M.weights
    else:
        energy = np.einsum("ij,ij->j", X, M.apply(X))
    energy = np.atleast_1d(np.asarray(energy, dtype=np.float64))
    if comm.size > 1:
        energy = np.ascontiguousarray(energy)
        comm.Allreduce(MPI.IN_PLACE, energy, op=MPI.SUM)
    if not np.all(np.isfinite(energy)):
        _raise_nonfinite(X, comm)
    return float(energy.sum())


def _canonical_signs(Vt: np.ndarray) -> np.ndarray:
    """Signs (n,) making the largest-magnitude entry of each row of ``Vt`` positive."""
    if Vt.size == 0:
        return np.ones(Vt.shape[0])
    idx = np.argmax(np.abs(Vt), axis=1)
    signs = np.sign(Vt[np.arange(Vt.shape[0]), idx])
    signs[signs == 0] = 1.0
    return signs


def _truncate(s: np.ndarray, total: float, rtol: float, max_modes: int | None, floor: float,
              complete: bool) -> tuple[int, float, bool]:
    """Number of modes, relative tail energy, and whether rtol is met.

    ``complete``: ``s`` holds every singular value (tail = reverse cumulative sum); else
    the tail is ``total - sum_{i<=n} s_i^2`` (randomized sketch).
    """
    s2 = s * s
    if complete:
        tail = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])
    else:
        tail = np.maximum(total - np.concatenate([[0.0], np.cumsum(s2)]), 0.0)
    n_rtol = int(np.argmax(tail <= rtol**2 * total)) if np.any(tail <= rtol**2 * total) else s.size
    n_floor = int(np.count_nonzero(s > floor))
    n = min(n_rtol, n_floor, max_modes if max_modes is not None else s.size)
    met = n_rtol <= n_floor and tail[min(n_rtol, s.size)] <= rtol**2 * total
    rel_tail = float(tail[n] / total) if total > 0 else 0.0
    return n, rel_tail, met


def _warn_unmet(method: str, rtol: float, n: int, rel_tail: float, hint: str) -> None:
    warnings.warn(f"pod(method={method!r}): rtol={rtol:g} cannot be met, returning {n} modes "
                  f"(relative error {np.sqrt(rel_tail):.2e}); {hint}", RuntimeWarning, stacklevel=3)


def _pod_snapshots(X, M: Product, comm, rtol, max_modes, orthonormalize):
    m = X.shape[1]
    C = gram(X, None, comm) if M.kind == "euclidean" else M.gram(X)
    if not np.all(np.isfinite(np.diag(C))):
        _raise_nonfinite(X, comm)
    lam, V = np.linalg.eigh(C)                     # LAPACK syevd (scipy's wrapper is slower)
    lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
    s_all = np.sqrt(lam)
    total = float(lam.sum())
    floor = np.sqrt(m * EPS) * (s_all[0] if m else 0.0)
    n, rel_tail, met = _truncate(s_all, total, rtol, max_modes, floor, complete=True)
    if rtol > 0 and not met and n < (max_modes or m + 1):
        _warn_unmet("snapshots", rtol, n, rel_tail, f"singular values below sqrt(m eps) s_1 = "
                    f"{floor:.2e} are round-off in the Gram matrix; use method='tsqr'")
    V, s = V[:, :n], s_all[:n]
    modes, V, s = _modes_of(X, V * _canonical_signs(V.T), s, M, comm, orthonormalize)
    return modes, s, V, s_all, total, floor, rel_tail, {}


def _modes_of(X, V, s, M: Product, comm, orthonormalize: bool = True):
    """The modes ``X V S^-1`` of right singular vectors ``V`` and singular values ``s``,
    M-orthonormalized by CholQR when asked (then with the kept ``V`` and ``s``); their
    orthogonality before it is off by about ``eps s_1 / s_n``."""
    if not s.size:
        return np.zeros((X.shape[0], 0)), V, s
    modes = X @ (V / s)
    if orthonormalize:
        modes, kept = cholqr(modes, product=M, comm=comm, overwrite=True, return_kept=True)
        V, s = V[:, kept], s[kept]
    return modes, V, s


def _pod_tsqr(X, M: Product, comm, rtol, max_modes, reflectors=True):
    if M.kind not in ("euclidean", "diagonal"):
        raise ValueError(f"pod(method='tsqr') supports the Euclidean product or diagonal weights "
                         f"only, not a {M.kind!r} product; use method='snapshots' (or "
                         f"'randomized') for a general inner-product matrix")
    sw = None if M.is_euclidean else np.sqrt(M.weights)[:, None]
    Y = X if sw is None else sw * X
    _total_energy(Y, Product("euclidean", comm), comm)       # NaN check (one cheap pass)
    qr = TSQR(Y, comm) if reflectors else None
    Ur, s_all, Vt = sla.svd(qr.R if reflectors else tsqr_r(Y, comm), full_matrices=False,
                            check_finite=False)
    total = float(np.sum(s_all**2))
    floor = X.shape[1] * EPS * (s_all[0] if s_all.size else 0.0)
    n, rel_tail, _ = _truncate(s_all, total, rtol, max_modes, floor, complete=True)
    signs = _canonical_signs(Vt[:n])
    V, s = Vt[:n].T * signs, s_all[:n]
    if not reflectors:                       # X v_i / s_i = Q u_i (Y = Q R), orthonormalized
        modes, V, s = _modes_of(X, V, s, M, comm)
        return modes, s, V, s_all, total, floor, rel_tail, {}
    modes = qr.apply(Ur[:, :n] * signs)
    if sw is not None:
        modes /= sw
    return modes, s, V, s_all, total, floor, rel_tail, {}


def _range_finder(X, M: Product, comm, ell: int, power_iterations: int, seed: int):
    """M-orthonormal Q (n_local, <= ell) approximating the range of X, and B = Q^T M X."""
    omega = np.random.default_rng(seed).standard_normal((X.shape[1], ell))

    def orth(Y):
        return tsqr(Y, comm=comm, product=M)[0] if M.kind in ("euclidean", "diagonal") \
            else cholqr(Y, product=M, comm=comm, overwrite=True)

    Q = orth(X @ omega)
    for _ in range(power_iterations):
        Z = np.linalg.qr(gram(X, M.apply(Q), comm))[0]     # (m, ell), replicated
        Q = orth(X @ Z)
    MQ = M.apply(Q)
    return Q, gram(MQ, X, comm)


def _pod_randomized(X, M: Product, comm, rtol, max_modes, oversampling, power_iterations, seed):
    m = X.shape[1]
    if max_modes is not None:
        ell = min(m, max_modes + oversampling)
    else:
        ell = min(m, max(2 * oversampling, 32))
        if rtol**2 < RANDOMIZED_MIN_RTOL2:
            ell = m
    total = _total_energy(X, M, comm) if 2 * ell < m else 0.0
    while 2 * ell < m:
        Q, B = _range_finder(X, M, comm, ell, power_iterations, seed)
        Ub, s_all, Vt = sla.svd(B, full_matrices=False, check_finite=False)
        floor = ell * EPS * s_all[0]
        n, rel_tail, met = _truncate(s_all, total, rtol, max_modes, floor, complete=False)
        if max_modes is not None or (met and n + oversampling <= ell):
            signs = _canonical_signs(Vt[:n])
            modes = Q @ (Ub[:, :n] * signs)
            return modes, s_all[:n], Vt[:n].T * signs, s_all, total, floor, rel_tail, \
                {"sketch": ell}
        ell *= 2
    # A sketch of half the snapshots or more saves nothing: compute the exact POD instead.
    exact = "tsqr" if M.kind in ("euclidean", "diagonal") else "snapshots"
    out = (_pod_tsqr(X, M, comm, rtol, max_modes) if exact == "tsqr"
           else _pod_snapshots(X, M, comm, rtol, max_modes, True))
    return out[:-1] + ({"sketch": m, "exact": exact},)


def pod(X: np.ndarray, *, comm: MPI.Comm | None = None, method: str = "snapshots",
        rtol: float = 1e-6, max_modes: int | None = None, product: Any = None,
        orthonormalize: bool = True, oversampling: int = 10, power_iterations: int = 2,
        seed: int = 0, reflectors: bool = True) -> PODResult:
    """Proper orthogonal decomposition of a row-distributed snapshot matrix (collective).

    Parameters
    ----------
    X : (n_local, m) this rank's rows of the N x m snapshot matrix (columns = snapshots);
        float64 C- or F-contiguous input is used without copy
    comm : communicator, ``None`` for serial
    method : ``"snapshots"`` (default, fastest), ``"tsqr"`` (accurate to eps) or
        ``"randomized"`` (few modes of many snapshots)
    rtol : relative energy tolerance, ``0 <= rtol < 1``: smallest n with
        ``sum_{i>n} s_i^2 <= rtol^2 sum_i s_i^2``; 0 keeps all above the round-off floor
    max_modes : upper bound on the number of modes
    product : inner product ``M`` (None, diagonal weights (n_local,), sparse row block
        (n_local, N), sparse diagonal block (n_local, n_local), or callable); the modes are
        M-orthonormal and ``s`` are the singular values of ``M^{1/2} X``. ``"tsqr"``
        supports None and diagonal weights only
    orthonormalize : re-orthonormalize the snapshot-method modes (CholQR with check)
    oversampling, power_iterations, seed : randomized method parameters (sketch of
        ``max_modes + oversampling`` columns, or grown by doubling when only rtol is given)
    reflectors : ``"tsqr"`` only. ``True``: keep the Householder reflectors of the local
        QR (memory: a copy of X) and form the modes as ``Q U`` (orthonormal to eps).
        ``False``: fold the rows into R one chunk at a time (:func:`~rom.linalg.orth.tsqr_r`,
        memory: one chunk) and form the modes as ``X V S^-1``, re-orthonormalized by
        :func:`~rom.linalg.orth.cholqr` (before it, their orthogonality is off by about
        ``eps s_1 / s_n``); the same span and singular values, for matrices that fill
        the memory

    Returns
    -------
    PODResult
        ``modes`` (n_local, n), ``singular_values`` (n,), ``right_vectors`` (m, n), ...

    Raises
    ------
    ValueError
        Unknown method, bad ``rtol``/``max_modes``, X not 2-D or with NaN/inf (the message
        gives the global row and column), product of the wrong shape, general product with
        ``"tsqr"``. Raised on every rank.
    UserError
        The arguments differ between ranks (:func:`rom.parallel.check_same`): raised on
        every rank, naming the argument and its value per rank.
    """
    comm = as_comm(comm)
    check_same(comm, "pod", method=method, rtol=rtol, max_modes=max_modes,
               orthonormalize=orthonormalize, oversampling=oversampling,
               power_iterations=power_iterations, seed=seed, reflectors=reflectors,
               product=None if product is None else type(product).__name__)
    X = _validate(X, comm, method, rtol, max_modes, oversampling, power_iterations)
    M = as_product(product, X.shape[0], comm)
    if method == "snapshots":
        out = _pod_snapshots(X, M, comm, rtol, max_modes, orthonormalize)
    elif method == "tsqr":
        out = _pod_tsqr(X, M, comm, rtol, max_modes, reflectors)
    else:
        out = _pod_randomized(X, M, comm, rtol, max_modes, oversampling, power_iterations, seed)
    modes, s, V, s_all, total, floor, rel_tail, info = out
    return PODResult(modes=modes, singular_values=s, right_vectors=V, all_singular_values=s_all,
                     total_energy=total, energy=1.0 - rel_tail if total > 0 else 1.0,
                     truncation_error=float(np.sqrt(rel_tail)), floor=float(floor),
                     method=method, rtol=float(rtol), max_modes=max_modes,
                     n_snapshots=X.shape[1], info=info)
