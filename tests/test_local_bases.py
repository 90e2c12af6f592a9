"""Local bases (rom.clustering): rank-count independence, POD tolerance, overlap, HDF5 round
trip, the a priori criterion against the measured outcome, and input errors."""
from __future__ import annotations

import importlib

import h5py
import numpy as np
import pytest

import rom.linalg.distributed as dist
from rom.clustering import (
    LocalBases,
    OnlineCost,
    build_local_bases,
    efficiency_criterion,
    format_summary,
    measured_speedup,
    plot_local_bases,
    read_local_bases_file,
    scan_k,
    snapshot_gram,
    synthetic_regimes,
    write_local_bases_file,
)
from rom.linalg import gather_rows, pod
from rom.parallel import even_split

podmod = importlib.import_module("rom.linalg.pod")   # the module, not the function


def split(n: int, comm, uneven: bool) -> tuple[int, int]:
    if uneven and comm.size > 1:                 # rank 0 empty, the others even
        off = np.concatenate([[0], even_split(n, comm.size - 1)])
    else:
        off = even_split(n, comm.size)
    return int(off[comm.rank]), int(off[comm.rank + 1])


@pytest.fixture(scope="module")
def problem():
    return synthetic_regimes(24, 4, n_points=120, seed=0)


def weights(n: int) -> np.ndarray:
    return 1.0 + 0.5 * np.sin(np.arange(n))      # a diagonal inner product (lumped mass)


@pytest.mark.mpi
@pytest.mark.parametrize("uneven", [False, True])
@pytest.mark.parametrize("level,name", [("snapshots", "sine"), ("snapshots", "euclidean"),
                                        ("simulations", "grassmann"),
                                        ("simulations", "euclidean")])
def test_same_clusters_and_bases_at_any_rank_count(comm, problem, uneven, level, name):
    X, w = problem.X, weights(problem.X.shape[0])
    kw = {"k": 3, "dissimilarity": name, "level": level, "groups": problem.simulation, "rtol": 1e-3,
              "overlap": 0.1, "seed": 2}
    ref = build_local_bases(X, product=w, **kw)                        # serial reference
    lo, hi = split(X.shape[0], comm, uneven)
    lb = build_local_bases(X[lo:hi], comm=comm, product=w[lo:hi], **kw)
    assert np.array_equal(lb.labels, ref.labels) and np.array_equal(lb.medoids, ref.medoids)
    assert np.array_equal(lb.column_labels, ref.column_labels)
    assert all(np.array_equal(a, b) for a, b in zip(lb.columns, ref.columns))
    np.testing.assert_array_equal(lb.n_modes, ref.n_modes)
    np.testing.assert_allclose(lb.dissimilarity, ref.dissimilarity, atol=1e-9)
    # from |x|^2 - |P x|^2: absolute accuracy ~ sqrt(eps) = 1.5e-8
    np.testing.assert_allclose(lb.training_errors, ref.training_errors, atol=1e-7)
    for b, r in zip(lb.bases, ref.bases):
        np.testing.assert_allclose(gather_rows(b.modes, comm), r.modes, atol=1e-8)
    # every rank holds the same answer
    assert comm.allgather(lb.medoids.tolist()) == [ref.medoids.tolist()] * comm.size


@pytest.mark.mpi
def test_local_bases_reproduce_their_clusters_to_the_pod_tolerance(comm, problem):
    X, w = problem.X, weights(problem.X.shape[0])
    lo, hi = split(X.shape[0], comm, uneven=True)
    for rtol in (1e-2, 1e-4):
        lb = build_local_bases(X[lo:hi], comm=comm, k=3, rtol=rtol, product=w[lo:hi])
        for c, b in enumerate(lb.bases):                               # direct check, serial
            Y = X[:, lb.columns[c]]
            Phi = gather_rows(b.modes, comm)
            np.testing.assert_allclose(Phi.T @ (w[:, None] * Phi), np.eye(b.n_modes), atol=1e-10)
            R = Y - Phi @ (Phi.T @ (w[:, None] * Y))
            err = np.sqrt(np.sum(w[:, None] * R**2) / np.sum(w[:, None] * Y**2))
            assert err <= rtol * (1 + 1e-6), (c, err, rtol)
            assert b.n_modes < np.linalg.matrix_rank(Y)                 # it did truncate
        own = lb.column_labels
        direct = np.empty(X.shape[1])
        for c, b in enumerate(lb.bases):
            Phi, Y = gather_rows(b.modes, comm), X[:, own == c]
            R = Y - Phi @ (Phi.T @ (w[:, None] * Y))
            direct[own == c] = np.sqrt(np.sum(w[:, None] * R**2, 0) / np.sum(w[:, None] * Y**2, 0))
        np.testing.assert_allclose(lb.training_errors, direct, atol=1e-7)


def test_overlap_adds_the_nearest_items_of_other_clusters(problem):
    lb0 = build_local_bases(problem.X, k=3, rtol=1e-3)
    for overlap, extra in ((2, lambda n: 2), (0.25, lambda n: int(np.ceil(0.25 * n)))):
        lb = build_local_bases(problem.X, k=3, rtol=1e-3, overlap=overlap)
        assert np.array_equal(lb.labels, lb0.labels)
        for c in range(3):
            inside = lb0.members(c)
            outside = np.setdiff1d(np.arange(lb.labels.size), inside)
            d = lb.dissimilarity[np.ix_(outside, inside)].min(axis=1)
            want = np.sort(np.concatenate([inside, outside[np.argsort(d, kind="stable")]
                                           [:extra(inside.size)]]))
            assert np.array_equal(lb.columns[c], want)
        assert [r["overlap"] for r in lb.summary_rows()] == [extra(n) for n in lb.sizes]


@pytest.mark.mpi
def test_gram_is_computed_once_and_can_be_shared(comm, problem, monkeypatch):
    X = problem.X
    lo, hi = split(X.shape[0], comm, uneven=False)
    m = X.shape[1]
    calls: list[tuple] = []

    def counting(orig):
        def gram(A, B=None, comm=None):
            if B is None:
                calls.append(A.shape[1:])
            return orig(A, B, comm)
        return gram

    monkeypatch.setattr(dist, "gram", counting(dist.gram))
    monkeypatch.setattr(podmod, "gram", counting(podmod.gram))
    lb = build_local_bases(X[lo:hi], comm=comm, k=3, rtol=1e-3)
    assert calls.count((m,)) == 1                       # the clustering Gram, once
    for size in {c.size for c in lb.columns}:             # each cluster's POD: its own block
        assert calls.count((size,)) == sum(c.size == size for c in lb.columns)
    calls.clear()
    G = snapshot_gram(X[lo:hi], comm=comm)               # e.g. shared with the global POD
    calls.clear()
    lb2 = build_local_bases(X[lo:hi], comm=comm, k=3, rtol=1e-3, gram=G)
    assert (m,) not in calls and np.array_equal(lb2.labels, lb.labels)


@pytest.mark.mpi
def test_write_read_round_trip_is_rank_count_independent(comm, problem, shared_tmp_path):
    X = problem.X
    lo, hi = split(X.shape[0], comm, uneven=True)
    kw = {"k": 3, "dissimilarity": "grassmann", "level": "simulations",
              "groups": np.array([f"sim{g:02d}" for g in problem.simulation]), "rtol": 1e-3}
    lb = build_local_bases(X[lo:hi], comm=comm, **kw)
    ref = build_local_bases(X, **kw)
    path = shared_tmp_path / "lb.h5"
    if comm.rank == 0:
        with h5py.File(path, "w") as f:
            lb.write(f.create_group("local_bases"), comm)
    else:
        lb.write(None, comm)
    comm.Barrier()
    with h5py.File(path, "r") as f:
        g = f["local_bases"]
        for c, r in enumerate(ref.bases):               # stored in global row order
            np.testing.assert_allclose(g[f"cluster_{c:03d}/modes"][()], r.modes, atol=1e-8)
        rows = split(X.shape[0], comm, uneven=False)
        back = LocalBases.read(g, comm, rows=rows)
    assert np.array_equal(back.labels, lb.labels) and np.array_equal(back.medoids, lb.medoids)
    assert list(back.group_ids) == list(lb.group_ids) and back.level == "simulations"
    assert back.params == {**lb.params} and back.metric == "grassmann"
    for b, r in zip(back.bases, ref.bases):
        np.testing.assert_allclose(b.modes, r.modes[rows[0]:rows[1]], atol=1e-8)
        np.testing.assert_array_equal(b.singular_values, r.singular_values) if comm.size == 1 \
            else np.testing.assert_allclose(b.singular_values, r.singular_values, rtol=1e-10)
    assert format_summary(back) == format_summary(lb)
    # the file helper the offline stage uses: atomic, with provenance
    fpath = write_local_bases_file(shared_tmp_path / "lb2.h5", lb, comm=comm,
                                   provenance={"case_name": "synthetic"})
    again = read_local_bases_file(fpath, comm=comm)
    assert np.array_equal(again.medoids, lb.medoids)
    with h5py.File(fpath, "r") as f:
        assert f.attrs["schema"] == "rom.local_bases" and f.attrs["case_name"] == "synthetic"
    with pytest.raises(FileNotFoundError, match="local-bases file not found"):
        read_local_bases_file(shared_tmp_path / "missing.h5", comm=comm)


def test_criterion_predicts_the_measured_outcome():
    """Regimes: local bases pay off, predicted and measured on held-out snapshots. One
    subspace (no regimes): they do not, predicted and measured."""
    train, test = synthetic_regimes(45, 5, seed=0), synthetic_regimes(30, 5, seed=1)
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((400, 12)))[0] * 0.7 ** np.arange(12)
    flat_train, flat_test = U @ rng.standard_normal((12, 200)), U @ rng.standard_normal((12, 100))
    cost = OnlineCost()
    for rtol in (1e-2, 1e-3):
        for Xtr, Ftr, Xte, Fte, expect in ((train.X, train.features, test.X, test.features, True),
                                           (flat_train, flat_train[::40].T, flat_test,
                                            flat_test[::40].T, False)):
            lb = build_local_bases(Xtr, k=3, rtol=rtol)
            pred = efficiency_criterion(snapshot_gram(Xtr), lb.columns, rtol=rtol, cost=cost)
            glob = pod(Xtr, rtol=0.0)
            local = [pod(Xtr[:, cols], rtol=0.0).modes for cols in lb.columns]
            assign = lb.selector(Ftr).select(Fte)
            n_g, n_c, measured = measured_speedup(glob.modes, local, Xte, assign, rtol=rtol,
                                                  cost=cost)
            assert pred.pays_off == expect, pred.summary()
            assert (measured >= pred.threshold) == expect, (rtol, n_g, n_c, measured)
            assert 1 / 3 < measured / pred.speedup < 3, (pred.summary(), n_g, n_c, measured)


def test_scan_k_finds_the_number_of_regimes():
    for seed in (0, 1):
        P = synthetic_regimes(60, 5, seed=seed)
        k, results = scan_k(snapshot_gram(P.X), range(1, 7), rtol=1e-3)
        assert k == 3, [r.summary() for r in results]
        assert results[0].speedup == 1.0 and results[0].redundancy == 1.0
        assert all(r.redundancy > 1.25 for r in results[3:])


def test_summary_table_and_plot(problem, tmp_path):
    lb = build_local_bases(problem.X, k=3, rtol=1e-3, overlap=1)
    crit = efficiency_criterion(snapshot_gram(problem.X), lb.columns, rtol=1e-3)
    text = format_summary(lb, crit)
    lines = text.splitlines()
    assert lines[0].startswith("local bases: k=3, dissimilarity=sine") and len(lines) == 3 + 3 + 1
    assert "total" in lines[-2] and "predicted speed-up" in lines[-1]
    rows = lb.summary_rows()
    assert sum(r["items"] for r in rows) == problem.X.shape[1]
    assert [r["modes"] for r in rows] == lb.n_modes.tolist()
    pytest.importorskip("matplotlib")
    out = plot_local_bases(tmp_path / "clusters.png", lb, title="synthetic")
    assert out.stat().st_size > 10_000


@pytest.mark.mpi
def test_build_errors_are_raised_on_every_rank(comm, problem):
    X = problem.X.copy()
    lo, hi = split(X.shape[0], comm, uneven=False)
    m = X.shape[1]
    with pytest.raises(ValueError, match=f"k = {m + 1} clusters requested for {m} items"):
        build_local_bases(X[lo:hi], comm=comm, k=m + 1)
    with pytest.raises(ValueError, match=r"k = 25 clusters requested for 24 items \(simulations\)"):
        build_local_bases(X[lo:hi], comm=comm, k=25, level="simulations",
                          groups=problem.simulation)
    with pytest.raises(ValueError, match="unknown dissimilarity 'cosine'"):
        build_local_bases(X[lo:hi], comm=comm, k=2, dissimilarity="cosine")
    with pytest.raises(ValueError, match="needs groups"):
        build_local_bases(X[lo:hi], comm=comm, k=2, level="simulations")
    with pytest.raises(ValueError, match="gram has shape"):
        build_local_bases(X[lo:hi], comm=comm, k=2, gram=np.eye(3))
    with pytest.raises(ValueError, match="overlap must be"):
        build_local_bases(X[lo:hi], comm=comm, k=2, overlap=-1)
    X[X.shape[0] - 1, 5] = np.nan                        # on the last rank only
    with pytest.raises(ValueError, match=f"global row {X.shape[0] - 1}, column 5"):
        build_local_bases(X[lo:hi], comm=comm, k=2)
