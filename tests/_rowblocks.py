"""Shared test data for the distributed linear-algebra tests: row splits and test matrices."""
from __future__ import annotations

import numpy as np

from rom.parallel import even_split


def offsets(n: int, size: int, uneven: bool) -> np.ndarray:
    """Even split, or (size > 1) an uneven one where rank 0 has no rows."""
    if not uneven or size == 1:
        return even_split(n, size)
    weights = np.arange(size, dtype=float)          # 0, 1, 2, ...
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[-1] += n - counts.sum()
    return np.concatenate([[0], np.cumsum(counts)])


def rows(A, comm, uneven=False):
    """This rank's block of rows of the global array ``A``."""
    off = offsets(A.shape[0], comm.size, uneven)
    return A[off[comm.rank]:off[comm.rank + 1]]


def matrix(n: int, s: np.ndarray, seed: int = 0) -> np.ndarray:
    """U diag(s) V^T with random orthonormal U (n x m), V (m x m); same on every rank."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((s.size, s.size)))[0]
    return (U * s) @ V.T


def mass_matrix(n: int):
    """P1 mass matrix of [0, 1] on n nodes (tridiagonal, SPD), scipy CSR."""
    import scipy.sparse as sp
    h = 1.0 / (n - 1)
    main = np.full(n, 4 * h / 6)
    main[[0, -1]] = 2 * h / 6
    off = np.full(n - 1, h / 6)
    return sp.diags([off, main, off], [-1, 0, 1], format="csr")
