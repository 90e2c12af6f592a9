"""PETSc helpers: options under a prefix, matrices preallocated from COO patterns, scatters."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
from petsc4py import PETSc

__all__ = ["coo_matrix", "ghost_scatter", "options_pushed", "pop_options", "push_options",
           "to_petsc_int"]


def to_petsc_int(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=PETSc.IntType)


def push_options(prefix: str, defaults: Mapping[str, object], case: Mapping[str, object]) -> list:
    """Insert options ``-<prefix><key>`` into the PETSc database unless already set.

    Precedence: command line (already in the database) > case file > defaults.
    Returns the names inserted here, to remove with :func:`pop_options` after
    ``setFromOptions`` (so that one solver's case options do not leak into another).
    """
    opts = PETSc.Options()
    inserted = []
    for source in (case, defaults):
        for key, value in source.items():
            name = prefix + str(key).lstrip("-")
            if opts.hasName(name):
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            opts.setValue(name, "" if value is None else str(value))
            inserted.append(name)
    return inserted


def pop_options(names: list) -> None:
    opts = PETSc.Options()
    for name in names:
        opts.delValue(name)


@contextmanager
def options_pushed(prefix: str, defaults: Mapping[str, object],
                   case: Mapping[str, object]) -> Iterator[None]:
    """The options of :func:`push_options` in the database for the duration of the block.

    Use it around ``setFromOptions`` **and around every preconditioner set-up**
    (``KSP.setUp``, or a ``KSP.solve`` that sets the preconditioner up): the inner solvers
    a preconditioner creates at its set-up read their options then (``sub_*`` of ASM and
    block Jacobi, ``mg_levels_*`` of GAMG); options removed right after ``setFromOptions``
    would silently be ignored there (an ASM asked for ``sub_pc_type cholesky`` ran ILU(0)).
    """
    inserted = push_options(prefix, defaults, case)
    try:
        yield
    finally:
        pop_options(inserted)


def coo_matrix(comm, n_local: int, rows: np.ndarray, cols: np.ndarray, *, bs: int = 3
               ) -> PETSc.Mat:
    """An MPIAIJ (SeqAIJ on one rank) matrix whose pattern is exactly the given COO entries.

    ``rows`` / ``cols`` are global indices, possibly off-process and repeated; values are
    later set with ``setValuesCOO`` in the same order (repeats are summed). PETSc
    derives the exact diagonal/off-diagonal preallocation from the pattern.
    """
    A = PETSc.Mat().create(comm=comm)
    A.setSizes(((n_local, PETSc.DETERMINE), (n_local, PETSc.DETERMINE)), bsize=bs)
    A.setType(PETSc.Mat.Type.AIJ)
    A.setPreallocationCOO(to_petsc_int(rows), to_petsc_int(cols))
    A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
    return A


def ghost_scatter(x: PETSc.Vec, indices: np.ndarray) -> tuple[PETSc.Scatter, PETSc.Vec]:
    """A scatter from global vector ``x`` to a sequential vector of its entries ``indices``."""
    local = PETSc.Vec().createSeq(len(indices), comm=PETSc.COMM_SELF)
    is_from = PETSc.IS().createGeneral(to_petsc_int(indices), comm=PETSc.COMM_SELF)
    sc = PETSc.Scatter().create(x, is_from, local, None)
    return sc, local
