"""Offline builder of the reduced model from a snapshot store written by ``python -m rom.fom``.

Distributed (docs/online.md, "Offline stage"): each rank reads only its row block of the
store (nodal fields by a block of nodes, quadrature fields by a block of whole elements'
integration points, :class:`Partition`), the PODs run on the distributed rows
(:func:`rom.pod`), the Q-DEIM points and the ECM on the distributed integration points
(:func:`rom.hyper.qdeim`, :func:`rom.hyper.ecm_fields`), the small data at the reduced
points are summed from their owners onto every rank, and rank 0 writes the file, the
full-size bases gathered in bounded blocks of rows in global order
(:meth:`ReducedModel.save`). The file does not depend on the number of ranks (up to
round-off; tested at 1, 2 and 3 ranks).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..fom.config import LoadingConfig, MaterialConfig
from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh
from ..fom.setup import loads_from_config, material_from_config
from ..hyper import ecm_fields, qdeim
from ..io.mesh import read_mesh
from ..io.snapshots import SnapshotStore
from ..linalg import pod
from ..linalg.rowblocks import entity_rows, rows_at
from ..parallel import UserError, allreduce_sum, as_comm, raise_if_failed, rank0_print
from .checks import case_hashes
from .config import OnlineConfig
from .model import FullBases, Partition, ReducedModel, make_operator, material_to_json, qp_layout
from .points import mode_strains, point_data

__all__ = ["Partition", "TrainingRows", "build_distributed", "build_from_arrays",
           "build_reduced_model", "external_forces", "pod_method", "read_blocks",
           "reduced_operator"]

#: POD energy tolerances below this use TSQR (stable to eps); above, the method of
#: snapshots (one m x m Gram Allreduce), whose round-off floor sqrt(m eps) s_1 (~1e-7 s_1)
#: is then far below the truncation
TSQR_BELOW = 1e-5


def pod_method(rtol: float) -> str:
    """POD method of a basis with energy tolerance ``rtol`` (see :data:`TSQR_BELOW`)."""
    return "tsqr" if rtol < TSQR_BELOW else "snapshots"


# ---------------------------------------------------------------- small distributed helpers
def _any(X: np.ndarray, comm: MPI.Comm) -> bool:
    return bool(comm.allreduce(bool(np.any(X)), op=MPI.LOR))


def _pod(X: np.ndarray, rtol: float, what: str, comm: MPI.Comm):
    if not _any(X, comm):
        raise UserError(f"online: the {what} snapshots are all zero (nothing to reduce; "
                        "is the case in the viscoplastic regime?)")
    r = pod(X, rtol=rtol, comm=comm, method=pod_method(rtol), reflectors=False)
    return np.ascontiguousarray(r.modes), np.asarray(r.singular_values)


# ---------------------------------------------------------------- finite-element pieces
def state_scales(Z: np.ndarray, names, comm: MPI.Comm) -> np.ndarray | None:
    """(n_state,) scale of each internal variable for the internal-variable POD: one per
    unit of ``names`` (the law's ``state_names``), the RMS over the training of the
    variables of that unit (all ranks' rows of ``Z`` (m, n_local_points, n_state)); 1 where
    they are all zero. None when the variables share one unit (a scale would not change
    the basis' span nor the least squares that use it)."""
    units = sorted({u for _, u in names.values()})
    if len(units) < 2:
        return None
    ns = Z.shape[-1]
    sq = np.einsum("mpk,mpk->k", Z, Z)                              # (n_state,) this rank
    cnt = np.array([Z.shape[0] * Z.shape[1]], float)
    tot = allreduce_sum(np.concatenate([sq, cnt]), comm)
    sq, cnt = tot[:ns], tot[ns]
    scale = np.ones(ns)
    for unit in units:                             # one scale per unit (2-3 units)
        cols = np.concatenate([np.arange(ns)[sl] for sl, u in names.values() if u == unit])
        rms = float(np.sqrt(sq[cols].sum() / (cnt * len(cols))))
        scale[cols] = rms if rms > 0 else 1.0
    return scale


def _local_forces(mesh: FEMesh, loading: LoadingConfig, density: float, es: ElementSet,
                  node_part: np.ndarray, rank: int) -> np.ndarray:
    """This rank's contributions (3 n_nodes,) to the unit-amplitude external forces [N]."""
    loads = loads_from_config(loading, density)
    if any(d.value != 0.0 for d in loads.dirichlet):
        raise UserError("online: imposed displacements must be zero (the reduced basis "
                        "spans homogeneous Dirichlet conditions); use pressures instead")
    nodes, f = loads.pressure_forces(mesh, node_part, rank)
    out = np.zeros(3 * mesh.n_nodes)
    np.add.at(out, entity_rows(nodes, 3), f.ravel())
    if loads.centrifugal is not None:
        b = loads.centrifugal.force_density(es.coordinates(), density)
        for blk, fe in zip(es.blocks, es.body_forces(b)):  # loop over element blocks
            np.add.at(out, blk.dofs.ravel(), fe.ravel())
    return out


def monitored_points(critical_point: int | None, period: float | None) -> np.ndarray:
    """Points a model keeps among its reduced points whatever its quadrature: the critical
    point (``meta["critical_point"]``) when the loading is periodic (``meta["period"]``),
    where the study reads the cycles; empty otherwise."""
    if period and critical_point is not None:
        return np.array([int(critical_point)], np.int64)
    return np.zeros(0, np.int64)


def external_forces(mesh: FEMesh, loading: LoadingConfig, density: float) -> np.ndarray:
    """Nodal external forces of unit amplitude (3 n_nodes,) [N] (pressure, centrifugal)."""
    return _local_forces(mesh, loading, density, ElementSet(mesh),
                         np.zeros(mesh.n_nodes, np.int64), 0)


def reduced_operator(mesh: FEMesh, phi, f_unit, psi_p, points: np.ndarray,
                     weights: np.ndarray, imposed: np.ndarray, meta: dict, law):
    """The :class:`~rom.online.operator.ReducedOperator` of a point set from the
    distributed bases ``phi``, ``f_unit``, ``psi_p`` (:class:`RowBlocks`; collective)."""
    d = point_data(mesh, points, phi)
    red = {"points": np.asarray(points, np.int64), "weights": np.asarray(weights, float),
           "imposed": np.asarray(imposed, np.int64), "eps": d["eps"], "nodes": d["nodes"],
           "shape": d["shape"], "node_coords": d["node_coords"],
           "f_red": phi.tdot(f_unit.local[:, 0])}
    return make_operator(red, psi_p.rows(red["points"]), meta, law)


# ---------------------------------------------------------------- the build
@dataclass
class TrainingRows:
    """This rank's rows of the m training snapshots (row-distributed: the nodes and points
    of one :class:`Partition` block).

    Attributes
    ----------
    U : (3 n_local_nodes, m) displacements [m]
    S : (m, n_local_points, 6) stresses [Pa], float64 or float32 (:func:`read_blocks` keeps
        the store's precision: a view of the rows as stored)
    Z : (m, n_local_points, n_state) internal variables, columns as ``law.state_names``;
        ``None`` once the build has reduced them (:meth:`release_internal`). The
        build's POD reads ``Z.reshape(m, -1).T`` without a copy when it is contiguous
        (:func:`read_blocks`' layout)
    """

    U: np.ndarray
    S: np.ndarray
    Z: np.ndarray | None

    @property
    def n_snapshots(self) -> int:
        return int(self.U.shape[1])

    def release_internal(self) -> None:
        """Drop the internal variables (the largest block) once their bases are built."""
        self.Z = None


def build_distributed(mesh: FEMesh, material: MaterialConfig, loading: LoadingConfig,
                      rows: TrainingRows, cfg: OnlineConfig, part: Partition,
                      comm: MPI.Comm | None = None, *, case_file: str = "",
                      mesh_file: str = "") -> ReducedModel:
    """Build the reduced model from this rank's snapshot rows (collective): a
    :class:`ReducedModel` whose bases hold this rank's rows (its communicator ``comm``).

    Memory: the internal variables are released (``rows.release_internal()``) once their
    bases are built, before the stress POD and the ECM; the stresses stay in their
    precision (the POD and the ECM convert one block at a time).

    Parameters
    ----------
    mesh : the whole mesh (every rank)
    rows : this rank's rows of the training snapshots (:class:`TrainingRows`)
    cfg : tolerances
    part : the row blocks of this rank (:meth:`Partition.of`)
    comm : communicator (``None``: serial)
    """
    comm = as_comm(comm)
    law = material_from_config(material)
    names = law.state_names
    if "p" not in names:
        raise UserError(f"online: the material law {material.law!r} has no cumulated "
                        "viscoplastic strain p in its state_names (norton and chaboche have one)")
    pcol = names["p"][0].start
    U, S = rows.U, rows.S
    m, _, ns = rows.Z.shape
    p0, p1 = part.point_range
    es = ElementSet(mesh, part.elements(mesh))
    if not np.array_equal(es.qp, np.arange(p0, p1)):
        raise RuntimeError("online: element set points do not match the partition")
    w_fe = es.weights()
    phi, phi_sv = _pod(U, cfg.displacement_rtol, "displacement", comm)
    P = np.ascontiguousarray(rows.Z[:, :, pcol].T)                  # (n_local_points, m)
    psi_p, psi_p_sv = _pod(P, cfg.dual_rtol, "p", comm)
    z_scale = state_scales(rows.Z, names, comm)
    if z_scale is not None:
        rows.Z /= z_scale                                           # in place: released below
    psi_z, psi_z_sv = _pod(rows.Z.reshape(m, -1).T, cfg.dual_rtol, "internal-variable", comm)
    rows.release_internal()
    sig, sig_sv = _pod(S.reshape(m, -1).T, cfg.stress_rtol, "stress", comm)
    sig *= sig_sv
    imposed = np.sort(qdeim(psi_p, comm=comm))
    # the critical point: the largest p of the training (where rom.study reads the cycles)
    # (ties: the smallest point number, at any rank count); with a periodic loading it is
    # a reduced point, so that the cycles there are the law's answer, not a fit
    top = (float(P.max()), -(p0 + int(np.unravel_index(P.argmax(), P.shape)[0]))) \
        if P.size else (-np.inf, 0)
    critical = -max(comm.allgather(top))[1]
    period = getattr(loading, "period", None)
    imposed = np.union1d(imposed, monitored_points(critical, period))
    n0, n1 = part.node_range
    node_part = np.repeat(np.arange(comm.size), np.diff(part.nodes))
    f_glob = _local_forces(mesh, loading, material.density, es, node_part, comm.rank)
    f_unit = np.empty(3 * (n1 - n0))
    if comm.size == 1:
        f_unit[:] = f_glob
    else:
        comm.Reduce_scatter(f_glob, f_unit, recvcounts=3 * np.diff(part.nodes), op=MPI.SUM)
    del f_glob
    bases = FullBases.from_local(
        {"phi": phi, "phi_sv": phi_sv, "psi_p": psi_p, "psi_p_sv": psi_p_sv, "psi_z": psi_z,
         "psi_z_sv": psi_z_sv, "sigma": sig, "f_unit": f_unit, "weights_fe": w_fe,
         "psi_z_scale": z_scale},
        part, ns, comm)
    pts, wts = ecm_fields(mode_strains(es, bases.phi), S, w_fe, tol=cfg.ecm_tol,
                          imposed=imposed, comm=comm, batch=cfg.ecm_batch, reduce=True)
    pM = rows_at(P, part.points, pts, comm).T                      # (m, q)
    amp = loading.amplitude
    meta = {"case_file": str(case_file), "mesh_file": str(mesh_file),
            "state_names": {k: [v[0].start, v[0].stop] for k, v in names.items()},
            "p_column": pcol, "n_state": ns, "n_qp": int(part.points[-1]),
            "n_nodes": mesh.n_nodes, "qp_layout": qp_layout(mesh),
            "amplitude": None if amp is None else [list(amp.temperatures or [0.0]),
                                                   list(amp.values)],
            "period": period,
            "ecm_tol": cfg.ecm_tol, "ecm_batch": cfg.ecm_batch,
            "indicator_tol": cfg.indicator_tol, "indicator": cfg.indicator,
            "stress_indicator_tol": cfg.stress_indicator_tol,
            "newton_rtol": cfg.newton_rtol, "newton_max_iter": cfg.newton_max_iter,
            "dual_floor": 1e-3 * float(np.max(np.linalg.norm(pM, axis=1))),
            "n_enrichments": 0, "n_training_snapshots": m, "critical_point": critical}
    op = reduced_operator(mesh, bases.phi, bases.f_unit, bases.psi_p, pts, wts, imposed, meta,
                          law)
    return ReducedModel(op, bases, meta, material_to_json(material)).use_mesh(mesh)


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
    return build_distributed(mesh, material, loading, TrainingRows(U, S, Z), cfg,
                             Partition.of(mesh, 1, 0), None, case_file=case_file,
                             mesh_file=mesh_file)


# ---------------------------------------------------------------- reading and writing
def read_blocks(store: SnapshotStore, law, mesh: FEMesh, part: Partition,
                block_bytes: int = 2**26) -> TrainingRows:
    """This rank's rows of the snapshots (:class:`TrainingRows`). Not collective: each rank
    reads its own rows; a :class:`UserError` names the store and field of a store without
    snapshots, for another mesh, or with NaN / Inf values.

    Memory: the stresses are kept as stored (float32 with ``snapshots.precision: single``),
    the internal variables are read in blocks of about ``block_bytes`` into one float64
    point-major array (the layout the POD reads without a copy)."""
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
    _check_finite(store, "displacement", U.T)
    stored = store.read("stress", rows=(6 * p0, 6 * p1), dtype=None)   # (6 n_points, m)
    _check_finite(store, "stress", stored.T)
    S = stored.T.reshape(m, p1 - p0, 6)                               # a view
    ns = law.n_state
    Zr = np.empty((p1 - p0, ns, m))                                   # point-major rows
    step = max(1, block_bytes // (8 * ns * max(m, 1)))
    for name, (sl, _) in law.state_names.items():  # loop over internal-variable fields
        nc = sl.stop - sl.start
        for a in range(p0, p1, step):              # loop over blocks of points
            b = min(a + step, p1)
            blk = store.read(name, rows=(nc * a, nc * b), dtype=None)
            _check_finite(store, name, blk.T)
            Zr[a - p0:b - p0, sl, :] = blk.reshape(b - a, nc, m)
    Z = Zr.reshape(-1, m).T.reshape(m, p1 - p0, ns)                    # a view
    return TrainingRows(U, S, Z)


def _check_finite(store: SnapshotStore, name: str, values: np.ndarray) -> None:
    """A :class:`UserError` naming the store, field and snapshot if ``values`` (axis 0: one
    per snapshot column) hold NaN or Inf."""
    message = store.nonfinite_message(name, values)
    if message is not None:
        raise UserError(message)


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
            rows = read_blocks(store, law, mesh, part)
        except UserError as exc:
            msg = str(exc)
        raise_if_failed(msg, comm, UserError)
    model = build_distributed(mesh, case.material, case.loading, rows, cfg, part, comm,
                              case_file=str(Path(case.source_file or "").resolve()),
                              mesh_file=mesh_file)
    del rows
    model.meta["case_hashes"] = case_hashes(case)      # checked by load_for_case
    if path is None:
        path = cfg.model or Path(case.output.directory) / f"{case.name}.rom.h5"
    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    op = model.operator
    rank0_print(comm, f"rom.online: wrote {path} ({model.n_modes} modes, "
                      f"{op.n_points} reduced points of {model.meta['n_qp']}, "
                      f"{op.imposed.size} imposed; built on {comm.size} rank(s))")
    return path
