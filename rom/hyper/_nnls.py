"""A warm-started Lawson–Hanson nonnegative least-squares solver for small dense problems.

The greedy ECM adds one column per step to a problem whose previous solution is
already optimal; restarting ``scipy.optimize.nnls`` from zero would redo every
previous step. Here the solver starts from the previous feasible point and its
passive (positive) set, so a greedy step usually costs one least-squares solve, and the
QR factorization of the passive columns is updated (:class:`PassiveQR`) rather than
recomputed, so that solve is a triangular solve.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["PassiveQR", "nnls_warm"]


def _ls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least-squares solution of ``A z = b`` (complete orthogonal factorization, gelsy)."""
    if A.shape[1] == 0:
        return np.zeros(0)
    return sla.lstsq(A, b, lapack_driver="gelsy", check_finite=False)[0]


class PassiveQR:
    """Economic QR ``A[:, cols] = W T`` of the passive columns of an NNLS, kept up to date.

    A column entering or leaving costs an update (``scipy.linalg.qr_insert`` /
    ``qr_delete``: O(k p)) instead of a factorization (O(k p^2)), and a least-squares solve
    is one triangular solve. ``cols`` are column indices of the matrix given to
    :func:`nnls_warm`; the owner re-maps them when that matrix's columns are re-indexed.
    """

    #: a column whose distance to the span of the others is below this (relative) does not
    #: enter (it adds nothing to the least squares; its dual is at round-off)
    RCOND = 1e-12

    def __init__(self):
        self.W, self.T, self.cols = np.zeros((0, 0)), np.zeros((0, 0)), []

    def sync(self, A: np.ndarray, passive: np.ndarray) -> bool:
        """Make ``cols`` the passive set of A (updates; refactor if needed). False if singular.

        A must be the matrix of the previous calls, possibly with new columns and new rows
        at the bottom that are zero in the factored columns (``R = Q^T G_S`` when Q grows).
        """
        k = A.shape[0]
        if self.W.shape[0] < k:                    # new rows of A, zero in the old columns
            self.W = np.vstack([self.W, np.zeros((k - self.W.shape[0], self.W.shape[1]))])
        want = set(np.flatnonzero(passive).tolist())
        new = sorted(want - set(self.cols))
        if len(new) > max(16, len(self.cols)):      # e.g. a warm start: one factorization
            return self.refactor(A, sorted(want))   # instead of many column updates
        for pos in sorted((i for i, j in enumerate(self.cols) if j not in want), reverse=True):
            self.delete(pos)
        for j in new:
            if not self.insert(A, j):
                return self.refactor(A, sorted(want))
        return True

    def copy(self) -> PassiveQR:
        new = PassiveQR()
        new.W, new.T, new.cols = self.W.copy(), self.T.copy(), list(self.cols)
        return new

    def refactor(self, A: np.ndarray, cols: list[int]) -> bool:
        self.cols = list(cols)
        if len(cols) > A.shape[0]:
            self.__init__()
            return False
        self.W, self.T = np.linalg.qr(A[:, cols])
        d = np.abs(np.diag(self.T))
        if d.size and d.min() <= self.RCOND * d.max():
            self.__init__()
            return False
        return True

    def insert(self, A: np.ndarray, j: int) -> bool:
        p = len(self.cols)
        if p >= A.shape[0]:                     # A's columns live in a p-dimensional space
            return False
        if p == 0:
            nu = float(np.linalg.norm(A[:, j]))
            if nu == 0.0:
                return False
            self.W, self.T = (A[:, j] / nu)[:, None], np.array([[nu]])
        else:
            try:
                self.W, self.T = sla.qr_insert(self.W, self.T, A[:, j], p, which="col",
                                               rcond=self.RCOND, check_finite=False)
            except sla.LinAlgError:
                return False
        self.cols.append(j)
        return True

    def delete(self, pos: int) -> None:
        if len(self.cols) == 1:
            self.__init__()
            return
        W, T = sla.qr_delete(self.W, self.T, pos, which="col", check_finite=False)
        p = T.shape[1]                          # (a square W was taken as a full QR)
        self.W, self.T = W[:, :p], T[:p]
        del self.cols[pos]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Least-squares weights of ``cols`` (in the order of ``cols``)."""
        if not self.cols:
            return np.zeros(0)
        return sla.solve_triangular(self.T, self.W.T @ b, check_finite=False)


def nnls_warm(A: np.ndarray, b: np.ndarray, x0: np.ndarray | None = None,
              add: int | None = None, *, dual_tol: float | None = None,
              max_iter: int | None = None, qr: PassiveQR | None = None,
              exclude: np.ndarray | None = None) -> np.ndarray:
    """Solve ``min ||A x - b||_2`` subject to ``x >= 0`` (Lawson–Hanson active set).

    Parameters
    ----------
    A : (k, n) dense matrix, columns = candidate points
    b : (k,) target
    x0 : (n,) feasible start, ``x0 >= 0``; its positive entries form the initial
        passive set. Optimal for its support in the greedy use (then one new
        column costs one least-squares solve). Default zero.
    add : index of a column to put in the passive set at once (the greedy's new point)
    dual_tol : a zero variable enters when its dual ``(A^T (b - A x))_j`` exceeds this;
        default ``10 max(k, n) eps ||A||_1 ||b||``
    max_iter : bound on the inner iterations, default ``3 n + 10``
    qr : a :class:`PassiveQR` of (ideally) the passive set of ``x0`` to update instead of
        factoring the passive columns at every least-squares solve; left holding the
        final passive set. Without it (or if it turns singular), each solve is a
        factorization (:func:`_ls`).
    exclude : (n,) bool, columns that never enter (their ``x0`` must be 0): the problem
        is that of the other columns, without copying them out of A

    Returns
    -------
    x : (n,) nonnegative solution (exact zeros outside the passive set)
    """
    k, n = A.shape
    x = np.zeros(n) if x0 is None else np.maximum(np.asarray(x0, dtype=float), 0.0)
    passive = x > 0
    if add is not None:
        passive[add] = True
    if dual_tol is None:
        scale = np.abs(A).sum(axis=0).max(initial=0.0) * np.linalg.norm(b)
        dual_tol = 10.0 * max(k, n) * np.finfo(float).eps * scale
    max_iter = 3 * n + 10 if max_iter is None else max_iter
    if qr is not None and not qr.sync(A, passive):
        qr = None
    blocked = np.zeros(n, dtype=bool) if exclude is None else np.array(exclude, dtype=bool)
    for _ in range(max_iter):
        # inner loop: least squares on the passive set, back-tracking into the feasible set
        while passive.any():
            z = np.zeros(n)
            if qr is None:
                z[passive] = _ls(A[:, passive], b)
            else:
                z[qr.cols] = qr.solve(b)
            bad = passive & (z <= 0)
            if not bad.any():
                x = z
                break
            ratio = np.full(n, np.inf)
            denom = x[bad] - z[bad]                     # >= 0 since x >= 0 >= z there
            ratio[bad] = np.where(denom > 0, x[bad] / np.where(denom > 0, denom, 1.0), 0.0)
            i = int(np.argmin(ratio))
            x = x + ratio[i] * (z - x)
            x[i] = 0.0                                  # the blocking variable leaves exactly
            gone = passive & (x <= 0)
            passive &= ~gone
            x[~passive] = 0.0
            if qr is not None:
                for pos in sorted((p for p, j in enumerate(qr.cols) if gone[j]), reverse=True):
                    qr.delete(pos)
        dual = A.T @ (b - A @ x)
        dual[passive | blocked] = -np.inf
        j = int(np.argmax(dual)) if n else 0
        if n == 0 or dual[j] <= dual_tol:
            return x
        if qr is not None and not qr.insert(A, j):
            blocked[j] = True                           # in the span of the passive columns
            continue
        passive[j] = True
    return x


def _removal_bounds(R: np.ndarray, c: np.ndarray, beta2: float) -> np.ndarray:
    """Lower bounds on ``min_{x >= 0} ||R_{-j} x - c||^2 + beta2`` for every column j.

    The unconstrained least squares without column j: ``rho^2 + z_j^2 / (R^T R)^{-1}_jj``
    with z the least-squares solution on all columns and rho its residual. Zero for every
    column when R has (numerically) dependent columns (then removing one may cost nothing).
    """
    s = R.shape[1]
    if s == 0 or R.shape[0] < s:
        return np.zeros(s)
    Qr, T = np.linalg.qr(R)
    d = np.abs(np.diag(T))
    if d.min() <= 1e-10 * d.max():
        return np.zeros(s)
    Tinv = sla.solve_triangular(T, np.eye(s), check_finite=False)
    z = Tinv @ (Qr.T @ c)
    rho2 = float(np.sum((R @ z - c) ** 2)) + beta2
    return rho2 + z**2 / np.einsum("ij,ij->i", Tinv, Tinv)


class _Buffer:
    """A 2-D float array that grows by columns (and rows) with amortized doubling."""

    def __init__(self, rows: int, cap: int = 64):
        self.buf = np.zeros((rows, cap))
        self.rows, self.cols = rows, 0

    @property
    def v(self) -> np.ndarray:
        return self.buf[:self.rows, :self.cols]

    def _reserve(self, rows: int, cols: int) -> None:
        R, C = self.buf.shape
        if rows > R or cols > C:
            new = np.zeros((max(rows, 2 * R) if rows > R else R,
                            max(cols, 2 * C) if cols > C else C))
            new[:self.rows, :self.cols] = self.v
            self.buf = new

    def add_columns(self, X: np.ndarray) -> None:
        self._reserve(self.rows, self.cols + X.shape[1])
        self.buf[:self.rows, self.cols:self.cols + X.shape[1]] = X
        self.cols += X.shape[1]

    def add_rows(self, n: int) -> None:
        """Append n zero rows."""
        self._reserve(self.rows + n, self.cols)
        self.buf[self.rows:self.rows + n, :self.cols] = 0.0
        self.rows += n

    def keep_columns(self, mask: np.ndarray) -> None:
        if mask.all():
            return
        kept = self.v[:, mask]
        self.buf[:self.rows, :kept.shape[1]] = kept
        self.cols = kept.shape[1]


class Selection:
    """The selected points of the ECM greedy and their NNLS problem (replicated on every rank).

    Keeps the global indices, the true integrand columns ``G_S`` (m x |S|), the weights
    x, and an orthonormal basis ``Q`` (m x q) of every column added so far with
    ``R = Q^T G_S`` (q x |S|). The NNLS ``min ||G_S x - b||`` is solved as
    ``min ||R x - Q^T b||`` (same solution, q << m); a new column costs one Gram–Schmidt
    step (done twice when it cancels) instead of a factorization, ``Q^T b`` is extended by
    the new basis vectors only, and the NNLS updates a QR of its passive columns of R
    (:class:`PassiveQR`). Dropped points stay as dead columns of weight 0, which the NNLS
    excludes without copying R, until they exceed an eighth of the live ones (then the
    buffers are compacted); a dropped point selected again is revived with its column.
    """

    def __init__(self, m: int):
        self._idx = np.zeros(0, dtype=np.int64)
        self._x = np.zeros(0)
        self._kept = np.zeros(0, dtype=bool)
        self._live = np.zeros(0, dtype=bool)
        self._G, self._Q, self._R = _Buffer(m), _Buffer(m), _Buffer(0)
        self._b, self._Qb = None, np.zeros(0)
        self._r1 = np.zeros(0)                  # 1-norms of R's columns (fixed once added)
        self._fac = PassiveQR()                 # of the passive columns (buffer positions)
        self._generation = 0                    # bumped when the basis is rebuilt

    idx = property(lambda self: self._idx[self._live], doc="global indices of the live points")
    x = property(lambda self: self._x[self._live], doc="weights of the live points")

    def start_from(self, x: np.ndarray) -> None:
        """Set the weights of the live points (in their order; negative ones become 0): the
        feasible start of the next :meth:`solve`, e.g. the weights of an earlier rule at
        warm-start points, whose positive set is then its first passive set."""
        x = np.asarray(x, dtype=float)
        if x.shape != (int(np.count_nonzero(self._live)),):
            raise ValueError(f"start_from needs one weight per live point "
                             f"({int(np.count_nonzero(self._live))}), got shape {x.shape}")
        self._x[self._live] = np.maximum(x, 0.0)

    def residual(self, b: np.ndarray) -> np.ndarray:
        """``b - G_S x`` (m,)."""
        return b - self._G.v @ self._x

    def prepare(self, A: np.ndarray) -> tuple:
        """Project columns out of the current basis, for a later :meth:`append` of some of
        them (``prepared=``): the basis is read for all of them at once (matrix products),
        not per column; again for the columns that cancelled (DGKS: a pass that removes more
        than 1 - 1/sqrt(2) of the norm is repeated). Valid until the buffers are compacted
        (:meth:`prune`)."""
        Q = self._Q.v
        C = Q.T @ A
        V = A - Q @ C
        na = np.linalg.norm(A, axis=0)
        prev, nv = na, np.linalg.norm(V, axis=0)
        for _ in range(2):
            again = np.flatnonzero((nv < 0.7071 * prev) & (nv > 0))
            if again.size == 0 or Q.shape[1] == 0:
                break
            C2 = Q.T @ V[:, again]
            V[:, again] -= Q @ C2
            C[:, again] += C2
            prev = np.zeros_like(nv)
            prev[again] = nv[again]
            nv[again] = np.linalg.norm(V[:, again], axis=0)
        return self._generation, Q.shape[1], C, V, na

    def _commit(self, q0: int, C: np.ndarray, V: np.ndarray, na: np.ndarray) -> None:
        """Add prepared columns (projected out of the first q0 basis vectors): Gram–Schmidt
        against the basis vectors added since, one column at a time (DGKS), and once more
        against the whole basis when that removed nearly all of the column (its rounding
        would otherwise show in the new direction)."""
        for j in range(V.shape[1]):
            Q = self._Q.v
            col = np.zeros(Q.shape[1])
            col[:q0] = C[:, j]
            v = V[:, j].copy()
            n = float(np.linalg.norm(v))
            W = Q[:, q0:]
            for _ in range(3):
                if W.shape[1] == 0 or n == 0.0:
                    break
                d = W.T @ v
                v -= W @ d
                col[q0:] += d
                prev, n = n, float(np.linalg.norm(v))
                if n >= 0.7071 * prev:
                    break
            prev = float(np.linalg.norm(V[:, j]))
            for _ in range(2):
                if not 0.0 < n < 1e-3 * prev:
                    break
                d = Q.T @ v
                v -= Q @ d
                col += d
                prev, n = n, float(np.linalg.norm(v))
            if n > 1e-13 * na[j]:
                self._Q.add_columns((v / n)[:, None])
                self._R.add_rows(1)
                col = np.append(col, n)
            self._R.add_columns(col[:, None])
            self._r1 = np.append(self._r1, np.abs(col).sum())

    def _extend_basis(self, A: np.ndarray, chunk: int = 32) -> None:
        for s in range(0, A.shape[1], chunk):
            self._commit(*self.prepare(A[:, s:s + chunk])[1:])

    def append(self, idx: np.ndarray, G: np.ndarray, kept: bool, prepared: tuple | None = None,
               ) -> int:
        """Add points (global indices, not live) with their columns, weights 0.

        A dropped point selected again is revived (its column, and R's, are still there).
        ``prepared``: :meth:`prepare` of a set of columns, restricted to those of ``idx``
        (``(generation, q0, C, V, norms)`` with the columns of G); ignored if stale.
        Returns the position of the first of ``idx`` among the live points.
        """
        idx = np.asarray(idx, dtype=np.int64)
        dead = np.flatnonzero(~self._live)
        back = np.zeros(idx.size, dtype=bool)
        if dead.size:
            hit = np.isin(self._idx[dead], idx)
            if hit.any():
                j = dead[hit]
                self._live[j], self._x[j], self._kept[j] = True, 0.0, kept
                back = np.isin(idx, self._idx[j])
        new = ~back
        n = int(np.count_nonzero(new))
        if n:
            self._idx = np.concatenate([self._idx, idx[new]])
            self._G.add_columns(G[:, new])
            self._x = np.concatenate([self._x, np.zeros(n)])
            self._kept = np.concatenate([self._kept, np.full(n, kept)])
            self._live = np.concatenate([self._live, np.ones(n, dtype=bool)])
            if prepared is not None and prepared[0] == self._generation:
                _, q0, C, V, na = prepared
                self._commit(q0, C[:, new], V[:, new], na[new])
            else:
                self._extend_basis(G[:, new])
        first = int(np.flatnonzero(self._live & (self._idx == idx[0]))[0])
        return int(np.count_nonzero(self._live[:first]))

    def _qtb(self, b: np.ndarray) -> np.ndarray:
        """``Q^T b``, extended by the new basis vectors only when b is the same as before."""
        if self._b is not b or self._Qb.size > self._Q.cols:
            self._b, self._Qb = b, np.zeros(0)
        if self._Qb.size < self._Q.cols:
            self._Qb = np.concatenate([self._Qb, self._Q.v[:, self._Qb.size:].T @ b])
        return self._Qb

    def solve(self, b: np.ndarray, add: int | None = None) -> None:
        """Nonnegative least squares on the live columns, warm-started from x (and from the
        QR factorization of the previous passive columns, updated)."""
        live = self._live
        if add is not None:                                          # live position -> buffer
            add = int(np.flatnonzero(live)[add])
        Qb = self._qtb(b)
        # on the whole buffer, dead columns excluded: no copy of R
        self._x = nnls_warm(self._R.v, Qb, self._x, add, qr=self._fac,
                            dual_tol=self._dual_tol(Qb), exclude=~live)

    def _dual_tol(self, Qb: np.ndarray) -> float:
        """nnls_warm's default dual tolerance on the live columns of R (from the 1-norms
        kept at commit, not a pass over R)."""
        live = self._live
        return (10.0 * max(Qb.size, int(live.sum())) * np.finfo(float).eps
                * float(self._r1[live].max(initial=0.0)) * float(np.linalg.norm(Qb)))

    def fitted(self) -> np.ndarray:
        """``Q^T G_S x`` (q,): the coordinates of ``G_S x``, which lies in ``span(Q)``."""
        return self._R.v @ self._x

    def basis(self, start: int = 0) -> np.ndarray:
        """The orthonormal basis vectors ``Q[:, start:]`` (m, q - start), a view."""
        return self._Q.v[:, start:]

    def target_coordinates(self, b: np.ndarray) -> np.ndarray:
        """``Q^T b`` (q,) (extended by the new basis vectors only while b is the same)."""
        return self._qtb(b)

    def eliminate(self, b: np.ndarray, max_res: float) -> tuple[np.ndarray, int]:
        """Point elimination after the greedy, keeping ``||G_S x - b|| <= max_res``.

        Removes points whose removal, with the NNLS re-solved on the other points
        (warm-started, the QR of the passive columns updated), keeps the residual within
        ``max_res``. The candidates are tried in the order of a lower bound on that
        residual (the unconstrained least squares without the point, computed once per
        pass); a pass goes down the list, removing every point that can go, and stops at
        the first bound above ``max_res`` (a bound stays valid after other removals:
        fewer points never fit better). Passes repeat, with new bounds, until one removes
        nothing. Kept points are never removed. At the end no point can be removed, so the
        points of positive weight have linearly independent columns (a Carathéodory step,
        which keeps the residual, would remove one): at most rank(G) of them.

        Returns
        -------
        (removed global indices, number of NNLS trials)
        """
        lim2 = max_res**2
        removed, trials = [], 0
        Qb = self._qtb(b)
        beta2 = float(np.sum((b - self._Q.v @ Qb) ** 2))            # part no column reaches
        R = self._R.v                      # (no compaction below: buffer positions hold)
        while True:
            pos = np.flatnonzero(self._live)
            cand = np.flatnonzero(~self._kept[pos])
            if cand.size == 0:
                break
            bound = _removal_bounds(R[:, pos], Qb, beta2)
            order = cand[np.lexsort((self._idx[pos[cand]], bound[cand]))]
            n_before = len(removed)
            for j in pos[order[bound[order] <= lim2]]:             # buffer positions
                if not self._live[j]:
                    continue                     # set to zero by an earlier re-solve
                x0 = self._x.copy()
                x0[j] = 0.0
                exclude = ~self._live
                exclude[j] = True
                fac = self._fac.copy()
                z = nnls_warm(R, Qb, x0, qr=fac, exclude=exclude,
                              dual_tol=self._dual_tol(Qb))
                trials += 1
                if float(np.sum((R @ z - Qb) ** 2)) + beta2 <= lim2:
                    self._x, self._fac = z, fac
                    removed.extend(self.prune(compact=False))     # j, and any set to zero
            if len(removed) == n_before:
                break
        return np.asarray(removed, dtype=np.int64), trials

    def prune(self, compact: bool = True) -> np.ndarray:
        """Drop zero-weight points (except kept ones); return the dropped global indices.
        ``compact=False``: never compact the buffers (positions stay valid)."""
        drop = self._live & (self._x <= 0) & ~self._kept
        dropped = self._idx[drop]           # before _compact, which shortens the arrays
        self._live &= ~drop
        self._x[drop] = 0.0
        n_live = int(np.count_nonzero(self._live))
        if compact and self._live.size - n_live > max(16, n_live // 8):
            self._compact()
        return dropped

    def _compact(self) -> None:
        live = self._live
        self._G.keep_columns(live)
        self._R.keep_columns(live)
        self._r1 = self._r1[live]
        self._idx, self._x, self._kept = self._idx[live], self._x[live], self._kept[live]
        self._live = self._live[live]
        new_pos = np.cumsum(live) - 1
        self._fac.cols = new_pos[self._fac.cols].tolist()
        if self._Q.cols > 2 * self._live.size + 64:      # the basis of dropped columns grew
            self._Q, self._R, self._r1 = _Buffer(self._G.rows), _Buffer(0), np.zeros(0)
            self._generation += 1
            self._b, self._fac = None, PassiveQR()
            self._extend_basis(self._G.v)
