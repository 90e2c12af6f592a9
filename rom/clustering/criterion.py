"""A priori efficiency criterion for local reduced bases, from the Gram matrix alone.

Before any reduced model is built, predict whether k local bases pay off at tolerance
``eps`` (see docs/local-bases.md for the derivation):

- ``n(eps; S)``: POD size needed for the snapshot set S, the smallest n with
  ``sum_{i>n} lambda_i <= eps^2 sum_i lambda_i`` (``lambda`` = eigenvalues of the Gram
  block of S; ``sqrt(tail / total)`` is the normalized Kolmogorov n-width proxy). No
  snapshot is touched: the eigenvalues of diagonal Gram blocks suffice.
- ``n_g = n(eps; all)`` for one global basis, ``n_c = n(eps; cluster c)`` (overlap
  included) for the local ones.
- online cost of one reduced Newton iteration with n modes and ``p = a n`` reduced
  integration points (:class:`OnlineCost`): ``W(n) = n^3/3 + p n^2 + b p``
  (dense LU, reduced tangent assembly, constitutive law at the points).
- predicted speed-up of local over global bases: ``S = W(n_g) / sum_c w_c W(n_c)`` with
  ``w_c`` the fraction of snapshots in cluster c (the expected query mix), and the worst
  case ``S_min = W(n_g) / max_c W(n_c)``. Local bases are predicted to pay off when
  ``S >= threshold`` (default 1.5: a margin for the selection and switching overhead).

:func:`modes_needed` and :func:`measured_speedup` measure the same quantities on held-out
snapshots, to check the prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from ..linalg.distributed import as_product
from ..linalg.distributed import gram as dgram
from ..parallel import as_comm
from .dissimilarity import check_gram, dissimilarity_matrix
from .kmedoids import kmedoids

__all__ = [
    "CriterionResult",
    "OnlineCost",
    "efficiency_criterion",
    "measured_speedup",
    "modes_needed",
    "pod_size",
    "scan_k",
]


@dataclass(frozen=True)
class OnlineCost:
    """Cost model of one reduced Newton iteration with n modes (flop-like units).

    ``W(n) = n^3 / 3 + p n^2 + law_cost * p`` with ``p = points_per_mode * n`` reduced
    integration points (ECM typically selects 1 to 3 points per mode).
    """

    points_per_mode: float = 2.0
    law_cost: float = 100.0

    def __call__(self, n: Any) -> Any:
        n = np.asarray(n, dtype=np.float64)
        p = self.points_per_mode * n
        return n**3 / 3.0 + p * n**2 + self.law_cost * p


def pod_size(eigenvalues: np.ndarray, rtol: float) -> int:
    """Smallest n with ``sum_{i>n} lambda_i <= rtol^2 sum_i lambda_i``.

    Eigenvalues below ``len * eps * lambda_max`` are treated as round-off (zero).
    """
    lam = np.sort(np.maximum(np.asarray(eigenvalues, dtype=np.float64), 0.0))[::-1]
    if lam.size == 0 or lam[0] == 0:
        return 0
    lam[lam <= lam.size * np.finfo(float).eps * lam[0]] = 0.0
    tail = np.concatenate([np.cumsum(lam[::-1])[::-1], [0.0]])
    return int(np.argmax(tail <= rtol**2 * tail[0]))


@dataclass
class CriterionResult:
    """Prediction of :func:`efficiency_criterion`.

    Attributes
    ----------
    rtol : POD tolerance eps
    n_global : POD size of the global basis at eps
    n_local : (k,) POD size of each local basis at eps
    weights : (k,) expected fraction of queries per cluster
    cost_global, cost_local : W(n_global) and (k,) W(n_local)
    speedup : W(n_global) / sum_c w_c W(n_c)
    speedup_worst : W(n_global) / max_c W(n_c)
    threshold : speed-up above which local bases are predicted to pay off
    """

    rtol: float
    n_global: int
    n_local: np.ndarray
    weights: np.ndarray
    cost_global: float
    cost_local: np.ndarray
    speedup: float
    speedup_worst: float
    threshold: float

    @property
    def k(self) -> int:
        return int(self.n_local.size)

    @property
    def redundancy(self) -> float:
        """``sum_c n_c / n_g``: about 1 when the clusters are independent subspaces."""
        return float(self.n_local.sum() / self.n_global) if self.n_global else np.inf

    @property
    def pays_off(self) -> bool:
        """True if the predicted mean speed-up reaches the threshold."""
        return bool(self.speedup >= self.threshold)

    def summary(self) -> str:
        """One line: sizes, predicted speed-ups and the verdict."""
        return (f"eps={self.rtol:g} k={self.k}: global basis {self.n_global} modes, local "
                f"{self.n_local.tolist()} (mean {float(self.weights @ self.n_local):.1f}); "
                f"redundancy {self.redundancy:.2f}; predicted speed-up {self.speedup:.2f} "
                f"(worst cluster {self.speedup_worst:.2f})"
                f" -> local bases {'pay off' if self.pays_off else 'do not pay off'} "
                f"(threshold {self.threshold:g})")


def _cluster_list(clusters: Any, m: int) -> tuple[list[np.ndarray], np.ndarray]:
    if isinstance(clusters, (list, tuple)):
        cols = [np.asarray(c, dtype=np.int64) for c in clusters]
        sizes = np.array([c.size for c in cols], dtype=float)
    else:
        labels = np.asarray(clusters)
        if labels.shape != (m,):
            raise ValueError(f"clusters: labels of shape ({m},) or a list of column arrays "
                             f"expected, got shape {labels.shape}")
        cols = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        sizes = np.array([c.size for c in cols], dtype=float)
    if any(c.size == 0 for c in cols):
        raise ValueError("clusters: every cluster needs at least one snapshot")
    return cols, sizes


def efficiency_criterion(gram: np.ndarray, clusters: Any, *, rtol: float,
                         cost: OnlineCost | None = None, threshold: float = 1.5,
                         weights: np.ndarray | None = None) -> CriterionResult:
    """Predict the online speed-up of local bases over one global basis at tolerance rtol.

    Parameters
    ----------
    gram : (m, m) snapshot Gram matrix ``X^T M X``
    clusters : (m,) cluster label per column, or a list of k column-index arrays (e.g.
        :attr:`LocalBases.columns`, overlap included)
    rtol : POD tolerance eps (relative, energy norm), ``0 < rtol < 1``
    cost : online cost model (default :class:`OnlineCost()`)
    threshold : speed-up needed to call local bases worthwhile
    weights : (k,) expected query fraction per cluster; default: cluster sizes / total

    Returns
    -------
    CriterionResult
    """
    G = check_gram(gram)
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must satisfy 0 < rtol < 1, got {rtol}")
    cost = cost or OnlineCost()
    cols, sizes = _cluster_list(clusters, G.shape[0])
    w = sizes / sizes.sum() if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(cols),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be {len(cols)} nonnegative numbers summing to 1")
    n_g = pod_size(np.linalg.eigvalsh(G), rtol)
    n_c = np.array([pod_size(np.linalg.eigvalsh(G[np.ix_(c, c)]), rtol) for c in cols])
    Wg, Wc = float(cost(n_g)), cost(n_c)
    mean_cost = float(w @ Wc)
    return CriterionResult(rtol=float(rtol), n_global=n_g, n_local=n_c, weights=w,
                           cost_global=Wg, cost_local=Wc,
                           speedup=Wg / mean_cost if mean_cost > 0 else np.inf,
                           speedup_worst=Wg / float(Wc.max()) if Wc.max() > 0 else np.inf,
                           threshold=float(threshold))


def scan_k(gram: np.ndarray, ks: Any, *, rtol: float, dissimilarity: str = "sine",
           level: str = "snapshots", groups: Any = None, seed: int = 0,
           cost: OnlineCost | None = None, threshold: float = 1.5,
           max_redundancy: float = 0.25,
           min_cluster_size: int = 1) -> tuple[int, list[CriterionResult]]:
    """Choose k with the criterion: cluster for each candidate k, predict, pick.

    The predicted speed-up keeps growing with k (smaller clusters need fewer modes), so it
    cannot choose k alone. The rule uses the *redundancy* ``rho(k) = sum_c n_c / n_g``:
    ``rho ~ 1`` while the clusters split the snapshots into nearly independent subspaces
    (distinct regimes), and it grows once clusters cut a connected regime into pieces that
    share modes. Chosen: the largest k with ``rho(k) <= 1 + max_redundancy`` whose
    prediction pays off and whose clusters all have at least ``min_cluster_size`` items;
    the smallest candidate if none qualifies. A heuristic: check it on held-out snapshots.

    Returns
    -------
    (k, results) with one :class:`CriterionResult` per candidate k (ascending).
    """
    G = check_gram(gram)
    ks = sorted(int(k) for k in ks)
    D, _, members = dissimilarity_matrix(G, dissimilarity=dissimilarity, level=level,
                                         groups=groups)
    results, best = [], ks[0]
    for k in ks:                                          # loop over candidate k
        km = kmedoids(D, k, seed=seed)
        cols = [np.sort(np.concatenate([members[i] for i in np.flatnonzero(km.labels == c)]))
                for c in range(k)]
        res = efficiency_criterion(G, cols, rtol=rtol, cost=cost, threshold=threshold)
        results.append(res)
        if res.pays_off and res.redundancy <= 1 + max_redundancy \
                and km.sizes.min() >= min_cluster_size:
            best = k
    return best, results


def modes_needed(modes: np.ndarray, Y: np.ndarray, *, rtol: float, comm: MPI.Comm | None = None,
                 product: Any = None) -> int | None:
    """Smallest n such that the first n modes represent the snapshots Y within rtol.

    The error is the aggregate ``sqrt(sum_j |y_j - P_n y_j|^2 / sum_j |y_j|^2)`` (the POD
    criterion applied to unseen snapshots). ``modes`` (n_local, n_max) must be M-orthonormal,
    ``Y`` (n_local, q). Returns ``None`` if even n_max modes are not enough (collective).
    """
    comm = as_comm(comm)
    if Y.shape[1] == 0:
        return 0
    M = as_product(product, Y.shape[0], comm)
    MY = M.apply(Y)
    C = dgram(modes, MY, comm)                                     # (n_max, q)
    energy = np.array([np.einsum("ij,ij->", Y, MY)])
    if comm.size > 1:
        comm.Allreduce(MPI.IN_PLACE, energy, op=MPI.SUM)
    tail = energy[0] - np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", C, C))])
    ok = np.flatnonzero(tail <= rtol**2 * energy[0])
    return int(ok[0]) if ok.size else None


def measured_speedup(global_modes: np.ndarray, local_modes: list[np.ndarray], Y: np.ndarray,
                     assignment: np.ndarray, *, rtol: float, cost: OnlineCost | None = None,
                     comm: MPI.Comm | None = None,
                     product: Any = None) -> tuple[int | None, np.ndarray, float]:
    """The speed-up actually obtained on held-out snapshots Y (n_local, q).

    Each basis is truncated to the smallest size meeting rtol on its held-out snapshots
    (global: all of Y; local c: the columns with ``assignment == c``, the online choice).
    Returns ``(n_global, n_local (k,) with -1 for a cluster that got no query, speed-up)``;
    a basis that cannot reach rtol counts with its full size plus one.
    """
    cost = cost or OnlineCost()
    assignment = np.asarray(assignment)
    n_g = modes_needed(global_modes, Y, rtol=rtol, comm=comm, product=product)
    n_g_eff = global_modes.shape[1] + 1 if n_g is None else n_g
    n_c = np.full(len(local_modes), -1, dtype=np.int64)
    w = np.array([np.count_nonzero(assignment == c) for c in range(len(local_modes))], float)
    for c, Phi in enumerate(local_modes):                          # loop over clusters
        idx = np.flatnonzero(assignment == c)
        if idx.size:
            n = modes_needed(Phi, Y[:, idx], rtol=rtol, comm=comm, product=product)
            n_c[c] = Phi.shape[1] + 1 if n is None else n
    used = n_c >= 0
    mean_cost = float((w[used] / w.sum()) @ cost(n_c[used]))
    return n_g, n_c, float(cost(n_g_eff)) / mean_cost if mean_cost > 0 else np.inf
