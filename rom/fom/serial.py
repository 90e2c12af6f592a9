"""Serial (scipy) assembly from element arrays: used by the kernel tests and benchmarks.

The distributed PETSc assembly is in :mod:`rom.fom.assembly`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["assemble_matrix", "assemble_vector", "element_dofs"]


def element_dofs(cells: np.ndarray) -> np.ndarray:
    """Global dofs (n_el, 3 n_nodes) of elements, node-major (dof = 3 node + component)."""
    return (3 * cells[:, :, None] + np.arange(3)).reshape(len(cells), -1)


def assemble_matrix(dofs: list[np.ndarray], Ke: list[np.ndarray], n_dofs: int) -> sp.csr_matrix:
    """Sum element matrices Ke[i] (n_el, k, k) at dofs[i] (n_el, k) into a CSR matrix."""
    rows = np.concatenate([np.repeat(d, d.shape[1], axis=1).ravel() for d in dofs])
    cols = np.concatenate([np.tile(d, (1, d.shape[1])).ravel() for d in dofs])
    vals = np.concatenate([k.ravel() for k in Ke])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_dofs, n_dofs))


def assemble_vector(dofs: list[np.ndarray], fe: list[np.ndarray], n_dofs: int) -> np.ndarray:
    """Sum element vectors fe[i] (n_el, k) at dofs[i] (n_el, k) into (n_dofs,)."""
    out = np.zeros(n_dofs)
    for d, f in zip(dofs, fe):  # loop over element blocks (types), not elements
        out += np.bincount(d.ravel(), weights=np.asarray(f).ravel(), minlength=n_dofs)
    return out
