"""Parametric heat-conduction test problems assembled with scipy.sparse (vectorized).

``-div(k(x; mu) grad u) = s(x; mu)`` in the unit square (P1 triangles) or cube (Q1 hexahedra
from :func:`rom.meshes.box`), ``u = 0`` on the boundary (eliminated: the unknowns are the
interior nodes). Two families:

- :func:`gaussian_heat`: ``k = 1 + exp(-|x - mu|^2 / w)``, ``s = 1 + exp(-|x - mu|^2 / w)``,
  ``mu`` in ``[0.2, 0.8]^dim``: non-affine, smooth in ``mu``;
- :func:`thermal_block`: ``k = mu_p`` on block ``p`` of a ``b_1 x b_2`` grid, ``s = 1``,
  ``mu`` in ``[0.1, 10]^P``: affine with exactly ``P`` terms.

The energy product ``X`` is the unit-conductivity stiffness matrix (H1_0 seminorm); with it
``alpha(mu) >= min_x k(x; mu)``: 1 for the Gaussian family, ``min_p mu_p`` for the
thermal block (min-theta). Element kernels are vectorized over elements and quadrature
points; the CSR pattern is computed once and every assembly is one ``np.bincount``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..meshes import box
from ..parallel import as_comm, even_split
from .estimator import MinTheta

__all__ = ["HeatProblem", "gaussian_heat", "halton", "thermal_block"]

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (x (..., dim), mu (d,)) -> (...)


def _p1_grid(n: int):
    """Unit square, n x n squares split into 2 triangles: points (P, 2), cells (2n^2, 3)."""
    t = np.linspace(0.0, 1.0, n + 1)
    X, Y = np.meshgrid(t, t, indexing="ij")
    pts = np.column_stack([X.ravel(order="F"), Y.ravel(order="F")])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    i, j = i.ravel(), j.ravel()
    n00, n10 = i + (n + 1) * j, i + 1 + (n + 1) * j
    n01, n11 = n00 + n + 1, n10 + n + 1
    cells = np.concatenate([np.stack([n00, n10, n11], 1), np.stack([n00, n11, n01], 1)])
    return pts, cells.astype(np.int64)


def _p1_kernel(pts, cells):
    """Gradients (E, 1, 3, 2), quadrature points (E, 3, 2), weights (E, 3), shape (3, 3)."""
    X = pts[cells]                                          # (E, 3, 2)
    J = np.stack([X[:, 1] - X[:, 0], X[:, 2] - X[:, 0]], axis=2)   # columns: dx/dxi
    det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
    inv = np.stack([np.stack([J[:, 1, 1], -J[:, 0, 1]], 1),
                    np.stack([-J[:, 1, 0], J[:, 0, 0]], 1)], 1) / det[:, None, None]
    dref = np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
    G = np.einsum("ad,edi->eai", dref, inv)[:, None]        # grad N_a = J^-T grad_ref N_a
    ref = np.array([[1 / 6, 1 / 6], [2 / 3, 1 / 6], [1 / 6, 2 / 3]])
    N = np.column_stack([1 - ref.sum(1), ref])              # (3 quad, 3 nodes)
    xq = np.einsum("qa,eai->eqi", N, X)
    w = np.repeat((np.abs(det) / 6.0)[:, None], 3, axis=1)  # area / 3 per point
    return G, xq, w, N


def _q1_kernel(pts, cells):
    """Hex8, 2x2x2 Gauss: gradients (E, 8, 8, 3), points (E, 8, 3), weights (E, 8), N (8, 8)."""
    r = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                  [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float)
    g = 1.0 / np.sqrt(3.0)
    q = np.array(np.meshgrid([-g, g], [-g, g], [-g, g], indexing="ij")).reshape(3, -1).T
    f = 1.0 + q[:, None, :] * r[None, :, :]                 # (8q, 8a, 3)
    N = f.prod(axis=2) / 8.0
    dN = np.stack([r[None, :, d] * f[:, :, (d + 1) % 3] * f[:, :, (d + 2) % 3] / 8.0
                   for d in range(3)], axis=2)              # (8q, 8a, 3)
    X = pts[cells]                                          # (E, 8, 3)
    J = np.einsum("qad,eai->eqid", dN, X)
    det = np.linalg.det(J)
    inv = np.linalg.inv(J)                                  # (E, q, d, i)
    G = np.einsum("qad,eqdi->eqai", dN, inv)
    return G, np.einsum("qa,eai->eqi", N, X), det, N


@dataclass
class HeatProblem:
    """A parametric heat problem on a fixed mesh: assembly, entries hooks and solves.

    Attributes
    ----------
    points : (P, dim) node coordinates [m]; cells : (E, nn) connectivity
    conductivity, source : ``(x (..., dim), mu (d,)) -> (...)``
    bounds : (d, 2) parameter box
    free : (N,) interior nodes (the unknowns, in increasing node order)
    """

    points: np.ndarray
    cells: np.ndarray
    conductivity: Field
    source: Field
    bounds: np.ndarray
    name: str = "heat"
    coercivity_lb: Callable[[np.ndarray], float] = field(default=lambda mu: 1.0)
    _k: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        dim = self.points.shape[1]
        kern = _p1_kernel if dim == 2 else _q1_kernel
        self.G, self.xq, self.w, self.N = kern(self.points, self.cells)
        on_boundary = np.any((self.points <= 1e-12) | (self.points >= 1 - 1e-12), axis=1)
        self.free = np.flatnonzero(~on_boundary)
        fmap = np.full(len(self.points), -1, dtype=np.int64)
        fmap[self.free] = np.arange(self.free.size)
        self.fmap = fmap
        nn = self.cells.shape[1]
        fi = fmap[self.cells][:, :, None].repeat(nn, 2)     # (E, a, b) row
        fj = fmap[self.cells][:, None, :].repeat(nn, 1)     # (E, a, b) col
        self._mask = ((fi >= 0) & (fj >= 0)).ravel()
        n = self.free.size
        keys = (fi.ravel() * n + fj.ravel())[self._mask]
        self._ukeys, self._pos = np.unique(keys, return_inverse=True)
        counts = np.bincount(self._ukeys // n, minlength=n)
        self._indptr = np.concatenate([[0], np.cumsum(counts)])
        self._indices = self._ukeys % n
        # node -> elements (for the entries hook)
        order = np.argsort(self.cells.ravel(), kind="stable")
        self._n2e = (np.bincount(self.cells.ravel(), minlength=len(self.points)), order // nn)

    @property
    def n_dofs(self) -> int:
        return int(self.free.size)

    @property
    def n_params(self) -> int:
        return int(self.bounds.shape[0])

    # ------------------------------------------------------------------ kernels
    def _element_matrices(self, k_q: np.ndarray, elems=slice(None)) -> np.ndarray:
        """(E', nn, nn) element stiffness for conductivity values ``k_q`` (E', nq)."""
        wk = self.w[elems] * k_q
        G = self.G[elems]
        if G.shape[1] == 1:                                 # constant gradients (P1)
            return np.einsum("e,eai,ebi->eab", wk.sum(1), G[:, 0], G[:, 0])
        return np.einsum("eq,eqai,eqbi->eab", wk, G, G)

    def assemble(self, mu: np.ndarray | None = None, *, k: float | None = None) -> sp.csr_matrix:
        """Stiffness matrix on the interior nodes (N, N) CSR for ``mu`` (or constant ``k``)."""
        kq = np.full(self.w.shape, float(k)) if k is not None else \
            self.conductivity(self.xq, np.asarray(mu, dtype=float))
        vals = self._element_matrices(kq).ravel()[self._mask]
        data = np.bincount(self._pos, weights=vals, minlength=self._ukeys.size)
        n = self.n_dofs
        return sp.csr_matrix((data, self._indices.copy(), self._indptr.copy()), shape=(n, n))

    def rhs(self, mu: np.ndarray) -> np.ndarray:
        """Load vector (N,): ``int s(x; mu) phi_i``."""
        sq = self.source(self.xq, np.asarray(mu, dtype=float)) * self.w      # (E, nq)
        fe = sq @ self.N                                                    # (E, nn)
        f = np.bincount(self.cells.ravel(), weights=fe.ravel(), minlength=len(self.points))
        return f[self.free]

    def product(self) -> sp.csr_matrix:
        """Energy product X: unit-conductivity stiffness (H1_0 seminorm), (N, N) CSR."""
        if "X" not in self._k:
            self._k["X"] = self.assemble(k=1.0)
        return self._k["X"]

    def solve(self, mu: np.ndarray) -> np.ndarray:
        """High-fidelity solution (N,) by a sparse direct solve."""
        return spla.spsolve(self.assemble(mu).tocsc(), self.rhs(mu))

    # ------------------------------------------------------------------ entries hooks
    def _elements_of(self, free_rows: np.ndarray) -> np.ndarray:
        counts, elems = self._n2e
        nodes = self.free[free_rows]
        starts = np.concatenate([[0], np.cumsum(counts)])[nodes]
        c = counts[nodes]
        first = np.concatenate([[0], np.cumsum(c)[:-1]])
        idx = np.repeat(starts - first, c) + np.arange(int(c.sum()))
        return np.unique(elems[idx])

    def matrix_entries(self, mu: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``A(mu)[rows, cols]`` from the elements touching ``rows`` only (cost ~ #rows)."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        if rows.size == 0:
            return np.zeros(0)
        e = self._elements_of(rows)
        kq = self.conductivity(self.xq[e], np.asarray(mu, dtype=float))
        Ke = self._element_matrices(kq, e)
        c = self.fmap[self.cells[e]]
        fi, fj = c[:, :, None], c[:, None, :]
        n = self.n_dofs
        ok = ((fi >= 0) & (fj >= 0)).ravel()
        keys = np.broadcast_to(fi * n + fj, Ke.shape).ravel()[ok]
        want = rows * n + cols
        u, inv = np.unique(want, return_inverse=True)
        pos = np.searchsorted(u, keys)
        hit = (pos < u.size) & (u[np.minimum(pos, u.size - 1)] == keys)
        acc = np.bincount(pos[hit], weights=Ke.ravel()[ok][hit], minlength=u.size)
        return acc[inv]

    def rhs_entries(self, mu: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``f(mu)[rows]`` from the elements touching ``rows`` only."""
        rows = np.asarray(rows, np.int64)
        if rows.size == 0:
            return np.zeros(0)
        e = self._elements_of(rows)
        fe = (self.source(self.xq[e], np.asarray(mu, dtype=float)) * self.w[e]) @ self.N
        nodes, inv = np.unique(self.free[rows], return_inverse=True)
        ce = self.cells[e].ravel()
        pos = np.searchsorted(nodes, ce)
        hit = (pos < nodes.size) & (nodes[np.minimum(pos, nodes.size - 1)] == ce)
        return np.bincount(pos[hit], weights=fe.ravel()[hit], minlength=nodes.size)[inv]

    # ------------------------------------------------------------------ distributed views
    def local(self, comm=None) -> dict:
        """Callables restricted to this rank's rows (even split): assemble, rhs, hooks, solve.

        Every rank builds the whole problem (test sizes) and slices its rows.
        """
        comm = as_comm(comm)
        off = even_split(self.n_dofs, comm.size)
        lo, hi = int(off[comm.rank]), int(off[comm.rank + 1])
        return {
            "assemble": lambda mu: self.assemble(mu)[lo:hi],
            "rhs": lambda mu: self.rhs(mu)[lo:hi],
            "matrix_entries": self.matrix_entries,
            "rhs_entries": self.rhs_entries,
            "solve": lambda mu: self.solve(mu)[lo:hi],
            "product": self.product()[lo:hi],
            "rows": (lo, hi),
        }

    def linear_problem(self, comm=None, *, hooks: bool = True):
        """This rank's view as a :class:`rom.interp.rb.LinearProblem` (with entries hooks)."""
        from .rb import LinearProblem

        d = self.local(comm)
        return LinearProblem(assemble=d["assemble"], rhs=d["rhs"], solve=d["solve"],
                             matrix_entries=d["matrix_entries"] if hooks else None,
                             rhs_entries=d["rhs_entries"] if hooks else None)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` parameters (n, d) of a scrambled Halton sequence in :attr:`bounds`."""
        return halton(n, self.bounds, seed)


def halton(n: int, bounds: np.ndarray, seed: int = 0) -> np.ndarray:
    """``n`` points (n, d) of a scrambled Halton sequence in the box ``bounds`` (d, 2)."""
    from scipy.stats import qmc

    bounds = np.asarray(bounds, dtype=float)
    u = qmc.Halton(d=bounds.shape[0], scramble=True, seed=seed).random(int(n))
    return bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])


def gaussian_heat(n: int = 32, *, dim: int = 2, width: float = 0.2) -> HeatProblem:
    """Non-affine problem: ``k = s = 1 + exp(-|x - mu|^2 / width)``, mu in [0.2, 0.8]^dim.

    ``n`` cells per direction (2D: P1 triangles; 3D: Q1 hexahedra). alpha(mu) >= 1 in X.
    """
    if dim not in (2, 3) or n < 2 or not width > 0:
        raise ValueError(f"gaussian_heat: need dim 2 or 3, n >= 2, width > 0; got {dim}, {n}, "
                         f"{width}")
    if dim == 2:
        pts, cells = _p1_grid(n)
    else:
        m = box((n, n, n))
        pts, cells = np.asarray(m.points, float), m.cells[0].data.astype(np.int64)

    def bump(x, mu):
        return 1.0 + np.exp(-((x - mu) ** 2).sum(-1) / width)

    return HeatProblem(pts, cells, bump, bump, np.tile([0.2, 0.8], (dim, 1)),
                       name=f"gaussian_heat_{dim}d")


def thermal_block(n: int = 32, blocks: tuple[int, int] = (2, 2)) -> HeatProblem:
    """Affine thermal block (2D): ``k = mu_p`` on block p, ``s = 1``, mu in [0.1, 10]^P.

    ``A(mu) = sum_p mu_p K_p`` (exactly P = b1 b2 terms); alpha(mu) >= min_p mu_p in X.
    """
    b1, b2 = (int(b) for b in blocks)
    if n < 2 or b1 < 1 or b2 < 1 or n % b1 or n % b2:
        raise ValueError(f"thermal_block: n ({n}) must be >= 2 and divisible by the blocks "
                         f"{blocks}")
    pts, cells = _p1_grid(n)

    def k(x, mu):
        bx = np.minimum((x[..., 0] * b1).astype(int), b1 - 1)
        by = np.minimum((x[..., 1] * b2).astype(int), b2 - 1)
        return np.asarray(mu)[bx + b1 * by]

    return HeatProblem(pts, cells, k, lambda x, mu: np.ones(x.shape[:-1]),
                       np.tile([0.1, 10.0], (b1 * b2, 1)), name="thermal_block",
                       coercivity_lb=MinTheta(tuple([1.0] * (b1 * b2))))
