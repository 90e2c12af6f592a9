"""Empirical cubature (rom.hyper.ecm): reference values, exactness, warm start, imposed points,
input errors, and identical results at any rank count."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import legendre as L
from scipy.optimize import linprog, nnls

from rom.hyper import compress_rows, ecm, quadrature_error
from rom.hyper._nnls import PassiveQR, Selection, nnls_warm
from rom.parallel import even_split

MORDICUS_G = np.arange(200.0).reshape(10, 20)
MORDICUS_W = np.arange(20.0)


def smooth_integrands(m: int, n_points: int, seed: int = 0):
    """m smooth integrands (cosines with random shifts, times a positive profile) at random points."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.random(n_points))
    k = np.arange(m)[:, None]
    G = np.cos(np.pi * k * x + rng.random((m, 1))) * (1.0 + x) + 0.5
    w = rng.random(n_points) / n_points
    return G, w


def orthonormal_legendre(x: np.ndarray, degree: int) -> np.ndarray:
    """(degree + 1, n) Legendre polynomials orthonormal on [-1, 1]."""
    return L.legvander(x, degree).T * np.sqrt((2 * np.arange(degree + 1) + 1) / 2)[:, None]


def composite_gauss(n_el: int, q: int):
    """Points and weights of a q-point Gauss rule on each of n_el equal elements of [-1, 1]."""
    xq, wq = L.leggauss(q)
    edges = np.linspace(-1, 1, n_el + 1)
    h = np.diff(edges)[:, None]
    x = (edges[:-1, None] + h * (xq + 1) / 2).ravel()
    return x, (h * wq / 2).ravel()


def local(split: np.ndarray, rank: int, *arrays):
    lo, hi = split[rank], split[rank + 1]
    return [a[..., lo:hi] for a in arrays]


def splits(n: int, size: int) -> list[np.ndarray]:
    """An even split, and (with several ranks) an uneven one with an empty rank."""
    out = [even_split(n, size)]
    if size > 1:
        cuts = np.concatenate([[0, 0], np.linspace(0, n, size).astype(int)[1:]])
        out.append(cuts)                                  # rank 0 holds no point
    return out


# ---- reference values and basic properties ---------------------------------------------

def test_mordicus_reference():
    idx, x = ecm(MORDICUS_G, MORDICUS_W, tol=1e-6)
    assert idx.tolist() == [0, 19]
    np.testing.assert_allclose(x, [60.0, 130.0], rtol=1e-12)


@pytest.mark.parametrize("opts", [{"compress": 1e-8}, {"float32_scan": True},
                                  {"float32_scan": False}])
def test_mordicus_reference_variants(opts):
    idx, x = ecm(MORDICUS_G, MORDICUS_W, tol=1e-6, **opts)
    assert idx.tolist() == [0, 19]
    np.testing.assert_allclose(x, [60.0, 130.0], rtol=1e-12)


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
def test_training_integrals_reproduced(tol):
    G, w = smooth_integrands(40, 3000)
    idx, x, info = ecm(G, w, tol=tol, return_info=True)
    assert np.all(x > 0) and np.all(np.diff(idx) > 0)
    err = quadrature_error(G, w, idx, x)
    assert err <= tol and err == pytest.approx(info["error"], rel=1e-6, abs=1e-15)
    assert len(idx) <= 40                       # at most one point per independent integrand
    # the greedy errors decrease
    assert all(b < a for a, b in zip(info["history"], info["history"][1:]))


@pytest.mark.parametrize("q", [1, 2, 3, 5, 8])
def test_polynomial_exactness_1d(q):
    """Integrands of degree <= 2q-1: a composite q-point Gauss rule is exact for them; ECM
    picked from its points matches that exactness with at most 2q points (the number of
    moments, Caratheodory's bound), far fewer than the rule's n_el*q. A q-point rule needs
    the Gauss nodes themselves, which are not candidates (see docs/hyper.md)."""
    n_el = 25
    x, w = composite_gauss(n_el, q)
    G = orthonormal_legendre(x, 2 * q - 1)
    idx, wr = ecm(G, w, tol=1e-12)
    assert len(idx) <= 2 * q < n_el * q
    mono = np.vander(x[idx], 2 * q, increasing=True).T @ wr
    exact = np.array([(1 - (-1) ** (d + 1)) / (d + 1) for d in range(2 * q)])
    np.testing.assert_allclose(mono, exact, atol=1e-11)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
def test_gauss_rule_not_reached_without_the_next_moment(q):
    """The strongest true statement about q-point rules (docs/hyper.md, "Polynomial
    exactness"). Even with the Gauss nodes among the candidates (weight 0) a q-point rule
    exact to degree 2q-1 exists there, but ECM with point elimination (reduce=True) stops at
    rank(G) = 2q points: any rule whose columns are independent is a vertex of
    {x >= 0 : G x = b}, from which no point can be removed. The q-point (Gauss) vertex is
    singled out only by the degree-2q moment it minimizes (Markov-Krein): an LP with that
    moment as cost finds it, information the integrands up to degree 2q-1 do not carry."""
    x, w = composite_gauss(25, q)
    xg, wg = L.leggauss(q)
    xx, ww = np.concatenate([x, xg]), np.concatenate([w, np.zeros(q)])
    G = orthonormal_legendre(xx, 2 * q - 1)
    gauss = np.arange(x.size, xx.size)
    assert quadrature_error(G, ww, gauss, wg) <= 1e-14          # a q-point rule is there
    idx, wr, info = ecm(G, ww, tol=1e-12, reduce=True, return_info=True)
    assert len(idx) == 2 * q == np.linalg.matrix_rank(G) and info["eliminated"] == []
    assert quadrature_error(G, ww, idx, wr) <= 1e-12
    next_moment = orthonormal_legendre(xx, 2 * q)[-1]
    lp = linprog(next_moment, A_eq=G, b_eq=G @ ww, bounds=(0, None), method="highs")
    support = np.flatnonzero(lp.x > 1e-12)     # (for odd q the node 0 is also a rule point)
    np.testing.assert_allclose(np.sort(xx[support]), xg, atol=1e-14)


def test_reduce_removes_a_point_the_greedy_no_longer_needs():
    """The raw correlation first takes the long column a = (3, 3); then c = (1, 0) makes the
    error 0 with a weight 1/3000 on a. Without a the error is 1e-3 <= tol: reduce drops a."""
    G, w = np.array([[3.0, 1.0], [3.0, 0.0]]), np.array([1 / 3000, 0.999])
    idx, x, info = ecm(G, w, tol=1e-2, return_info=True)
    assert idx.tolist() == [0, 1] and info["order"] == [0, 1]
    idx, x, info = ecm(G, w, tol=1e-2, reduce=True, return_info=True)
    assert idx.tolist() == [1] and info["eliminated"] == [0]
    assert x[0] == pytest.approx(1.0) and info["error"] == pytest.approx(1e-3, rel=1e-6)
    assert quadrature_error(G, w, idx, x) <= 1e-2


@pytest.mark.parametrize("tol, extra", [(1e-3, False), (1e-4, True)])
def test_reduce_never_adds_points_nor_error(tol, extra):
    """Cases where elimination removes one point of the greedy's (measured); imposed and
    kept warm-start points stay."""
    G, w = smooth_integrands(60, 2000, seed=0)
    G *= np.exp(-np.arange(60) / 4)[:, None]
    kw = {"warm_start": np.array([10, 1500]), "imposed": np.array([7, 1999])} if extra else {}
    ref = ecm(G, w, tol=tol, **kw)
    idx, x, info = ecm(G, w, tol=tol, reduce=True, return_info=True, **kw)
    assert len(info["eliminated"]) >= 1 and len(idx) == len(ref[0]) - len(info["eliminated"])
    assert set(idx) == set(ref[0]) - set(info["eliminated"])
    if extra:
        assert set(kw["warm_start"]) | set(kw["imposed"]) <= set(idx)
        assert np.all(x[np.isin(idx, kw["imposed"])] == 0.0)
    assert quadrature_error(G, w, idx, x) <= tol


@pytest.mark.parametrize("q", [1, 2, 3])
def test_polynomial_exactness_2d_tensor(q):
    """Tensor Legendre space Q_{2q-1} on [-1, 1]^2 from a composite tensor Gauss rule."""
    x1, w1 = composite_gauss(8, q)
    X, Y = np.meshgrid(x1, x1, indexing="ij")
    W = np.outer(w1, w1).ravel()
    Px, Py = orthonormal_legendre(X.ravel(), 2 * q - 1), orthonormal_legendre(Y.ravel(), 2 * q - 1)
    G = (Px[:, None, :] * Py[None, :, :]).reshape(-1, X.size)
    idx, wr = ecm(G, W, tol=1e-12)
    assert len(idx) <= (2 * q) ** 2 < W.size
    assert quadrature_error(G, W, idx, wr) <= 1e-12


def test_warm_start_keeps_old_points():
    G, w = smooth_integrands(30, 2000, seed=1)
    idx1, _ = ecm(G[:15], w, tol=1e-6)
    idx2, x2 = ecm(G, w, tol=1e-6, warm_start=idx1)
    assert set(idx1) <= set(idx2)
    assert np.all(x2 >= 0) and quadrature_error(G, w, idx2, x2) <= 1e-6
    # continuing the same greedy path: warm start from its own answer changes nothing
    idx3, x3 = ecm(G, w, tol=1e-6, warm_start=idx2, keep_warm_start=False)
    assert idx3.tolist() == idx2.tolist()
    np.testing.assert_allclose(x3, x2, rtol=1e-10, atol=1e-14 * x2.max())


def test_warm_weights_give_the_same_rule_in_fewer_active_set_steps(monkeypatch):
    """An update for new integrands (the enrichment's case): starting the first NNLS from
    the earlier rule's weights gives the same points and weights as starting it from zero,
    with far fewer Lawson-Hanson steps (counted as least-squares solves)."""
    G, w = smooth_integrands(40, 3000, seed=4)
    idx1, x1 = ecm(G[:36], w, tol=1e-8)
    counts = {}
    real = PassiveQR.solve

    def counted(self, b):
        counts[key] = counts.get(key, 0) + 1
        return real(self, b)

    monkeypatch.setattr(PassiveQR, "solve", counted)
    key = "zero"
    idx2, x2 = ecm(G, w, tol=1e-8, warm_start=idx1, keep_warm_start=False)
    key = "warm"
    idx3, x3 = ecm(G, w, tol=1e-8, warm_start=idx1, keep_warm_start=False, warm_weights=x1)
    assert idx3.tolist() == idx2.tolist()
    np.testing.assert_allclose(x3, x2, rtol=1e-9, atol=1e-12 * x2.max())
    assert quadrature_error(G, w, idx3, x3) <= 1e-8
    print("\nleast-squares solves from zero / from the weights:", counts)
    assert counts["warm"] + idx1.size // 2 <= counts["zero"]


def test_imposed_points_kept_with_zero_weight():
    G, w = smooth_integrands(20, 1500, seed=2)
    imposed = np.array([3, 700, 1499])
    idx, x = ecm(G, w, tol=1e-8, imposed=imposed)
    assert set(imposed) <= set(idx)
    assert np.all(x[np.isin(idx, imposed)] == 0.0)
    assert quadrature_error(G, w, idx, x) <= 1e-8


def test_pruning_many_points_at_once():
    """Regression (online benchmark 48x18x6, IndexError in Selection.prune): when the
    dropped points come to outnumber the live ones, the selection compacts its buffers; the
    dropped indices must be taken before that. Here 40 warm-start points of 8 integrands
    with keep_warm_start=False: 32 get weight 0 at once, plus imposed points."""
    G, w = smooth_integrands(8, 1000, seed=7)
    ws, imposed = np.arange(0, 1000, 25), np.array([1, 2, 999])
    idx, x = ecm(G, w, tol=1e-8, warm_start=ws, keep_warm_start=False, imposed=imposed)
    quad = ~np.isin(idx, imposed)
    assert set(imposed) <= set(idx) and np.all(x[~quad] == 0.0) and np.all(x[quad] > 0)
    assert np.count_nonzero(np.isin(ws, idx)) <= G.shape[0] < ws.size - 16
    assert quadrature_error(G, w, idx, x) <= 1e-8


def test_selection_prune_returns_dropped_and_stays_consistent():
    """Selection.prune after many drops (buffers compacted): dropped indices, live points,
    and later NNLS solves agree with scipy's nnls on the live columns."""
    rng = np.random.default_rng(3)
    G = rng.random((6, 60))
    b = G[:, :6] @ rng.random(6) + 0.01 * rng.random(6)
    sel = Selection(6)
    sel.append(np.arange(100, 160), G, kept=False)
    sel.solve(b)
    live_before = sel.idx[sel.x > 0]
    dropped = sel.prune()
    assert sorted([*dropped, *sel.idx]) == list(range(100, 160))
    assert sel.idx.tolist() == live_before.tolist() and dropped.size > 16
    for j in dropped[:3]:                          # the dropped points can come back
        pos = sel.append(np.array([j]), G[:, [j - 100]], kept=False)
        sel.solve(b, add=pos)
        sel.prune()
        ref = nnls(G[:, sel.idx - 100], b)[1]
        assert np.linalg.norm(sel.residual(b)) <= ref * (1 + 1e-10) + 1e-14


def test_elimination_survives_a_rebuilt_basis():
    """Point elimination drops nearly every point (once the buffers were compacted and the
    basis rebuilt mid-elimination, and the next pass used Q^T b of the old basis: a shape
    error on the blade when a training loading was left out; elimination now never
    compacts). The result is a valid NNLS within the tolerance."""
    rng = np.random.default_rng(5)
    G = rng.random((200, 150))
    b = G[:, :5] @ (1.0 + rng.random(5))
    sel = Selection(200)
    sel.append(np.arange(150), G, kept=False)
    sel.solve(b)                       # weights on the first 5 columns, 0 elsewhere (live)
    max_res = 0.5 * np.linalg.norm(b)
    removed, _ = sel.eliminate(b, max_res)
    assert removed.size >= 145 and sel.idx.size <= 5
    assert np.linalg.norm(sel.residual(b)) <= max_res * (1 + 1e-12)
    assert np.all(sel.x > 0)


def test_compression_keeps_the_true_tolerance():
    G, w = smooth_integrands(60, 2000, seed=3)
    for ctol in (1e-9, 1e-3, 0.3):              # 0.3: far too coarse
        idx, x = ecm(G, w, tol=1e-8, compress=ctol)
        assert quadrature_error(G, w, idx, x) <= 1e-8
    ref_idx, ref_x = ecm(G, w, tol=1e-8)            # compression does not change the greedy
    for ctol in (1e-9, 1e-4):
        idx, x = ecm(G, w, tol=1e-8, compress=ctol)
        assert idx.tolist() == ref_idx.tolist()
        np.testing.assert_allclose(x, ref_x, rtol=1e-9, atol=1e-12 * ref_x.max())
    Q, s = compress_rows(G, 1e-9)
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    assert s[0] == pytest.approx(np.linalg.norm(G, 2), rel=1e-10)


@pytest.mark.parametrize("ctol", [1e-9, 1e-4, 1e-2, 0.5])
def test_compression_does_not_change_the_greedy(ctol):
    """However coarse the compressed rows, the greedy is the NNOMP of G: when the rows stop
    seeing the residual, more points (up to all) get their true correlation."""
    G, w = smooth_integrands(60, 2000, seed=6)
    G *= np.exp(-np.arange(60) / 6)[:, None]          # a decaying spectrum: compressible
    ref_idx, ref_x = ecm(G, w, tol=1e-9)
    idx, x, info = ecm(G, w, tol=1e-9, compress=ctol, return_info=True)
    assert idx.tolist() == ref_idx.tolist()
    np.testing.assert_allclose(x, ref_x, rtol=1e-8, atol=1e-12 * ref_x.max())
    cand = np.array(info["candidates"])
    if ctol >= 1e-2:                                  # the coarse rows had to be helped ...
        assert info["rank"] <= 26 and np.median(cand) > 1000
    else:                                             # ... the fine ones hardly
        assert np.median(cand) <= 4


@pytest.mark.parametrize("batch, fewer", [(8, 1.0), (128, 0.5)])
def test_batch_meets_the_tolerance_in_fewer_scans(batch, fewer):
    """Several points per scan (generalized OMP): the tolerance is met in fewer scans, only
    points the NNLS took are kept, and no more points than NNOMP's (up to a few)."""
    G, w = smooth_integrands(60, 2000, seed=6)
    G *= np.exp(-np.arange(60) / 6)[:, None]
    tol = 1e-9
    ref_idx, _, ref = ecm(G, w, tol=tol, return_info=True)
    for reduce in (False, True):
        idx, x, info = ecm(G, w, tol=tol, batch=batch, reduce=reduce, return_info=True)
        assert info["error"] <= tol and quadrature_error(G, w, idx, x) <= tol
        assert np.all(x > 0) and idx.size <= ref_idx.size + 2
        assert info["iterations"] <= fewer * ref["iterations"]
        assert info["order"][0] == ref["order"][0]      # the largest correlation first


@pytest.mark.parametrize("ctol", [1e-9, 1e-2, 0.5])
def test_batch_with_compression_takes_the_true_top_correlations(ctol):
    """The batch of a compressed scan is the batch of the scan on G (rigorous bounds on the
    count-th correlation): same points and weights at any compression."""
    G, w = smooth_integrands(60, 2000, seed=6)
    G *= np.exp(-np.arange(60) / 6)[:, None]
    ref_idx, ref_x = ecm(G, w, tol=1e-9, batch=8)
    idx, x = ecm(G, w, tol=1e-9, batch=8, compress=ctol)
    assert idx.tolist() == ref_idx.tolist()
    np.testing.assert_allclose(x, ref_x, rtol=1e-8, atol=1e-12 * ref_x.max())


def test_scanner_top_is_the_sorted_top():
    from mpi4py import MPI

    from rom.hyper._scan import Scanner
    rng = np.random.default_rng(1)
    AT = rng.standard_normal((500, 7))
    r = rng.standard_normal(7)
    taken = np.zeros(500, dtype=bool)
    taken[rng.choice(500, 50, replace=False)] = True
    c = AT @ r
    c[taken] = -np.inf
    for f32 in (False, True):
        vals, idx, _ = Scanner(AT, 0, MPI.COMM_SELF, f32).top(r, taken, 1e-13, 10)
        assert idx.tolist() == np.argsort(-c)[:10].tolist()
        np.testing.assert_allclose(vals, np.sort(c)[::-1][:10], rtol=1e-12)
    vals, idx, _ = Scanner(AT, 0, MPI.COMM_SELF, False).top(r, np.ones(500, bool), 1e-13, 3)
    assert idx.size == 0


def test_max_points_and_unreachable_tolerance_warn():
    G, w = smooth_integrands(30, 1000, seed=4)
    with pytest.warns(RuntimeWarning, match="max_points"):
        _idx, x = ecm(G, w, tol=1e-12, max_points=5)
    assert np.count_nonzero(x) <= 5


def test_progress_lines(capsys):
    G, w = smooth_integrands(10, 200)
    ecm(G, w, tol=1e-8, progress=1e-12)
    assert "ecm:" in capsys.readouterr().err


@pytest.mark.parametrize("updated_qr", [False, True])
def test_nnls_warm_matches_scipy(rng, updated_qr):
    """With updated_qr the passive columns' QR is carried from one solve to the next (as in
    the greedy: rows and a column appended), through rank-deficient cases (n > k)."""
    for _ in range(60):
        k, n = rng.integers(1, 25, size=2)
        A, b = rng.standard_normal((k, n)), rng.standard_normal(k)
        ref = np.linalg.norm(A @ nnls(A, b)[0] - b)
        qr = PassiveQR() if updated_qr else None
        x = nnls_warm(A, b, qr=qr)
        assert np.all(x >= 0) and np.linalg.norm(A @ x - b) <= ref * (1 + 1e-10) + 1e-12
        if updated_qr:
            assert sorted(qr.cols) == np.flatnonzero(x > 0).tolist()
        if n > 1:                                 # optimum on n-1 columns, then add the last
            qr = PassiveQR() if updated_qr else None
            x0 = np.append(nnls_warm(A[:, :-1], b, qr=qr), 0.0)
            x1 = nnls_warm(A, b, x0, add=n - 1, qr=qr)
            assert np.linalg.norm(A @ x1 - b) <= ref * (1 + 1e-10) + 1e-12
            # as in the greedy: a new row, zero in the old columns, comes with the new column
            A2 = np.vstack([np.column_stack([A, rng.standard_normal(k)]), np.zeros(n + 1)])
            A2[-1, -1], b2 = 1.0, np.append(b, rng.standard_normal())
            x2 = nnls_warm(A2, b2, np.append(x1, 0.0), add=n, qr=qr)
            ref2 = np.linalg.norm(A2 @ nnls(A2, b2)[0] - b2)
            assert np.linalg.norm(A2 @ x2 - b2) <= ref2 * (1 + 1e-10) + 1e-12
            if updated_qr and qr.cols:
                np.testing.assert_allclose(qr.W @ qr.T, A2[:, qr.cols], atol=1e-12)


# ---- user mistakes ----------------------------------------------------------------------

@pytest.mark.parametrize("mutate, match", [
    (lambda G, w: (np.where(np.arange(G.size).reshape(G.shape) == 47, np.nan, G), w),
     r"G contains nan at \(integrand 2, point 7\)"),
    (lambda G, w: (G, w[:-1]), "weights has 19 entries but G has 20 columns"),
    (lambda G, w: (G, np.where(np.arange(20) == 5, -1.0, w)), r"weights must be >= 0.*point 5"),
    (lambda G, w: (G, np.where(np.arange(20) == 2, np.inf, w)), r"weights contains inf"),
    (lambda G, w: (G[0], w), "G must be a 2-D array"),
    (lambda G, w: (0 * G, w), "all zero"),
])
def test_input_errors(mutate, match):
    G, w = mutate(MORDICUS_G.copy(), MORDICUS_W + 1)
    with pytest.raises(ValueError, match=match):
        ecm(G, w, tol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"tol": 0.0}, r"tol must be in \(0, 1\)"),
    ({"tol": 1.5}, r"tol must be in \(0, 1\)"),
    ({"tol": "x"}, "tol must be a number"),
    ({"tol": 1e-6, "compress": 2.0}, r"compress must be in \(0, 1\)"),
    ({"tol": 1e-6, "batch": 0}, "batch must be an integer >= 1, got 0"),
    ({"tol": 1e-6, "batch": 2.5}, "batch must be an integer >= 1"),
    ({"tol": 1e-6, "warm_start": [3, 25]}, r"warm_start\[1\] = 25 is out of range \[0, 20\)"),
    ({"tol": 1e-6, "warm_start": [-1]}, r"warm_start\[0\] = -1 is out of range"),
    ({"tol": 1e-6, "imposed": [4, 4]}, "imposed contains the index 4 more than once"),
    ({"tol": 1e-6, "imposed": [1.5]}, "integer global point indices"),
    ({"tol": 1e-6, "warm_start": [2], "imposed": [2]}, "point 2 is both in warm_start and in imposed"),
    ({"tol": 1e-6, "warm_start": [2, 3], "warm_weights": [1.0]}, "warm_weights must be 2 nonneg"),
    ({"tol": 1e-6, "warm_start": [2], "warm_weights": [-1.0]}, "warm_weights must be 1 nonneg"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ecm(MORDICUS_G, MORDICUS_W, **kwargs)


# ---- distributed: identical points and weights at any rank count ------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("opts", [
    {},
    {"float32_scan": True},
    {"compress": 1e-7},
    {"batch": 8},
    {"batch": 8, "compress": 1e-2, "reduce": True},
    {"warm_start": np.array([5, 900, 1999]), "imposed": np.array([0, 1000])},
    {"warm_start": np.arange(3, 2000, 40), "keep_warm_start": False,   # compacts the selection
     "imposed": np.array([0, 1000])},
])
def test_rank_count_independence(comm, opts):
    G, w = smooth_integrands(40, 2000, seed=5)
    ref_idx, ref_x = ecm(G, w, tol=1e-9, **opts)                  # serial reference
    for split in splits(G.shape[1], comm.size):
        Gl, wl = local(split, comm.rank, G, w)
        idx, x = ecm(Gl, wl, tol=1e-9, comm=comm, **opts)
        assert idx.tolist() == ref_idx.tolist()
        np.testing.assert_allclose(x, ref_x, rtol=1e-12, atol=1e-12 * ref_x.max())
        assert quadrature_error(Gl, wl, idx, x, comm) <= 1e-9


@pytest.mark.mpi
@pytest.mark.parametrize("tol, extra", [(1e-3, False), (1e-4, True)])
def test_reduce_rank_count_independence(comm, tol, extra):
    """Point elimination works on the replicated selected columns: same points at any rank count."""
    G, w = smooth_integrands(60, 2000, seed=0)
    G *= np.exp(-np.arange(60) / 4)[:, None]
    kw = {"warm_start": np.array([10, 1500]), "imposed": np.array([7, 1999])} if extra else {}
    ref_idx, ref_x, ref_info = ecm(G, w, tol=tol, reduce=True, return_info=True, **kw)
    assert ref_info["eliminated"]
    for split in splits(G.shape[1], comm.size):
        Gl, wl = local(split, comm.rank, G, w)
        idx, x, info = ecm(Gl, wl, tol=tol, comm=comm, reduce=True, return_info=True, **kw)
        assert idx.tolist() == ref_idx.tolist() and info["eliminated"] == ref_info["eliminated"]
        np.testing.assert_allclose(x, ref_x, rtol=1e-12, atol=1e-12 * ref_x.max())


@pytest.mark.mpi
def test_ties_broken_by_global_index(comm):
    """Symmetric integrands on a symmetric rule: exactly tied correlations, same answer."""
    x, w = composite_gauss(30, 2)
    G = orthonormal_legendre(x, 5)
    ref = ecm(G, w, tol=1e-12)
    for split in splits(x.size, comm.size):
        idx, xr = ecm(*local(split, comm.rank, G, w), tol=1e-12, comm=comm)
        assert idx.tolist() == ref[0].tolist()
        np.testing.assert_allclose(xr, ref[1], rtol=1e-12)


@pytest.mark.mpi
def test_mordicus_reference_distributed(comm):
    for split in splits(20, comm.size):
        idx, x = ecm(*local(split, comm.rank, MORDICUS_G, MORDICUS_W), tol=1e-6, comm=comm)
        assert idx.tolist() == [0, 19]
        np.testing.assert_allclose(x, [60.0, 130.0], rtol=1e-12)


@pytest.mark.mpi
def test_error_on_one_rank_raises_on_all(comm):
    G, w = smooth_integrands(5, 40)
    split = even_split(40, comm.size)
    Gl, wl = local(split, comm.rank, G, w)
    if comm.rank == comm.size - 1:
        wl = wl.copy()
        wl[-1] = -1.0
    with pytest.raises(ValueError, match="point 39"):
        ecm(Gl, wl, tol=1e-6, comm=comm)
