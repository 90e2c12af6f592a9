"""Dissimilarities (against direct numpy), k-medoids and the online selector (rom.clustering)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
from scipy.spatial.distance import cdist

from rom.clustering import (
    LocalBasisSelector,
    dissimilarity_matrix,
    euclidean_dissimilarity,
    group_indices,
    kmedoids,
    kmedoids_plusplus,
    sine_dissimilarity,
    snapshot_gram,
    subspace_dissimilarity,
)
from rom.parallel import even_split


def split(n: int, comm, uneven: bool) -> tuple[int, int]:
    """This rank's rows: an even split, or (uneven) rank 0 empty and the rest even."""
    if uneven and comm.size > 1:
        off = np.concatenate([[0], even_split(n, comm.size - 1)])
    else:
        off = even_split(n, comm.size)
    return int(off[comm.rank]), int(off[comm.rank + 1])


def direct_sines(Y: np.ndarray) -> np.ndarray:
    """sin(u, v) = |v - (u.v / u.u) u| / |v| for all pairs, straight from the vectors."""
    proj = (Y.T @ Y) / np.einsum("ij,ij->j", Y, Y)[:, None]          # (i, j): u_i.u_j / |u_i|^2
    resid = Y[:, None, :] - proj[None, :, :] * Y[:, :, None]           # v_j - proj_ij u_i
    return np.linalg.norm(resid, axis=0) / np.linalg.norm(Y, axis=0)[None, :]


def planted_cones(rng, n_rows=60, n_clusters=4, dim=3, per=20):
    """Snapshots in narrow cones (a central direction + a small part in a dim-dimensional
    subspace) with random signs and scales from 1e-2 to 1e2: each cluster spans a subspace."""
    centres = np.linalg.qr(rng.standard_normal((n_rows, n_clusters * (dim + 1))))[0]
    labels = np.repeat(np.arange(n_clusters), per)
    X = np.empty((n_rows, labels.size))
    for c in range(n_clusters):                       # loop over clusters
        idx = np.flatnonzero(labels == c)
        B = centres[:, c * (dim + 1):(c + 1) * (dim + 1)]
        coef = np.vstack([np.ones(idx.size), 0.3 * rng.standard_normal((dim, idx.size))])
        X[:, idx] = B @ coef
    X *= np.exp(rng.uniform(np.log(1e-2), np.log(1e2), labels.size)) * rng.choice([-1, 1],
                                                                                  labels.size)
    perm = rng.permutation(labels.size)
    return X[:, perm], labels[perm]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# ------------------------------------------------------------------ dissimilarities
@pytest.mark.mpi
@pytest.mark.parametrize("uneven", [False, True])
def test_sine_and_euclidean_match_numpy(comm, rng, uneven):
    N, m = 53, 11
    X = rng.standard_normal((N, m))
    w = rng.uniform(0.5, 2.0, N)
    lo, hi = split(N, comm, uneven)
    G = snapshot_gram(X[lo:hi], comm=comm, product=w[lo:hi])
    Y = np.sqrt(w)[:, None] * X                                       # M^{1/2} X
    np.testing.assert_allclose(G, Y.T @ Y, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(sine_dissimilarity(G), direct_sines(Y), atol=1e-12)
    np.testing.assert_allclose(euclidean_dissimilarity(G), cdist(Y.T, Y.T), atol=1e-11)


def test_sine_is_scale_invariant_euclidean_is_not(rng):
    X = rng.standard_normal((40, 9))
    scale = rng.uniform(0.01, 100, 9) * rng.choice([-1, 1], 9)
    G1, G2 = snapshot_gram(X), snapshot_gram(X * scale)
    np.testing.assert_allclose(sine_dissimilarity(G2), sine_dissimilarity(G1), atol=1e-13)
    assert np.abs(euclidean_dissimilarity(G2) - euclidean_dissimilarity(G1)).max() > 1.0
    D = sine_dissimilarity(G1)
    assert np.all(D >= 0) and np.all(D <= 1) and np.allclose(np.diag(D), 0) and np.allclose(D, D.T)


@pytest.mark.mpi
@pytest.mark.parametrize("metric", ["chordal", "grassmann", "projection"])
def test_subspace_distances_match_scipy_principal_angles(comm, rng, metric):
    N, sizes = 45, [3, 4, 2, 3, 5]
    X = rng.standard_normal((N, sum(sizes)))
    w = rng.uniform(0.5, 2.0, N)
    groups = np.repeat(np.arange(len(sizes)), sizes)[rng.permutation(sum(sizes))]
    lo, hi = split(N, comm, uneven=True)
    G = snapshot_gram(X[lo:hi], comm=comm, product=w[lo:hi])
    _ids, members = group_indices(groups, X.shape[1])
    D = subspace_dissimilarity(G, members, metric=metric, subspace_rtol=0.0)
    Y = np.sqrt(w)[:, None] * X
    s = len(members)
    ref = np.zeros((s, s))
    for a, b in itertools.combinations(range(s), 2):
        theta = sla.subspace_angles(Y[:, members[a]], Y[:, members[b]])   # descending
        ref[a, b] = ref[b, a] = {"chordal": np.sqrt(np.sum(np.sin(theta) ** 2)),
                                 "grassmann": np.sqrt(np.sum(theta**2)),
                                 "projection": np.sin(theta.max())}[metric]
    np.testing.assert_allclose(D, ref, atol=1e-7)      # angles from cosines: ~sqrt(eps)


def test_snapshot_level_subspace_names_and_singleton_simulations(rng):
    X = rng.standard_normal((30, 8))
    G = snapshot_gram(X)
    sine = sine_dissimilarity(G)
    for name in ("chordal", "projection"):
        np.testing.assert_allclose(dissimilarity_matrix(G, dissimilarity=name)[0], sine)
    np.testing.assert_allclose(dissimilarity_matrix(G, dissimilarity="grassmann")[0],
                               np.arcsin(sine), atol=1e-14)
    for name in ("sine", "chordal", "projection"):        # one snapshot per simulation
        D, ids, _ = dissimilarity_matrix(G, dissimilarity=name, level="simulations",
                                         groups=np.arange(8)[::-1])
        np.testing.assert_allclose(D, sine[::-1, ::-1], atol=1e-8)
        assert list(ids) == list(range(8))


def test_simulation_euclidean_is_distance_of_stacked_trajectories(rng):
    X = rng.standard_normal((20, 12))
    groups = np.array(list("aabbccaabbcc"))               # 3 simulations of 4 steps
    D, ids, members = dissimilarity_matrix(snapshot_gram(X), dissimilarity="euclidean",
                                           level="simulations", groups=groups)
    traj = np.stack([X[:, idx].ravel(order="F") for idx in members])
    np.testing.assert_allclose(D, cdist(traj, traj), atol=1e-12)
    assert list(ids) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="same number of snapshots"):
        dissimilarity_matrix(snapshot_gram(X), dissimilarity="euclidean", level="simulations",
                             groups=np.array(list("aaabbbbccccc")))


def test_dissimilarity_input_errors(rng):
    X = rng.standard_normal((10, 4))
    G = snapshot_gram(X)
    with pytest.raises(ValueError, match="unknown dissimilarity 'cosine'"):
        dissimilarity_matrix(G, dissimilarity="cosine")
    with pytest.raises(ValueError, match="unknown clustering level"):
        dissimilarity_matrix(G, level="modes")
    with pytest.raises(ValueError, match="needs groups"):
        dissimilarity_matrix(G, level="simulations")
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        dissimilarity_matrix(G, level="simulations", groups=[0, 1])
    X[:, 2] = 0.0
    with pytest.raises(ValueError, match="column 2 is zero"):
        sine_dissimilarity(snapshot_gram(X))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="global row 3, column 1"):
        snapshot_gram(X)
    with pytest.raises(ValueError, match="square"):
        sine_dissimilarity(np.ones((3, 4)))


# ------------------------------------------------------------------ k-medoids
def test_kmedoids_recovers_planted_clusters_of_snapshots(rng):
    X, truth = planted_cones(rng)
    D = sine_dissimilarity(snapshot_gram(X))
    for method in ("pam", "alternate"):
        hits = [same_partition(kmedoids(D, 4, seed=s, method=method).labels, truth)
                for s in range(5)]
        assert all(hits) if method == "pam" else any(hits)
    # Euclidean distance sees the scales (1e-2 .. 1e2), not the subspaces
    E = euclidean_dissimilarity(snapshot_gram(X))
    assert not same_partition(kmedoids(E, 4, seed=0).labels, truth)


def test_kmedoids_recovers_planted_simulations_by_grassmann_distance(rng):
    bases = [np.linalg.qr(rng.standard_normal((50, 3)))[0] for _ in range(3)]
    cols, groups, truth = [], [], []
    for sim in range(18):                                  # 6 simulations per subspace
        c = sim % 3
        B = np.linalg.qr(bases[c] + 0.05 * rng.standard_normal((50, 3)))[0]
        cols.append(B @ rng.standard_normal((3, 5)) * rng.uniform(0.1, 10))
        groups += [sim] * 5
        truth.append(c)
    G = snapshot_gram(np.hstack(cols))
    for name in ("grassmann", "chordal", "projection"):
        D, _, _ = dissimilarity_matrix(G, dissimilarity=name, level="simulations",
                                       groups=np.array(groups), subspace_rtol=1e-6)
        assert same_partition(kmedoids(D, 3, seed=1).labels, np.array(truth)), name


def test_kmedoids_is_deterministic_canonical_and_locally_optimal(rng):
    P = rng.standard_normal((25, 2))
    D = cdist(P, P)
    r1, r2 = kmedoids(D, 4, seed=3), kmedoids(D, 4, seed=3)
    assert np.array_equal(r1.labels, r2.labels) and np.array_equal(r1.medoids, r2.medoids)
    assert np.all(np.diff(r1.medoids) > 0) and r1.converged
    assert np.array_equal(r1.labels[r1.medoids], np.arange(4))
    assert np.isclose(r1.cost, D[np.arange(25), r1.medoids[r1.labels]].sum())
    for slot, cand in itertools.product(range(4), range(25)):   # no single swap improves
        trial = r1.medoids.copy()
        trial[slot] = cand
        assert D[:, trial].min(axis=1).sum() >= r1.cost - 1e-12


def test_kmedoids_pam_finds_global_optimum_on_small_separated_data(rng):
    P = np.concatenate([rng.normal(c, 0.3, (4, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    D = cdist(P, P)
    best = min(D[:, list(c)].min(axis=1).sum() for c in itertools.combinations(range(12), 3))
    assert np.isclose(kmedoids(D, 3, seed=0).cost, best)


def test_kmedoids_plusplus_with_duplicates_and_k_equal_n():
    D = np.zeros((5, 5))
    med = kmedoids_plusplus(D, 3, seed=0)
    assert len(set(med.tolist())) == 3
    r = kmedoids(np.ones((4, 4)) - np.eye(4), 4)
    assert sorted(r.medoids.tolist()) == [0, 1, 2, 3] and r.cost == 0


def test_kmedoids_input_errors():
    D = np.ones((5, 5)) - np.eye(5)
    with pytest.raises(ValueError, match="k = 6 clusters requested for 5 items"):
        kmedoids(D, 6)
    with pytest.raises(ValueError, match="1 <= k"):
        kmedoids(D, 0)
    with pytest.raises(ValueError, match="integer"):
        kmedoids(D, 2.0)
    with pytest.raises(ValueError, match="unknown k-medoids method"):
        kmedoids(D, 2, method="clara")
    bad = D.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"nan at \(1, 2\)"):
        kmedoids(bad, 2)
    with pytest.raises(ValueError, match="negative"):
        kmedoids(-D, 2)
    with pytest.raises(ValueError, match="square"):
        kmedoids(np.ones((2, 3)), 1)


# ------------------------------------------------------------------ online selection
def test_selector_nearest_medoid_ranking_and_scale_invariance():
    F = np.array([[1.0, 0, 0], [2.0, 0.1, 0], [0, 1.0, 0], [0, 3.0, 0.1], [0, 0, 0.5]])
    labels, medoids = np.array([0, 0, 1, 1, 2]), np.array([0, 2, 4])
    sel = LocalBasisSelector(F, labels, medoids, metric="sine")
    assert sel.select(np.array([100.0, 1.0, 0.0])) == 0
    assert sel.select(np.array([0.0, 0.01, 0.0])) == 1                 # tiny amplitude
    assert list(sel.ranking(np.array([0.1, 1.0, 0.5]))) == [1, 2, 0]
    np.testing.assert_array_equal(sel.select(F), labels)
    eu = LocalBasisSelector(F, labels, medoids, metric="euclidean")
    assert eu.select(np.array([0.0, 0.01, 0.0])) != 1                  # not scale invariant
    nn = LocalBasisSelector(F, labels, metric="sine", representatives="all")
    assert nn.distances(F[3]).shape == (3,) and nn.select(F[3]) == 1


def test_selector_errors():
    F, labels = np.eye(3), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="one row per clustered item"):
        LocalBasisSelector(np.eye(4), labels, [0, 1])
    with pytest.raises(ValueError, match="unknown feature metric"):
        LocalBasisSelector(F, labels, [0, 1], metric="cosine")
    with pytest.raises(ValueError, match="medoid"):
        LocalBasisSelector(F, labels)
    sel = LocalBasisSelector(F, labels, [0, 1])
    with pytest.raises(ValueError, match="have 2 entries"):
        sel.select(np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        sel.select(np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="nonzero feature"):
        sel.select(np.zeros(3))
