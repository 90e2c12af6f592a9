"""k-medoids clustering from a precomputed dissimilarity matrix.

Initialization: k-medoids++ (the k-means++ rule on dissimilarities): the first medoid is
drawn uniformly, each next one with probability proportional to the squared
dissimilarity to the nearest medoid chosen so far; ``numpy.random.default_rng(seed)``
makes it deterministic.

Optimization (``method=``):

- ``"pam"`` (default): PAM swap by steepest descent. At every iteration the cost of
  every (medoid, non-medoid) swap is evaluated (vectorized over candidates, a loop over
  the k medoid slots: O(k m^2) per iteration) and the best swap is made if it lowers the
  total cost; stops when no swap improves it.
- ``"alternate"``: Voronoi iteration (assign each item to its nearest medoid, then move
  each medoid to the member minimizing the sum of dissimilarities in its cluster) until
  the medoids no longer change. Cheaper, may stop at a worse local minimum.

Canonical output: medoids sorted by item index, cluster ``c`` is the one of medoid
``medoids[c]``, ties broken toward the lowest index. The dissimilarity matrix is
replicated on every rank, so the result does not depend on the number of ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "KMedoidsResult", "assign", "kmedoids", "kmedoids_plusplus"]

METHODS = ("pam", "alternate")
_CHUNK = 1 << 22                  # entries of a candidate-cost block (32 MiB of float64)


@dataclass
class KMedoidsResult:
    """Result of :func:`kmedoids`.

    Attributes
    ----------
    labels : (n,) cluster index of each item, in ``[0, k)``
    medoids : (k,) item index of each cluster's medoid, ascending
    cost : sum over items of the dissimilarity to their medoid
    n_iter : swaps (pam) or Voronoi iterations (alternate) performed
    converged : True if no improving move was left
    """

    labels: np.ndarray
    medoids: np.ndarray
    cost: float
    n_iter: int
    converged: bool

    @property
    def sizes(self) -> np.ndarray:
        """(k,) number of items per cluster."""
        return np.bincount(self.labels, minlength=self.medoids.size)


def _check(D: np.ndarray, k: int) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"dissimilarity matrix must be square (n, n), got shape {D.shape}")
    n = D.shape[0]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise ValueError(f"k must be an integer, got {k!r}")  # noqa: TRY004 (user input)
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} clusters requested for {n} items: need 1 <= k <= {n}")
    if not np.all(np.isfinite(D)):
        i, j = (int(v) for v in np.argwhere(~np.isfinite(D))[0])
        raise ValueError(f"dissimilarity matrix contains {D[i, j]} at ({i}, {j})")
    if np.any(D < 0):
        raise ValueError("dissimilarity matrix has negative entries")
    return D


def assign(D: np.ndarray, medoids: np.ndarray) -> np.ndarray:
    """Labels (n,): index in ``medoids`` of each item's nearest medoid (lowest on ties)."""
    labels = np.argmin(D[:, medoids], axis=1)
    labels[medoids] = np.arange(len(medoids))          # a medoid belongs to its own cluster
    return labels


def kmedoids_plusplus(D: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-medoids++ seeding: (k,) distinct item indices, deterministic for a given seed."""
    D = _check(D, k)
    rng = np.random.default_rng(seed)
    n = D.shape[0]
    medoids = [int(rng.integers(n))]
    nearest = D[:, medoids[0]].copy()
    for _ in range(1, k):                               # loop over clusters
        w = nearest ** 2
        w[medoids] = 0.0
        if w.sum() > 0:
            nxt = int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right"))
            nxt = min(nxt, n - 1)
            while w[nxt] == 0:                          # guard the cumsum's round-off edge
                nxt -= 1
        else:                                           # fewer distinct items than k
            free = np.setdiff1d(np.arange(n), medoids)
            nxt = int(free[0])
        medoids.append(nxt)
        nearest = np.minimum(nearest, D[:, nxt])
    return np.array(medoids, dtype=np.int64)


def _best_swap(D: np.ndarray, medoids: np.ndarray) -> tuple[float, int, int]:
    """Lowest total cost over all single swaps: (cost, slot, candidate)."""
    n, k = D.shape[0], medoids.size
    Dm = D[:, medoids]                                  # (n, k)
    best = (np.inf, -1, -1)
    chunk = max(1, _CHUNK // max(n, 1))
    for slot in range(k):                               # loop over medoid slots
        others = np.delete(Dm, slot, axis=1)
        d_other = others.min(axis=1) if k > 1 else np.full(n, np.inf)
        for j0 in range(0, n, chunk):                   # candidates in memory-bounded blocks
            block = np.minimum(d_other[:, None], D[:, j0:j0 + chunk]).sum(axis=0)
            j = int(np.argmin(block))
            if block[j] < best[0]:
                best = (float(block[j]), slot, j0 + j)
    return best


def kmedoids(D: np.ndarray, k: int, *, seed: int = 0, method: str = "pam",
             max_iter: int = 1000, init: np.ndarray | None = None) -> KMedoidsResult:
    """Cluster n items into k clusters around medoids, from a dissimilarity matrix.

    Parameters
    ----------
    D : (n, n) dissimilarities (symmetric, nonnegative, zero diagonal)
    k : number of clusters, ``1 <= k <= n``
    seed : seed of the k-medoids++ initialization
    method : ``"pam"`` (best-swap descent) or ``"alternate"`` (Voronoi iteration)
    max_iter : maximum number of swaps / iterations
    init : (k,) initial medoids instead of k-medoids++

    Returns
    -------
    KMedoidsResult
        ``labels`` (n,), ``medoids`` (k,) ascending, ``cost``, ``n_iter``, ``converged``.

    Raises
    ------
    ValueError
        ``k`` out of range, ``D`` not square, with NaN/inf or negative entries, unknown method.
    """
    D = _check(D, k)
    if method not in METHODS:
        raise ValueError(f"unknown k-medoids method {method!r}; choose one of {', '.join(METHODS)}")
    n = D.shape[0]
    if init is not None:
        medoids = np.asarray(init, dtype=np.int64).copy()
        if medoids.shape != (k,) or len(set(medoids.tolist())) != k or medoids.min() < 0 \
                or medoids.max() >= n:
            raise ValueError(f"init must be {k} distinct item indices in [0, {n})")
    else:
        medoids = kmedoids_plusplus(D, k, seed)
    cost = float(D[:, medoids].min(axis=1).sum())
    converged, it = False, 0
    while it < max_iter:
        if method == "pam":
            new_cost, slot, cand = _best_swap(D, medoids)
            if not new_cost < cost - 1e-12 * max(abs(cost), 1e-300):
                converged = True
                break
            medoids[slot] = cand
            cost = new_cost
        else:
            labels = assign(D, medoids)
            new = medoids.copy()
            for c in range(k):                          # loop over clusters
                idx = np.flatnonzero(labels == c)
                within = D[np.ix_(idx, idx)].sum(axis=0)
                best = int(idx[np.argmin(within)])
                if within[np.argmin(within)] < within[np.flatnonzero(idx == medoids[c])[0]]:
                    new[c] = best
            if np.array_equal(new, medoids):
                converged = True
                break
            medoids = new
        it += 1
    medoids = np.sort(medoids)
    labels = assign(D, medoids)
    cost = float(D[np.arange(n), medoids[labels]].sum())
    return KMedoidsResult(labels=labels, medoids=medoids, cost=cost, n_iter=it,
                          converged=converged)
