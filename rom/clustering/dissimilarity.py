"""Dissimilarities between snapshots and between simulations, from the Gram matrix only.

Everything here works on the snapshot Gram matrix ``G = X^T M X`` (m x m, replicated on
every rank), computed once by :func:`snapshot_gram` with one ``Allreduce``; no snapshot
leaves its rank. The same ``G`` is what the method-of-snapshots POD needs, so pass it
around instead of recomputing it.

Snapshot level (items = columns of X):

- ``"sine"``: ``d(u, v) = sqrt(1 - <u,v>^2 / (|u|^2 |v|^2))``, the sine of the angle,
  invariant to scaling of either snapshot (sign included);
- ``"euclidean"``: ``|u - v|`` in the product ``M`` (the baseline);
- ``"grassmann"``: the angle ``arcsin(sine)`` in ``[0, pi/2]`` (geodesic distance of the
  lines spanned by u and v); ``"chordal"`` and ``"projection"`` equal the sine there.

Simulation level (items = groups of columns, one group per simulation): each simulation
``a`` gets an M-orthonormal basis ``Q_a = X_a C_a`` of its snapshots' span from
``eigh`` of its diagonal Gram block (``C_a = V_r L_r^{-1/2}``, truncated at
``subspace_rtol`` like a POD); the cosines of the principal angles between simulations
``a`` and ``b`` are the singular values of ``Q_a^T M Q_b = C_a^T G_ab C_b``. With the
``r = min(r_a, r_b)`` angles ``theta_i``:

- ``"chordal"``: ``sqrt(sum_i sin^2 theta_i)``;
- ``"grassmann"``: ``sqrt(sum_i theta_i^2)`` (geodesic distance on the Grassmannian);
- ``"projection"`` (alias ``"sine"``): ``sin theta_max = ||P_a - P_b||_2`` for equal
  dimensions; for one snapshot per simulation it is the snapshot sine;
- ``"euclidean"``: ``sqrt(sum_t |u_a(t) - u_b(t)|^2)``, the simulations as long vectors
  (needs the same number of snapshots in every simulation, matched by order).

Accuracy: sines and angles come from ``1 - cos^2``; values below about ``1e-8`` are
round-off.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpi4py import MPI

from ..linalg.distributed import as_float_array, as_product, raise_collectively
from ..parallel import as_comm, row_offsets

__all__ = [
    "LEVELS",
    "SIMULATION_DISSIMILARITIES",
    "SNAPSHOT_DISSIMILARITIES",
    "check_gram",
    "dissimilarity_matrix",
    "euclidean_dissimilarity",
    "group_indices",
    "principal_cosines",
    "simulation_euclidean",
    "sine_dissimilarity",
    "snapshot_gram",
    "subspace_coefficients",
    "subspace_dissimilarity",
]

SNAPSHOT_DISSIMILARITIES = ("sine", "euclidean", "grassmann", "chordal", "projection")
SIMULATION_DISSIMILARITIES = ("sine", "euclidean", "grassmann", "chordal", "projection")
LEVELS = ("snapshots", "simulations")


def snapshot_gram(X: np.ndarray, *, comm: MPI.Comm | None = None,
                  product: Any = None) -> np.ndarray:
    """Gram matrix ``X^T M X`` of a row-distributed snapshot matrix (collective).

    Parameters
    ----------
    X : (n_local, m) this rank's rows of the snapshots (columns)
    comm : communicator, ``None`` for serial
    product : inner product as in :func:`rom.linalg.pod` (``None``, diagonal weights
        ``(n_local,)`` of the local rows, sparse or callable)

    Returns
    -------
    (m, m) symmetric array, identical on every rank. One ``Allreduce`` of m^2 numbers for
    the Euclidean and diagonal products.

    Raises
    ------
    ValueError
        On every rank if X is not 2-D or contains NaN/inf (naming the global row and column).
    """
    comm = as_comm(comm)
    error = None
    try:
        X = as_float_array(X, "snapshots X")
    except ValueError as exc:
        error = str(exc)
    raise_collectively(error, comm)
    G = as_product(product, X.shape[0], comm).gram(X)
    if not np.all(np.isfinite(np.diag(G))):            # same decision on every rank
        offset = int(row_offsets(X.shape[0], comm)[comm.rank])
        bad = np.argwhere(~np.isfinite(X))
        if bad.size:
            i, j = (int(v) for v in bad[0])
            error = f"snapshots contain {X[i, j]} at global row {offset + i}, column {j}"
        raise_collectively(error, comm)
        raise ValueError("the Gram matrix of the snapshots is not finite (overflow?)")
    return np.ascontiguousarray(0.5 * (G + G.T))


def check_gram(gram: Any, name: str = "gram") -> np.ndarray:
    """Validate a Gram matrix: square, finite, nonnegative diagonal; returns float64 array."""
    G = np.asarray(gram, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (m, m) matrix, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        i, j = (int(v) for v in np.argwhere(~np.isfinite(G))[0])
        raise ValueError(f"{name} contains {G[i, j]} at ({i}, {j}): NaN or inf in the snapshots?")
    if G.size and np.any(np.diag(G) < 0):
        raise ValueError(f"{name} has a negative diagonal entry: not a Gram matrix")
    return G


def _norms(G: np.ndarray, what: str) -> np.ndarray:
    d = np.diag(G).copy()
    scale = d.max() if d.size else 0.0
    zero = np.flatnonzero(d <= 1e-300 + 1e-28 * scale)
    if zero.size:
        raise ValueError(f"{what}: snapshot column {int(zero[0])} is zero (no angle is defined); "
                         f"{zero.size} zero column(s) in all")
    return d


def sine_dissimilarity(gram: np.ndarray) -> np.ndarray:
    """Pairwise sines of the angles between snapshots.

    Parameters
    ----------
    gram : (m, m) Gram matrix ``X^T M X``

    Returns
    -------
    (m, m) symmetric array with entries in ``[0, 1]`` and zero diagonal.
    """
    G = check_gram(gram)
    d = _norms(G, "sine dissimilarity")
    cos2 = G * G / np.outer(d, d)
    D = np.sqrt(np.clip(1.0 - cos2, 0.0, 1.0))
    np.fill_diagonal(D, 0.0)
    return 0.5 * (D + D.T)


def euclidean_dissimilarity(gram: np.ndarray) -> np.ndarray:
    """Pairwise distances ``|u_i - u_j|_M = sqrt(G_ii + G_jj - 2 G_ij)``; (m, m) array."""
    G = check_gram(gram)
    d = np.diag(G)
    D2 = d[:, None] + d[None, :] - 2.0 * G
    D = np.sqrt(np.maximum(D2, 0.0))
    np.fill_diagonal(D, 0.0)
    return 0.5 * (D + D.T)


def group_indices(groups: Sequence[Any] | np.ndarray, m: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Split columns by simulation id.

    Parameters
    ----------
    groups : (m,) simulation id of each column (ints or strings)
    m : number of columns

    Returns
    -------
    ids : (s,) sorted unique simulation ids (the order of the simulations)
    members : list of s arrays of column indices, in column order
    """
    g = np.asarray(groups)
    if g.shape != (m,):
        raise ValueError(f"groups must have one simulation id per snapshot column: shape ({m},) "
                         f"expected, got {g.shape}")
    ids, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(ids.size + 1))
    return ids, [order[bounds[i]:bounds[i + 1]] for i in range(ids.size)]


def subspace_coefficients(gram: np.ndarray, members: list[np.ndarray], *,
                          subspace_rtol: float = 1e-3,
                          subspace_dim: int | None = None) -> list[np.ndarray]:
    """Coefficients ``C_a`` (m_a, r_a) with ``Q_a = X[:, members[a]] @ C_a`` M-orthonormal.

    ``r_a`` is the smallest rank whose discarded energy is ``<= subspace_rtol^2`` times the
    simulation's energy (a POD of the simulation), at most ``subspace_dim``, and never counts
    eigenvalues below ``m_a * eps * lambda_max`` (round-off).
    """
    G = check_gram(gram)
    if not 0 <= subspace_rtol < 1:
        raise ValueError(f"subspace_rtol must satisfy 0 <= subspace_rtol < 1, got {subspace_rtol}")
    if subspace_dim is not None and subspace_dim < 1:
        raise ValueError(f"subspace_dim must be None or >= 1, got {subspace_dim}")
    out = []
    for a, idx in enumerate(members):
        lam, V = np.linalg.eigh(G[np.ix_(idx, idx)])
        lam, V = lam[::-1], V[:, ::-1]
        if lam.size == 0 or lam[0] <= 0:
            raise ValueError(f"simulation {a} has only zero snapshots: no subspace is defined")
        tail = np.concatenate([np.cumsum(np.maximum(lam, 0)[::-1])[::-1], [0.0]])
        r = int(np.argmax(tail <= subspace_rtol**2 * tail[0]))
        r = max(1, min(r, int(np.count_nonzero(lam > idx.size * np.finfo(float).eps * lam[0]))))
        if subspace_dim is not None:
            r = min(r, subspace_dim)
        out.append(V[:, :r] / np.sqrt(lam[:r]))
    return out


def principal_cosines(gram: np.ndarray, members: list[np.ndarray],
                      coefficients: list[np.ndarray], a: int, b: int) -> np.ndarray:
    """Cosines (min(r_a, r_b),) of the principal angles between simulations a and b, descending."""
    M = coefficients[a].T @ gram[np.ix_(members[a], members[b])] @ coefficients[b]
    return np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)


def _from_cosines(c: np.ndarray, metric: str) -> float:
    s2 = np.clip(1.0 - c * c, 0.0, 1.0)
    if metric == "chordal":
        return float(np.sqrt(s2.sum()))
    if metric == "grassmann":
        return float(np.sqrt(np.sum(np.arccos(c) ** 2)))
    return float(np.sqrt(s2.max())) if s2.size else 0.0            # projection / sine


def subspace_dissimilarity(gram: np.ndarray, members: list[np.ndarray], *,
                           metric: str = "grassmann", subspace_rtol: float = 1e-3,
                           subspace_dim: int | None = None) -> np.ndarray:
    """Pairwise distances between the subspaces spanned by groups of snapshots.

    Parameters
    ----------
    gram : (m, m) Gram matrix
    members : s arrays of column indices (see :func:`group_indices`)
    metric : ``"chordal"``, ``"grassmann"``, ``"projection"`` or ``"sine"`` (= projection)
    subspace_rtol, subspace_dim : truncation of each simulation's subspace
        (see :func:`subspace_coefficients`)

    Returns
    -------
    (s, s) symmetric array, zero diagonal.
    """
    if metric not in ("chordal", "grassmann", "projection", "sine"):
        raise ValueError(f"unknown subspace metric {metric!r}; use chordal, grassmann, projection")
    G = check_gram(gram)
    C = subspace_coefficients(G, members, subspace_rtol=subspace_rtol, subspace_dim=subspace_dim)
    s = len(members)
    D = np.zeros((s, s))
    for a in range(s):                       # loop over pairs of simulations (small)
        for b in range(a + 1, s):
            D[a, b] = D[b, a] = _from_cosines(principal_cosines(G, members, C, a, b), metric)
    return D


def simulation_euclidean(gram: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    """``sqrt(sum_t |u_a(t) - u_b(t)|^2)`` between simulations of equal length; (s, s)."""
    sizes = {len(idx) for idx in members}
    if len(sizes) != 1:
        raise ValueError("the Euclidean dissimilarity between simulations needs the same number "
                         f"of snapshots in every simulation; got sizes {sorted(sizes)}")
    G = check_gram(gram)
    J = np.stack(members)                                    # (s, T)
    d = np.diag(G)[J].sum(axis=1)                            # |u_a|^2 summed over time
    cross = np.einsum("abt->ab", G[J[:, None, :], J[None, :, :]])
    D = np.sqrt(np.maximum(d[:, None] + d[None, :] - 2.0 * cross, 0.0))
    np.fill_diagonal(D, 0.0)
    return 0.5 * (D + D.T)


def dissimilarity_matrix(gram: np.ndarray, *, dissimilarity: str = "sine",
                         level: str = "snapshots", groups: Any = None,
                         subspace_rtol: float = 1e-3,
                         subspace_dim: int | None = None) -> tuple[np.ndarray, np.ndarray | None,
                                                                   list[np.ndarray]]:
    """Dissimilarity matrix between snapshots or simulations, from the Gram matrix.

    Parameters
    ----------
    gram : (m, m) Gram matrix ``X^T M X`` (see :func:`snapshot_gram`)
    dissimilarity : one of :data:`SNAPSHOT_DISSIMILARITIES`
    level : ``"snapshots"`` (items = columns) or ``"simulations"`` (items = groups)
    groups : (m,) simulation id per column; required for ``level="simulations"``
    subspace_rtol, subspace_dim : subspace truncation of each simulation (simulation level)

    Returns
    -------
    D : (n_items, n_items) dissimilarities
    ids : (s,) simulation ids (simulation level) or ``None``
    members : list of n_items arrays of column indices (one column each at snapshot level)
    """
    G = check_gram(gram)
    m = G.shape[0]
    if level not in LEVELS:
        raise ValueError(f"unknown clustering level {level!r}; choose one of {', '.join(LEVELS)}")
    names = SNAPSHOT_DISSIMILARITIES if level == "snapshots" else SIMULATION_DISSIMILARITIES
    if dissimilarity not in names:
        raise ValueError(f"unknown dissimilarity {dissimilarity!r} at level {level!r}; "
                         f"choose one of {', '.join(names)}")
    if level == "snapshots":
        members = [np.array([j]) for j in range(m)]
        if dissimilarity == "euclidean":
            return euclidean_dissimilarity(G), None, members
        D = sine_dissimilarity(G)
        if dissimilarity == "grassmann":
            D = np.arcsin(np.clip(D, 0.0, 1.0))
        return D, None, members
    if groups is None:
        raise ValueError("level='simulations' needs groups: the simulation id of every column")
    ids, members = group_indices(groups, m)
    if dissimilarity == "euclidean":
        return simulation_euclidean(G, members), ids, members
    return subspace_dissimilarity(G, members, metric=dissimilarity, subspace_rtol=subspace_rtol,
                                  subspace_dim=subspace_dim), ids, members
