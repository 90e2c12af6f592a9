"""Online choice of a local basis from cheap features of a new loading.

Each training item (snapshot or simulation) comes with a small feature vector supplied by
the caller: the temperature at a few points, reduced coordinates of the loading, ... A new
query is sent to the cluster of its nearest representative; the ranking of all clusters is
the fallback order used by the error-indicator safety net (try the next-nearest local model
when the indicator exceeds its tolerance).
"""
from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_METRICS", "LocalBasisSelector", "feature_distances"]

FEATURE_METRICS = ("sine", "euclidean")


def feature_distances(F: np.ndarray, R: np.ndarray, metric: str = "sine") -> np.ndarray:
    """Distances (q, r) between query features F (q, p) and reference features R (r, p).

    ``"sine"``: sine of the angle (scale invariant); ``"euclidean"``: Euclidean distance.
    """
    if metric not in FEATURE_METRICS:
        raise ValueError(f"unknown feature metric {metric!r}; choose one of "
                         f"{', '.join(FEATURE_METRICS)}")
    inner = F @ R.T
    nf, nr = np.einsum("ij,ij->i", F, F), np.einsum("ij,ij->i", R, R)
    if metric == "euclidean":
        return np.sqrt(np.maximum(nf[:, None] + nr[None, :] - 2.0 * inner, 0.0))
    if np.any(nf <= 0) or np.any(nr <= 0):
        raise ValueError("the sine metric needs nonzero feature vectors (a zero vector has no "
                         "direction); use metric='euclidean' or other features")
    return np.sqrt(np.clip(1.0 - inner**2 / np.outer(nf, nr), 0.0, 1.0))


class LocalBasisSelector:
    """Choose a local basis (cluster) for a new loading by nearest representative.

    Parameters
    ----------
    features : (n_items, p) features of the training items (snapshots or simulations)
    labels : (n_items,) cluster of each training item, in ``[0, k)``
    medoids : (k,) item index of each cluster's medoid (used when
        ``representatives="medoids"``)
    metric : ``"sine"`` (scale invariant) or ``"euclidean"``
    representatives : ``"medoids"``: distance to a cluster = distance to its medoid's
        features; ``"all"``: distance to the nearest training item of the cluster
        (1-nearest-neighbour classification)

    Examples
    --------
    >>> sel = LocalBasisSelector(F, labels, medoids, metric="sine")   # doctest: +SKIP
    >>> c = sel.select(f_new); fallback = sel.ranking(f_new)[1:]      # doctest: +SKIP
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, medoids: np.ndarray | None = None,
                 *, metric: str = "sine", representatives: str = "medoids"):
        F = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        if F.ndim == 1:
            F = F[:, None]
        if F.ndim != 2 or F.shape[0] != labels.shape[0]:
            raise ValueError(f"features must be (n_items, p) with n_items = {labels.shape[0]} "
                             f"(one row per clustered item), got shape {F.shape}")
        if not np.all(np.isfinite(F)):
            raise ValueError("features contain NaN or inf")
        if metric not in FEATURE_METRICS:
            raise ValueError(f"unknown feature metric {metric!r}; choose one of "
                             f"{', '.join(FEATURE_METRICS)}")
        if representatives not in ("medoids", "all"):
            raise ValueError(f"representatives must be 'medoids' or 'all', got {representatives!r}")
        self.k = int(labels.max()) + 1 if labels.size else 0
        if representatives == "medoids":
            if medoids is None or len(medoids) != self.k:
                raise ValueError(f"representatives='medoids' needs the {self.k} medoid indices")
            self.reference = F[np.asarray(medoids)]
            self.reference_labels = np.arange(self.k)
        else:
            self.reference, self.reference_labels = F, labels.astype(np.int64)
        self.metric, self.representatives = metric, representatives
        self.n_features = F.shape[1]

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Distance of each query to each cluster: (k,) for one query (p,), else (q, k)."""
        F = np.asarray(features, dtype=np.float64)
        single = F.ndim == 1
        F = np.atleast_2d(F)
        if F.shape[1] != self.n_features:
            raise ValueError(f"query features have {F.shape[1]} entries, the training features "
                             f"{self.n_features}")
        if not np.all(np.isfinite(F)):
            raise ValueError("query features contain NaN or inf")
        d = feature_distances(F, self.reference, self.metric)          # (q, n_ref)
        out = np.full((F.shape[0], self.k), np.inf)
        for c in range(self.k):                                          # loop over clusters
            out[:, c] = d[:, self.reference_labels == c].min(axis=1)
        return out[0] if single else out

    def ranking(self, features: np.ndarray) -> np.ndarray:
        """Clusters ordered from nearest to farthest: (k,) for one query, else (q, k)."""
        return np.argsort(self.distances(features), axis=-1, kind="stable")

    def select(self, features: np.ndarray) -> int | np.ndarray:
        """Nearest cluster: an int for one query (p,), an array (q,) for several."""
        r = self.ranking(features)
        return int(r[0]) if r.ndim == 1 else r[:, 0]
