"""Offline builder of the reduced model from a snapshot store written by ``python -m rom.fom``.

Distributed (docs/online.md, "Offline stage"): each rank reads only its row block of the
store (nodal fields by a block of nodes, quadrature fields by a block of whole elements'
integration points, :class:`Partition`), the PODs run on the distributed rows
(:func:`rom.pod`), the Q-DEIM points and the ECM on the distributed integration points
(:func:`rom.hyper.qdeim`, :func:`rom.hyper.ecm_fields`), the small data at the reduced
points are summed from their owners onto every rank, and rank 0 writes the file, the
full-size bases gathered in bounded blocks of rows in global order
(:func:`write_model`). The file does not depend on the number of ranks (up to
round-off; tested at 1, 2 and 3 ranks).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..fom import kernels
from ..fom.config import LoadingConfig, MaterialConfig
from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh
from ..fom.setup import loads_from_config, material_from_config
from ..hyper import ecm_fields, qdeim
from ..io.atomic import atomic_h5, stamp_provenance
from ..io.mesh import read_mesh
from ..io.snapshots import SnapshotStore
from ..linalg import pod
from ..parallel import (UserError, allreduce_sum, as_comm, even_split, raise_if_failed,
                        rank0_print, row_offsets)
from .checks import case_hashes
from .config import OnlineConfig
from .model import SCHEMA, SCHEMA_VERSION, ReducedModel, material_to_json, write_layout
from .points import _locate, point_data

__all__ = ["Partition", "build_from_arrays", "build_reduced_model", "external_forces",
           "pod_method", "read_blocks", "restrict", "write_model"]

#: POD energy tolerances below this use TSQR (stable to eps); above, the method of
#: snapshots (one m x m Gram Allreduce), whose round-off floor sqrt(m eps) s_1 (~1e-7 s_1)
#: is then far below the truncation
TSQR_BELOW = 1e-5
#: bytes of one block of rows gathered on rank 0 when writing the file
WRITE_BYTES = 1 << 27
#: full-size arrays of the file that are distributed by rows during the build
DISTRIBUTED = ("phi", "psi_p", "psi_z", "sigma", "f_unit", "weights_fe")


def pod_method(rtol: float) -> str:
    """POD method of a basis with energy tolerance ``rtol`` (see :data:`TSQR_BELOW`)."""
    return "tsqr" if rtol < TSQR_BELOW else "snapshots"


# ---------------------------------------------------------------- partition
@dataclass(frozen=True)
class Partition:
    """Rows of this rank: a block of nodes and a block of whole elements' points.

    Attributes
    ----------
    nodes : (size + 1,) node offsets (even split); rank r holds nodes ``nodes[r]:nodes[r+1]``
        i.e. dofs / displacement rows ``3 nodes[r] : 3 nodes[r+1]``
    points : (size + 1,) integration-point offsets, an even split moved up to the next
        element start, so that every rank holds whole elements
    elements : global element numbers of this rank's points
    rank : this rank
    """

    nodes: np.ndarray
    points: np.ndarray
    elements: np.ndarray
    rank: int

    @property
    def node_range(self) -> tuple[int, int]:
        return int(self.nodes[self.rank]), int(self.nodes[self.rank + 1])

    @property
    def point_range(self) -> tuple[int, int]:
        return int(self.points[self.rank]), int(self.points[self.rank + 1])

    @classmethod
    def of(cls, mesh: FEMesh, size: int, rank: int) -> Partition:
        """The partition of ``mesh`` over ``size`` ranks, seen from ``rank``."""
        starts, ids, off = [], [], 0
        for b in mesh.blocks:  # loop over element blocks (types)
            starts.append(off + np.arange(len(b.ids), dtype=np.int64) * b.etype.n_qp)
            ids.append(np.asarray(b.ids, np.int64))
            off += len(b.ids) * b.etype.n_qp
        starts = np.concatenate(starts + [[off]]).astype(np.int64)
        ids = np.concatenate(ids)
        points = starts[np.searchsorted(starts, even_split(off, size))]
        lo, hi = points[rank], points[rank + 1]
        mine = (starts[:-1] >= lo) & (starts[:-1] < hi)
        return cls(even_split(mesh.n_nodes, size), points, ids[mine], rank)


# ---------------------------------------------------------------- small distributed helpers
def _fetch_rows(local: np.ndarray, offsets: np.ndarray, wanted: np.ndarray,
                comm: MPI.Comm) -> np.ndarray:
    """Rows ``wanted`` (sorted global indices) of a row-distributed array (collective).

    Each rank asks the owners for the rows it needs (two ``Alltoallv``); returns
    ``(len(wanted),) + local.shape[1:]``.
    """
    wanted = np.asarray(wanted, np.int64)
    tail = local.shape[1:]
    if comm.size == 1:
        return local[wanted]
    width = int(np.prod(tail))
    size, rank = comm.size, comm.rank
    want = np.bincount(np.searchsorted(offsets, wanted, side="right") - 1,
                       minlength=size).astype(np.int64)
    give = np.empty(size, np.int64)
    comm.Alltoall(want, give)

    def displ(c):
        return np.concatenate([[0], np.cumsum(c)[:-1]])

    asked = np.empty(int(give.sum()), np.int64)
    comm.Alltoallv([wanted, want, displ(want), MPI.INT64_T], [asked, give, displ(give),
                                                              MPI.INT64_T])
    send = np.ascontiguousarray(local.reshape(local.shape[0], -1)[asked - offsets[rank]])
    recv = np.empty((wanted.size, width))
    comm.Alltoallv([send, give * width, displ(give * width), MPI.DOUBLE],
                   [recv, want * width, displ(want * width), MPI.DOUBLE])
    return recv.reshape((wanted.size,) + tail)


def _at_points(local: np.ndarray, p0: int, points: np.ndarray, comm: MPI.Comm) -> np.ndarray:
    """Rows ``points`` (global) of a point-distributed array starting at point ``p0``, on
    every rank: owners fill, one Allreduce sums (identical on every rank)."""
    out = np.zeros((points.size,) + local.shape[1:])
    mine = (points >= p0) & (points < p0 + local.shape[0])
    out[mine] = local[points[mine] - p0]
    return allreduce_sum(out, comm)


def _any(X: np.ndarray, comm: MPI.Comm) -> bool:
    return bool(comm.allreduce(bool(np.any(X)), op=MPI.LOR))


def _pod(X: np.ndarray, rtol: float, what: str, comm: MPI.Comm):
    if not _any(X, comm):
        raise UserError(f"online: the {what} snapshots are all zero (nothing to reduce; "
                        "is the case in the viscoplastic regime?)")
    r = pod(X, rtol=rtol, comm=comm, method=pod_method(rtol))
    return np.ascontiguousarray(r.modes), np.asarray(r.singular_values)


# ---------------------------------------------------------------- finite-element pieces
def _local_forces(mesh: FEMesh, loading: LoadingConfig, density: float, es: ElementSet,
                  node_part: np.ndarray, rank: int) -> np.ndarray:
    """This rank's contributions (3 n_nodes,) to the unit-amplitude external forces [N]."""
    loads = loads_from_config(loading, density)
    if any(d.value != 0.0 for d in loads.dirichlet):
        raise UserError("online: imposed displacements must be zero (the reduced basis "
                        "spans homogeneous Dirichlet conditions); use pressures instead")
    nodes, f = loads.pressure_forces(mesh, node_part, rank)
    out = np.zeros(3 * mesh.n_nodes)
    np.add.at(out, (3 * nodes[:, None] + np.arange(3)).ravel(), f.ravel())
    if loads.centrifugal is not None:
        b = loads.centrifugal.force_density(es.coordinates(), density)
        for blk, fe in zip(es.blocks, es.body_forces(b)):  # loop over element blocks
            np.add.at(out, blk.dofs.ravel(), fe.ravel())
    return out


def external_forces(mesh: FEMesh, loading: LoadingConfig, density: float) -> np.ndarray:
    """Nodal external forces of unit amplitude (3 n_nodes,) [N] (pressure, centrifugal)."""
    return _local_forces(mesh, loading, density, ElementSet(mesh),
                         np.zeros(mesh.n_nodes, np.int64), 0)


def _mode_strains(es: ElementSet, phi: np.ndarray, part: Partition, comm: MPI.Comm
                  ) -> np.ndarray:
    """Strains (n_modes, n_local_points, 6) of the modes at this rank's points.

    ``phi`` is this rank's node rows (3 n_local_nodes, n); the rows of the other nodes of
    the local elements are fetched from their owners.
    """
    n = phi.shape[1]
    nodes = es.nodes
    ph = _fetch_rows(phi.reshape(-1, 3, n), part.nodes, nodes, comm)    # (k, 3, n)
    out = np.empty((n, es.n_qp, 6))
    for b in es.blocks:  # loop over element blocks
        loc = np.searchsorted(nodes, b.cells)
        for i in range(n):  # loop over modes
            out[i, b.rows] = kernels.strains(b.dNdx, ph[loc, :, i]).reshape(-1, 6)
    return out


def _point_geometry(mesh: FEMesh, points: np.ndarray) -> dict:
    """Element nodes, shape values and node coordinates at global points (O(q))."""
    q, k = len(points), max(b.etype.n_nodes for b in mesh.blocks)
    nodes, shape = np.zeros((q, k), np.int64), np.zeros((q, k))
    for b, sel, el, lq in _locate(mesh, points):  # loop over element blocks
        nn = b.etype.n_nodes
        nodes[sel, :nn] = b.cells[el]
        shape[sel, :nn] = b.etype.N[lq]
    return {"nodes": nodes, "shape": shape, "node_coords": mesh.points[nodes]}


def restrict(mesh: FEMesh, phi: np.ndarray, f_unit: np.ndarray, points: np.ndarray,
             weights: np.ndarray, imposed: np.ndarray) -> dict:
    """The ``reduced`` arrays of a model for a point set (see :mod:`rom.online.model`)."""
    d = point_data(mesh, points, phi)
    return {"points": np.asarray(points, np.int64), "weights": np.asarray(weights, float),
            "imposed": np.asarray(imposed, np.int64), "eps": d["eps"], "nodes": d["nodes"],
            "shape": d["shape"], "node_coords": d["node_coords"], "f_red": phi.T @ f_unit}


# ---------------------------------------------------------------- the build
@dataclass
class Built:
    """Result of the distributed build on one rank.

    ``full`` holds this rank's rows of the distributed arrays (:data:`DISTRIBUTED`) and the
    replicated singular values; ``reduced``, ``meta``, ``material_json`` are identical on
    every rank.
    """

    full: dict
    reduced: dict
    meta: dict
    material_json: str
    partition: Partition


def build_distributed(mesh: FEMesh, material: MaterialConfig, loading: LoadingConfig,
                      U: np.ndarray, S: np.ndarray, Z: np.ndarray, cfg: OnlineConfig,
                      part: Partition, comm: MPI.Comm | None = None, *, case_file: str = "",
                      mesh_file: str = "") -> Built:
    """Build the reduced model from this rank's snapshot rows (collective).

    Parameters
    ----------
    mesh : the whole mesh (every rank)
    U : (3 n_local_nodes, m) displacements of the nodes of ``part`` [m]
    S : (m, n_local_points, 6) stresses at the points of ``part`` [Pa]
    Z : (m, n_local_points, n_state) internal variables, columns as ``law.state_names``
    cfg : tolerances
    part : the row blocks of this rank (:meth:`Partition.of`)
    comm : communicator (``None``: serial)
    """
    comm = as_comm(comm)
    law = material_from_config(material)
    names = law.state_names
    if "p" not in names:
        raise UserError(f"online: the material law {material.law!r} has no cumulated "
                        "viscoplastic strain p (use law: norton)")
    pcol = names["p"][0].start
    m, _, ns = Z.shape
    p0, p1 = part.point_range
    es = ElementSet(mesh, part.elements)
    if not np.array_equal(es.qp, np.arange(p0, p1)):
        raise RuntimeError("online: element set points do not match the partition")
    w_fe = es.weights()
    phi, phi_sv = _pod(U, cfg.displacement_rtol, "displacement", comm)
    P = np.ascontiguousarray(Z[:, :, pcol].T)                       # (n_local_points, m)
    psi_p, psi_p_sv = _pod(P, cfg.dual_rtol, "p", comm)
    psi_z, psi_z_sv = _pod(Z.reshape(m, -1).T, cfg.dual_rtol, "internal-variable", comm)
    sig, sig_sv = _pod(S.reshape(m, -1).T, cfg.stress_rtol, "stress", comm)
    imposed = np.sort(qdeim(psi_p, comm=comm))
    eps_loc = _mode_strains(es, phi, part, comm)
    pts, wts = ecm_fields(eps_loc, S, w_fe, tol=cfg.ecm_tol, imposed=imposed, comm=comm,
                          batch=cfg.ecm_batch, reduce=True)
    n0, n1 = part.node_range
    node_part = np.repeat(np.arange(comm.size), np.diff(part.nodes))
    f_glob = _local_forces(mesh, loading, material.density, es, node_part, comm.rank)
    f_unit = np.empty(3 * (n1 - n0))
    if comm.size == 1:
        f_unit[:] = f_glob
    else:
        comm.Reduce_scatter(f_glob, f_unit, recvcounts=3 * np.diff(part.nodes), op=MPI.SUM)
    del f_glob
    pM = _at_points(P, p0, pts, comm).T                            # (m, q)
    red = {"points": np.asarray(pts, np.int64), "weights": np.asarray(wts, float),
           "imposed": np.asarray(imposed, np.int64),
           "eps": _at_points(eps_loc.transpose(1, 2, 0), p0, pts, comm),   # (q, 6, n)
           **_point_geometry(mesh, pts), "f_red": allreduce_sum(phi.T @ f_unit, comm)}
    amp = loading.amplitude
    meta = {"case_file": str(case_file), "mesh_file": str(mesh_file),
            "state_names": {k: [v[0].start, v[0].stop] for k, v in names.items()},
            "p_column": pcol, "n_state": ns, "n_qp": int(part.points[-1]),
            "n_nodes": mesh.n_nodes,
            "amplitude": None if amp is None else [list(amp.temperatures or [0.0]),
                                                   list(amp.values)],
            "period": getattr(loading, "period", None),
            "ecm_tol": cfg.ecm_tol, "ecm_batch": cfg.ecm_batch,
            "indicator_tol": cfg.indicator_tol, "indicator": cfg.indicator,
            "newton_rtol": cfg.newton_rtol, "newton_max_iter": cfg.newton_max_iter,
            "dual_floor": 1e-3 * float(np.max(np.linalg.norm(pM, axis=1))),
            "n_enrichments": 0, "n_training_snapshots": m}
    full = {"phi": phi, "phi_sv": phi_sv, "psi_p": psi_p, "psi_p_sv": psi_p_sv,
            "psi_z": psi_z, "psi_z_sv": psi_z_sv, "sigma": sig * sig_sv, "f_unit": f_unit,
            "weights_fe": w_fe}
    return Built(full, red, meta, material_to_json(material), part)


def build_from_arrays(mesh: FEMesh, material: MaterialConfig, loading: LoadingConfig,
                      U: np.ndarray, S: np.ndarray, Z: np.ndarray, cfg: OnlineConfig, *,
                      case_file: str = "", mesh_file: str = "") -> ReducedModel:
    """Build a reduced model from whole snapshot matrices (serial, deterministic).

    Parameters
    ----------
    U : (3 n_nodes, m) displacements [m]
    S : (m, n_qp, 6) stresses [Pa]
    Z : (m, n_qp, n_state) internal variables, columns as ``law.state_names``
    cfg : tolerances
    """
    b = build_distributed(mesh, material, loading, U, S, Z, cfg, Partition.of(mesh, 1, 0),
                          None, case_file=case_file, mesh_file=mesh_file)
    model = ReducedModel(b.full, b.reduced, b.meta, b.material_json)
    model._mesh = mesh
    return model


# ---------------------------------------------------------------- reading and writing
def read_blocks(store: SnapshotStore, law, mesh: FEMesh, part: Partition):
    """This rank's rows of the snapshots: (U (3 n_local_nodes, m), S (m, n_local_points, 6),
    Z (m, n_local_points, n_state)). Not collective: each rank reads its own rows; a
    :class:`UserError` names the store and field of a store without snapshots, for another
    mesh, or with NaN / Inf values."""
    fields = store.fields
    missing = [f for f in ("displacement", "stress", *law.state_names) if f not in fields]
    if missing:
        raise UserError(f"{store.path}: snapshot store has no field(s) {', '.join(missing)} "
                        "(write it with python -m rom.fom)")
    n_qp = int(part.points[-1])
    expect = {"displacement": ("nodal", mesh.n_nodes, 3), "stress": ("quadrature", n_qp, 6)}
    for name, (sl, _) in law.state_names.items():
        expect[name] = ("quadrature", n_qp, sl.stop - sl.start)
    for name, want in expect.items():
        f = fields[name]
        if (f.kind, f.n_entities, f.n_components) != want:
            raise UserError(f"{store.path}: field {name!r} is {f.kind} with {f.n_entities} x "
                            f"{f.n_components} values but the mesh needs {want[0]} {want[1]} x {want[2]} (store and mesh differ?)")
    n0, n1 = part.node_range
    p0, p1 = part.point_range
    if store.n_snapshots == 0:
        raise UserError(f"{store.path}: the snapshot store holds no snapshots "
                        "(write them with python -m rom.fom)")
    U = store.read("displacement", rows=(3 * n0, 3 * n1))
    m = U.shape[1]
    S = np.ascontiguousarray(store.read("stress", rows=(6 * p0, 6 * p1)).T).reshape(m, -1, 6)
    Z = np.empty((m, p1 - p0, law.n_state))
    for name, (sl, _) in law.state_names.items():  # loop over internal-variable fields
        nc = sl.stop - sl.start
        Z[:, :, sl] = store.read(name, rows=(nc * p0, nc * p1)).T.reshape(m, -1, nc)
        _check_finite(store, name, Z[:, :, sl])
    _check_finite(store, "displacement", U.T)
    _check_finite(store, "stress", S)
    return U, S, Z


def _check_finite(store: SnapshotStore, name: str, values: np.ndarray) -> None:
    """A :class:`UserError` naming the store, field and snapshot if ``values`` (axis 0: one
    per snapshot column) hold NaN or Inf."""
    message = store.nonfinite_message(name, values)
    if message is not None:
        raise UserError(message)


def _write_rows(f, name: str, local: np.ndarray, comm: MPI.Comm) -> str | None:
    """Gather a row-distributed array onto rank 0 in blocks of rows and write it into
    ``f[name]`` (created by rank 0 beforehand). Collective; returns rank 0's error."""
    off = row_offsets(local.shape[0], comm)
    n, tail = int(off[-1]), local.shape[1:]
    width = max(1, int(np.prod(tail)))
    step = max(1, WRITE_BYTES // (8 * width))
    r0, r1 = int(off[comm.rank]), int(off[comm.rank + 1])
    error = None
    for a in range(0, n, step):  # loop over blocks of global rows
        b = min(n, a + step)
        lo, hi = min(max(r0, a), b), min(max(r1, a), b)
        part = np.ascontiguousarray(local[lo - r0:hi - r0], dtype=np.float64)
        if comm.size == 1:
            buf = part
        else:
            counts = (np.clip(off[1:], a, b) - np.clip(off[:-1], a, b)) * width
            buf = np.empty((b - a,) + tail) if comm.rank == 0 else None
            comm.Gatherv(part, [buf, counts, np.concatenate([[0], np.cumsum(counts)[:-1]]),
                                MPI.DOUBLE] if comm.rank == 0 else None, root=0)
        if f is not None and error is None:
            try:
                f[name][a:b] = buf
            except Exception as exc:  # noqa: BLE001 - reported on every rank
                error = f"writing {name}: {type(exc).__name__}: {exc}"
    return error


def write_built(f, name: str, built: Built, comm: MPI.Comm, *, what: str,
                before=None) -> None:
    """Write a distributed build into group ``name`` of ``f`` (``""``: the file itself)
    (collective; ``f`` is open on rank 0 only).

    Rank 0 calls ``before(group)`` (provenance, extra attributes) and writes the replicated
    data; then each distributed array is gathered onto rank 0 in blocks of at most
    :data:`WRITE_BYTES` rows and written in global row order. A failure on rank 0 is
    raised on every rank as ``OSError`` naming ``what``.
    """
    shapes = {}
    for k in DISTRIBUTED:
        a = built.full[k]
        rows = comm.allreduce(a.shape[0]) if comm.size > 1 else a.shape[0]
        shapes[k] = (rows,) + a.shape[1:]
    error = None
    if f is not None:
        try:
            g = f.create_group(name) if name else f
            if before is not None:
                before(g)
            write_layout(g, built.full, built.reduced, built.meta, built.material_json, shapes)
        except Exception as exc:  # noqa: BLE001 - reported on every rank
            error = f"{type(exc).__name__}: {exc}"
    raise_if_failed(error, comm, OSError, what=f"writing {what} failed")
    prefix = f"{name}/" if name else ""
    for k in DISTRIBUTED:  # same order on every rank
        error = _write_rows(f, f"{prefix}full/{k}", built.full[k], comm) or error
    raise_if_failed(error, comm, OSError, what=f"writing {what} failed")


def write_model(path: str | Path, built: Built, comm: MPI.Comm | None = None) -> Path:
    """Write a distributed build into one reduced-model file (collective, atomic): the file
    :meth:`ReducedModel.save` writes, whatever the number of ranks."""
    comm = as_comm(comm)
    path = Path(path)

    def provenance(f):
        stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                         writer="rom.online", writer_ranks=comm.size)

    with atomic_h5(path, comm=comm) as f:
        write_built(f, "", built, comm, what=f"the reduced model {path}", before=provenance)
    return path


def build_reduced_model(case, comm: MPI.Comm | None = None, config: OnlineConfig | None = None,
                        *, path: str | Path | None = None) -> Path:
    """Offline stage: snapshot store of ``case`` -> reduced-model HDF5 file (collective).

    Each rank reads only its rows of the store; see the module doc.

    Parameters
    ----------
    case : :class:`rom.config.Case` with ``mesh``, ``snapshots.store``, ``material``,
        ``loading`` (and optionally ``online``, an :class:`OnlineConfig`)
    comm : communicator (``None``: serial); the file does not depend on its size
    config : overrides ``case.online``
    path : output file, default ``online.model`` or ``<output.directory>/<name>.rom.h5``

    Returns
    -------
    the path of the written file
    """
    comm = as_comm(comm)
    cfg = config or getattr(case, "online", None) or OnlineConfig()
    for key in ("material", "loading", "snapshots", "mesh"):
        if getattr(case, key, None) is None:
            raise UserError(f"{getattr(case, 'source_file', 'case')}: {key}: required by the "
                            "online (reduced model) stage")
    law = material_from_config(case.material)
    mesh_file = str(Path(case.mesh).resolve())
    mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
    part = Partition.of(mesh, comm.size, comm.rank)
    with SnapshotStore.open(case.snapshots.store, comm=comm) as store:
        msg = None
        try:
            U, S, Z = read_blocks(store, law, mesh, part)
        except UserError as exc:
            msg = str(exc)
        raise_if_failed(msg, comm, UserError)
    built = build_distributed(mesh, case.material, case.loading, U, S, Z, cfg, part, comm,
                              case_file=str(Path(case.source_file or "").resolve()),
                              mesh_file=mesh_file)
    del U, S, Z
    built.meta["case_hashes"] = case_hashes(case)      # checked by load_for_case
    if path is None:
        path = cfg.model or Path(case.output.directory) / f"{case.name}.rom.h5"
    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_model(path, built, comm)
    r = built.reduced
    rank0_print(comm, f"rom.online: wrote {path} ({built.full['phi'].shape[1]} modes, "
                      f"{r['points'].size} reduced points of {built.meta['n_qp']}, "
                      f"{r['imposed'].size} imposed; built on {comm.size} rank(s))")
    return path
