"""Steady heat conduction on the mechanical mesh: -div(k(T) grad T) = 0.

Fixed temperatures on groups, convective exchange ``q = h (T - T_ext)`` on surface
groups; a fixed value or ``T_ext`` is a number or a function of the coordinates
(evaluated at the nodes, resp. at the facet quadrature points). A temperature-dependent
conductivity is handled by Picard iterations (k evaluated at the previous iterate;
symmetric CG + GAMG solves).
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from ..materials.base import Table
from ..parallel import as_comm
from .discretization import ElementSet
from .elements import FACETS
from .mesh import FEMesh
from .partition import partition_mesh
from .petsc_tools import coo_matrix, options_pushed, to_petsc_int
from .solver import ConvergenceError

__all__ = ["solve_heat"]


def solve_heat(mesh: FEMesh, conductivity: Table, *, fixed=(), convection=(),
               comm: MPI.Comm | None = None, petsc_options=None, prefix: str = "heat_",
               rtol: float = 1e-10, max_iter: int = 50) -> np.ndarray:
    """Steady temperature (n_nodes,) [K] at every node, on every rank (mesh numbering).

    Parameters
    ----------
    mesh : the mesh
    conductivity : k(T) [W/(m K)]
    fixed : sequence of (group, T), T [K] a number or a function of node coordinates
        (m, 3) [m] -> (m,) [K]
    convection : sequence of (surface group, h [W/(m^2 K)], T_ext), T_ext [K] a number or
        a function of points (m, 3) [m] -> (m,) [K], evaluated at the facet quadrature points
    comm : communicator
    petsc_options : options under ``prefix`` (default CG + GAMG)
    rtol : Picard tolerance on the temperature change (relative)
    """
    comm = as_comm(comm)
    rank = comm.rank
    part = partition_mesh(mesh, comm)
    es = ElementSet(mesh, part.elements(rank))
    n2 = part.new_of_old
    start, end = int(part.node_offsets[rank]), int(part.node_offsets[rank + 1])
    edofs = [n2[b.cells] for b in es.blocks]
    # convection facets: assembled by the owner of their first node
    conv = []
    for group, h, T_ext in convection:
        for ftype, facets in mesh.surface(group, what="convection group").items():
            ft = FACETS[ftype]
            if callable(T_ext):  # on every facet, so that a formula error is raised on every rank
                Xq = np.einsum("qa,fad->fqd", ft.N, mesh.points[facets])
                Tq = np.asarray(T_ext(Xq.reshape(-1, 3)), float).reshape(len(facets), -1)
            else:
                Tq = np.full((len(facets), len(ft.weights)), float(T_ext))
            keep = part.node_part[facets[:, 0]] == rank
            mine, Tq = facets[keep], Tq[keep]
            X = mesh.points[mine]
            T = np.einsum("qad,fai->fqdi", ft.dN, X)
            dA = np.linalg.norm(np.cross(T[:, :, 0], T[:, :, 1]), axis=-1) * ft.weights
            M = h * np.einsum("fq,qa,qb->fab", dA, ft.N, ft.N)
            f = h * np.einsum("fq,fq,qa->fa", Tq, dA, ft.N)
            conv.append((n2[mine], M, f))
    rows = [np.repeat(d, d.shape[1], axis=1).ravel() for d in edofs + [c[0] for c in conv]]
    cols = [np.tile(d, (1, d.shape[1])).ravel() for d in edofs + [c[0] for c in conv]]
    A = coo_matrix(comm, end - start, np.concatenate(rows), np.concatenate(cols), bs=1)
    b, x = A.createVecs()
    fidx = [c[0].ravel() for c in conv]
    fval = [c[2].ravel() for c in conv]
    if fidx:
        i, inv = np.unique(np.concatenate(fidx), return_inverse=True)
        b.setValues(to_petsc_int(i), np.bincount(inv, weights=np.concatenate(fval)),
                    addv=PETSc.InsertMode.ADD)
    b.assemble()
    own = part.node_part == rank
    drow, dval = [], []
    for group, value in fixed:
        nodes = mesh.group(group, what="fixed-temperature group").nodes
        vals = (np.asarray(value(mesh.points[nodes]), float).reshape(len(nodes))
                if callable(value) else np.full(len(nodes), float(value)))
        drow.append(n2[nodes[own[nodes]]])
        dval.append(vals[own[nodes]])
    drow = np.concatenate(drow) if drow else np.zeros(0, np.int64)
    dval = np.concatenate(dval) if dval else np.zeros(0)
    ksp = PETSc.KSP().create(comm=comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(A)
    options = (prefix, {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12},
               petsc_options or {})
    with options_pushed(*options):
        ksp.setFromOptions()
    # first Picard iterate: k at the mean imposed temperature
    T_nodes = np.full(mesh.n_nodes, comm.allreduce(float(dval.sum()))
                      / max(comm.allreduce(len(dval)), 1))
    constant_k = np.ptp(conductivity.values) == 0
    for it in range(max_iter):
        k_qp = conductivity(es.at_points(T_nodes))
        Ke = [np.einsum("eq,eqai,eqbi->eab", b_.wdetJ * k_qp[b_.rows].reshape(b_.wdetJ.shape),
                        b_.dNdx, b_.dNdx) for b_ in es.blocks]
        A.setValuesCOO(np.concatenate([k.ravel() for k in Ke] + [c[1].ravel() for c in conv]),
                       PETSc.InsertMode.INSERT)
        rhs = b.copy()
        x.set(0.0)
        if len(drow):
            x.setValues(to_petsc_int(drow), dval)
        x.assemble()
        A.zeroRowsColumns(to_petsc_int(drow), diag=1.0, x=x, b=rhs)
        with options_pushed(*options):         # the set-up reads the inner solvers' options
            ksp.solve(rhs, x)
        if ksp.getConvergedReason() < 0:
            raise ConvergenceError(f"heat: linear solver diverged (reason "
                                   f"{ksp.getConvergedReason()})")
        new = np.concatenate(comm.allgather(x.getArray(readonly=True).copy()))[n2]
        change = np.abs(new - T_nodes).max() / max(np.abs(new).max(), 1.0)
        T_nodes = new
        rhs.destroy()
        if change <= rtol or constant_k:
            break
    else:
        raise ConvergenceError(f"heat: Picard iterations did not converge in {max_iter}")
    for obj in (ksp, A, b, x):
        obj.destroy()
    return T_nodes
