"""Local reduced bases: cluster the snapshots (or simulations), one POD per cluster.

:func:`build_local_bases` is what the offline stage calls: Gram matrix (once, or given),
dissimilarity matrix, k-medoids, optional overlap, one :func:`rom.linalg.pod` per
cluster, and the training projection errors. :class:`LocalBases` holds the result and
stores it in an HDF5 group independently of the number of ranks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

from ..linalg.distributed import as_product
from ..linalg.distributed import gram as dgram
from ..linalg.pod import PODResult, pod
from ..parallel import as_comm
from .dissimilarity import check_gram, dissimilarity_matrix, snapshot_gram
from .kmedoids import kmedoids
from .selection import LocalBasisSelector

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "LocalBases",
    "build_local_bases",
    "cluster_columns",
    "projection_errors",
]

SCHEMA = "rom.local_bases"
SCHEMA_VERSION = 1


@dataclass
class LocalBases:
    """Clusters of snapshots or simulations and their local POD bases.

    "Items" are what was clustered: snapshot columns (``level="snapshots"``) or
    simulations (``level="simulations"``, ``group_ids[i]`` is the id of item i).

    Attributes
    ----------
    labels : (n_items,) cluster of each item
    medoids : (k,) item index of each cluster's medoid (ascending)
    bases : k :class:`rom.linalg.PODResult`, modes as local row blocks (n_local, n_c)
    dissimilarity : (n_items, n_items) the dissimilarity matrix that was clustered
    columns : k arrays of the snapshot columns of each POD (members + overlap), ascending
    column_labels : (m,) cluster of each snapshot column (without overlap)
    training_errors : (m,) relative projection error of each column on its cluster's basis
    metric, level : dissimilarity name and clustering level
    groups : (m,) simulation id of each column, or None
    group_ids : (n_items,) simulation ids (simulation level), or None
    cost : k-medoids cost (sum of dissimilarities to the medoids)
    n_rows : global number of rows
    params : the remaining parameters (rtol, max_modes, overlap, seed, ...)
    """

    labels: np.ndarray
    medoids: np.ndarray
    bases: list[PODResult]
    dissimilarity: np.ndarray
    columns: list[np.ndarray]
    column_labels: np.ndarray
    training_errors: np.ndarray
    metric: str
    level: str
    groups: np.ndarray | None
    group_ids: np.ndarray | None
    cost: float
    n_rows: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.medoids.size)

    @property
    def sizes(self) -> np.ndarray:
        """(k,) number of items per cluster (without overlap)."""
        return np.bincount(self.labels, minlength=self.k)

    @property
    def n_modes(self) -> np.ndarray:
        """(k,) number of modes of each local basis."""
        return np.array([b.n_modes for b in self.bases], dtype=np.int64)

    def members(self, c: int) -> np.ndarray:
        """Item indices of cluster ``c`` (without overlap)."""
        return np.flatnonzero(self.labels == c)

    def selector(self, features: np.ndarray, *, metric: str = "sine",
                 representatives: str = "medoids") -> LocalBasisSelector:
        """A :class:`LocalBasisSelector` from the features (n_items, p) of the training items."""
        return LocalBasisSelector(features, self.labels, self.medoids, metric=metric,
                                  representatives=representatives)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One dict per cluster: cluster, medoid, items, columns, overlap, modes, energy,
        err_mean, err_max (training projection errors of the cluster's own columns)."""
        rows = []
        for c, b in enumerate(self.bases):
            own = np.flatnonzero(self.column_labels == c)
            e = self.training_errors[own]
            med = int(self.medoids[c])
            rows.append({
                "cluster": c,
                "medoid": med if self.group_ids is None else _py(self.group_ids[med]),
                "items": int(np.count_nonzero(self.labels == c)),
                "columns": int(self.columns[c].size), "overlap": int(self.columns[c].size - own.size),
                "modes": b.n_modes, "energy": float(b.energy),
                "err_mean": float(e.mean()) if e.size else 0.0,
                "err_max": float(e.max()) if e.size else 0.0,
            })
        return rows

    def projection_errors(self, X: np.ndarray, clusters: np.ndarray, *,
                          comm: MPI.Comm | None = None, product: Any = None) -> np.ndarray:
        """Relative projection errors (q,) of snapshots X (n_local, q) on the bases ``clusters``
        (q,) (collective; see :func:`projection_errors`)."""
        return projection_errors(X, clusters, [b.modes for b in self.bases], comm=comm,
                                 product=product)

    def write(self, group, comm: MPI.Comm | None = None) -> None:
        """Store everything in an HDF5 group (collective; ``group`` is used on rank 0 only).

        Modes are gathered to rank 0 and written in GLOBAL row order, so the stored data do
        not depend on the number of ranks. Layout: attrs ``schema``, ``schema_version``,
        ``k``, ``metric``, ``level``, ``cost``, ``n_rows`` and ``params``; datasets
        ``labels``, ``medoids``, ``dissimilarity``, ``column_labels``, ``training_errors``,
        ``groups``/``group_ids`` (if any); one subgroup ``cluster_<c>`` per cluster with
        ``columns``, ``modes`` (n_rows, n_c), ``singular_values``, ``all_singular_values``,
        ``right_vectors`` and the POD scalars as attributes.
        """
        from .io import write_local_bases
        write_local_bases(self, group, as_comm(comm))

    @classmethod
    def read(cls, group, comm: MPI.Comm | None = None,
             rows: tuple[int, int] | None = None) -> LocalBases:
        """Read from an HDF5 group (every rank passes its open group); each rank gets the
        modes' rows ``rows`` (default: an even split of the global rows)."""
        from .io import read_local_bases
        return read_local_bases(cls, group, as_comm(comm), rows)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def projection_errors(X: np.ndarray, clusters: np.ndarray, modes: list[np.ndarray], *,
                      comm: MPI.Comm | None = None, product: Any = None) -> np.ndarray:
    """Relative errors ``|x - P_c x|_M / |x|_M`` of each column on the basis of its cluster.

    Parameters
    ----------
    X : (n_local, q) local rows of the snapshots
    clusters : (q,) basis index of each column
    modes : list of M-orthonormal local row blocks (n_local, n_c)
    comm, product : communicator and inner product (as in :func:`rom.linalg.pod`)

    Returns
    -------
    (q,) relative errors, identical on every rank (one ``Allreduce`` per basis used).
    """
    comm = as_comm(comm)
    clusters = np.asarray(clusters)
    if clusters.shape != (X.shape[1],):
        raise ValueError(f"clusters must give one basis per column: shape ({X.shape[1]},) "
                         f"expected, got {clusters.shape}")
    M = as_product(product, X.shape[0], comm)
    out = np.zeros(X.shape[1])
    for c in np.unique(clusters):                        # loop over clusters
        idx = np.flatnonzero(clusters == c)
        Y = np.take(X, idx, axis=1)
        R = Y - modes[int(c)] @ dgram(modes[int(c)], M.apply(Y), comm)
        num = np.einsum("ij,ij->j", R, M.apply(R))
        den = np.einsum("ij,ij->j", Y, M.apply(Y))
        nd = np.ascontiguousarray(np.concatenate([num, den]))
        if comm.size > 1:
            comm.Allreduce(MPI.IN_PLACE, nd, op=MPI.SUM)
        num, den = nd[:idx.size], nd[idx.size:]
        out[idx] = np.sqrt(np.maximum(num, 0.0) / np.where(den > 0, den, 1.0))
    return out


def _training_errors(X: np.ndarray, G: np.ndarray, labels: np.ndarray, bases: list[PODResult],
                     M: Any, comm: MPI.Comm) -> np.ndarray:
    """Relative projection error (m,) of each column on its cluster's basis, from the Gram
    diagonal and ``Phi_c^T M X`` (one Allreduce of n_c x m per cluster, no column gather).
    Absolute accuracy about sqrt(eps) ~ 1.5e-8 (``|x|^2 - |P x|^2`` cancels)."""
    MX = M.apply(X)
    norms2 = np.diag(G)
    out = np.zeros(X.shape[1])
    for c, b in enumerate(bases):                          # loop over clusters
        own = labels == c
        coef = dgram(b.modes, MX, comm)[:, own]
        resid = np.maximum(norms2[own] - np.einsum("ij,ij->j", coef, coef), 0.0)
        out[own] = np.sqrt(resid / np.where(norms2[own] > 0, norms2[own], 1.0))
    return out


def cluster_columns(labels: np.ndarray, D: np.ndarray, members: list[np.ndarray],
                    overlap: float = 0.0) -> list[np.ndarray]:
    """Snapshot columns of each cluster, with overlap.

    Parameters
    ----------
    labels : (n_items,) cluster of each item
    D : (n_items, n_items) dissimilarities
    members : n_items arrays of the snapshot columns of each item
    overlap : an ``int`` n >= 0 adds the n items of other clusters nearest to the cluster;
        a ``float`` f >= 0 adds ``ceil(f * cluster size)`` of them. The distance of an item
        to a cluster is its smallest dissimilarity to a member (ties: lowest index).

    Returns
    -------
    k arrays of column indices, ascending.
    """
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float, np.integer, np.floating)) \
            or not overlap >= 0:
        raise ValueError(f"overlap must be a count (int >= 0) or a fraction (float >= 0), "
                         f"got {overlap!r}")
    k = int(labels.max()) + 1
    out = []
    for c in range(k):                                   # loop over clusters
        inside = np.flatnonzero(labels == c)
        n_extra = int(overlap) if isinstance(overlap, (int, np.integer)) \
            else math.ceil(float(overlap) * inside.size)
        outside = np.flatnonzero(labels != c)
        n_extra = min(n_extra, outside.size)
        items = inside
        if n_extra:
            dist = D[np.ix_(outside, inside)].min(axis=1)
            items = np.concatenate([inside, outside[np.argsort(dist, kind="stable")[:n_extra]]])
        out.append(np.sort(np.concatenate([members[i] for i in items])))
    return out


def build_local_bases(X_local: np.ndarray, *, comm: MPI.Comm | None = None, k: int,
                      dissimilarity: str = "sine", level: str = "snapshots",
                      groups: Any = None, rtol: float = 1e-4, max_modes: int | None = None,
                      product: Any = None, overlap: float = 0.0, seed: int = 0,
                      method: str = "snapshots", kmedoids_method: str = "pam",
                      gram: np.ndarray | None = None, subspace_rtol: float = 1e-3,
                      subspace_dim: int | None = None) -> LocalBases:
    """Cluster snapshots (or simulations) and compute one POD per cluster (collective).

    Parameters
    ----------
    X_local : (n_local, m) this rank's rows of the snapshot matrix
    comm : communicator, ``None`` for serial
    k : number of clusters, ``1 <= k <= n_items``
    dissimilarity : ``"sine"`` (default), ``"euclidean"``, ``"grassmann"``, ``"chordal"``,
        ``"projection"`` (see :mod:`rom.clustering.dissimilarity`)
    level : ``"snapshots"`` or ``"simulations"`` (then ``groups`` is required)
    groups : (m,) simulation id of each column (e.g. the loading column of the snapshot table)
    rtol, max_modes, method : POD tolerance, cap and method of each local basis
    product : inner product (``None`` or diagonal weights (n_local,) of the local rows, ...)
    overlap : neighbours added to each cluster's POD: a count (int) or a fraction (float)
    seed : k-medoids++ seed
    kmedoids_method : ``"pam"`` or ``"alternate"``
    gram : (m, m) precomputed ``X^T M X`` (e.g. shared with the global POD); computed here
        with one ``Allreduce`` otherwise
    subspace_rtol, subspace_dim : truncation of each simulation's subspace (simulation level)

    Returns
    -------
    LocalBases

    Raises
    ------
    ValueError
        On every rank: NaN/inf in X, k out of range, unknown dissimilarity or level,
        missing or wrong ``groups``, a gram of the wrong shape, a zero snapshot with an
        angle-based dissimilarity.
    """
    comm = as_comm(comm)
    X_local = np.asarray(X_local)
    if X_local.ndim != 2:
        raise ValueError(f"X_local must be a 2-D (n_local, m) array, got shape {X_local.shape}")
    m = X_local.shape[1]
    M = as_product(product, X_local.shape[0], comm)
    if gram is None:
        G = snapshot_gram(X_local, comm=comm, product=M)
    else:
        G = check_gram(gram)
        if G.shape != (m, m):
            raise ValueError(f"gram has shape {G.shape}; expected ({m}, {m}) for {m} snapshots")
    D, ids, members = dissimilarity_matrix(G, dissimilarity=dissimilarity, level=level,
                                           groups=groups, subspace_rtol=subspace_rtol,
                                           subspace_dim=subspace_dim)
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and not 1 <= k <= D.shape[0]:
        raise ValueError(f"k = {k} clusters requested for {D.shape[0]} items ({level}): "
                         f"need 1 <= k <= {D.shape[0]}")
    km = kmedoids(D, k, seed=seed, method=kmedoids_method)
    # D is replicated; rank 0's answer is broadcast so that all ranks agree bit for bit.
    labels, medoids, cost = comm.bcast((km.labels, km.medoids, km.cost), root=0) \
        if comm.size > 1 else (km.labels, km.medoids, km.cost)
    columns = cluster_columns(labels, D, members, overlap)
    column_labels = np.empty(m, dtype=np.int64)
    column_labels[np.concatenate(members)] = np.repeat(labels, [c.size for c in members])
    bases = [pod(np.take(X_local, cols, axis=1), comm=comm, method=method, rtol=rtol,
                 max_modes=max_modes, product=M) for cols in columns]  # loop over clusters
    errors = _training_errors(X_local, G, column_labels, bases, M, comm)
    n_rows = int(comm.allreduce(X_local.shape[0]) if comm.size > 1 else X_local.shape[0])
    params = {"k": int(k), "rtol": float(rtol),
              "max_modes": None if max_modes is None else int(max_modes),
              "overlap": int(overlap) if isinstance(overlap, (int, np.integer)) else float(overlap),
              "seed": int(seed), "method": method, "kmedoids_method": kmedoids_method,
              "subspace_rtol": float(subspace_rtol),
              "subspace_dim": None if subspace_dim is None else int(subspace_dim),
              "kmedoids_iterations": int(km.n_iter), "kmedoids_converged": bool(km.converged)}
    return LocalBases(labels=labels, medoids=medoids, bases=bases, dissimilarity=D,
                      columns=columns, column_labels=column_labels, training_errors=errors,
                      metric=dissimilarity, level=level,
                      groups=None if groups is None else np.asarray(groups),
                      group_ids=ids, cost=float(cost), n_rows=n_rows, params=params)

