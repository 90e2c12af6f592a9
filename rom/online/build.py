"""Offline builder of the reduced model from a snapshot store written by ``python -m rom.fom``.

The numerics run redundantly on every rank on globally read snapshots (small data, see
docs/online.md), so the file does not depend on the rank count; rank 0 writes it.
"""
from __future__ import annotations

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
from ..parallel import UserError, as_comm, rank0_print
from .config import OnlineConfig
from .model import ReducedModel, material_to_json
from .points import mode_strains_all, point_data

__all__ = ["build_from_arrays", "build_reduced_model", "external_forces", "restrict"]


def external_forces(mesh: FEMesh, loading: LoadingConfig, density: float) -> np.ndarray:
    """Nodal external forces of unit amplitude (3 n_nodes,) [N] (pressure, centrifugal)."""
    loads = loads_from_config(loading, density)
    if any(d.value != 0.0 for d in loads.dirichlet):
        raise UserError("online: imposed displacements must be zero (the reduced basis "
                        "spans homogeneous Dirichlet conditions); use pressures instead")
    nodes, f = loads.pressure_forces(mesh, np.zeros(mesh.n_nodes, np.int64), 0)
    out = np.zeros(3 * mesh.n_nodes)
    np.add.at(out, (3 * nodes[:, None] + np.arange(3)).ravel(), f.ravel())
    if loads.centrifugal is not None:
        es = ElementSet(mesh)
        b = loads.centrifugal.force_density(es.coordinates(), density)
        for blk, fe in zip(es.blocks, es.body_forces(b)):  # loop over element blocks
            np.add.at(out, blk.dofs.ravel(), fe.ravel())
    return out


def restrict(mesh: FEMesh, phi: np.ndarray, f_unit: np.ndarray, points: np.ndarray,
             weights: np.ndarray, imposed: np.ndarray) -> dict:
    """The ``reduced`` arrays of a model for a point set (see :mod:`rom.online.model`)."""
    d = point_data(mesh, points, phi)
    return {"points": np.asarray(points, np.int64), "weights": np.asarray(weights, float),
            "imposed": np.asarray(imposed, np.int64), "eps": d["eps"], "nodes": d["nodes"],
            "shape": d["shape"], "node_coords": d["node_coords"], "f_red": phi.T @ f_unit}


def _pod(X: np.ndarray, rtol: float, what: str):
    if not np.any(X):
        raise UserError(f"online: the {what} snapshots are all zero (nothing to reduce; "
                        "is the case in the viscoplastic regime?)")
    r = pod(X, rtol=rtol)
    return np.ascontiguousarray(r.modes), np.asarray(r.singular_values)


def build_from_arrays(mesh: FEMesh, material: MaterialConfig, loading: LoadingConfig,
                      U: np.ndarray, S: np.ndarray, Z: np.ndarray, cfg: OnlineConfig, *,
                      case_file: str = "", mesh_file: str = "") -> ReducedModel:
    """Build a reduced model from snapshot matrices (serial numerics, deterministic).

    Parameters
    ----------
    U : (3 n_nodes, m) displacements [m]
    S : (m, n_qp, 6) stresses [Pa]
    Z : (m, n_qp, n_state) internal variables, columns as ``law.state_names``
    cfg : tolerances
    """
    law = material_from_config(material)
    names = law.state_names
    if "p" not in names:
        raise UserError(f"online: the material law {material.law!r} has no cumulated "
                        "viscoplastic strain p (use law: norton)")
    pcol = names["p"][0].start
    m, nq, ns = Z.shape
    es = ElementSet(mesh)
    w_fe = es.weights()
    phi, phi_sv = _pod(U, cfg.displacement_rtol, "displacement")
    psi_p, psi_p_sv = _pod(Z[:, :, pcol].T, cfg.dual_rtol, "p")
    psi_z, psi_z_sv = _pod(Z.reshape(m, -1).T, cfg.dual_rtol, "internal-variable")
    sig, sig_sv = _pod(S.reshape(m, -1).T, cfg.stress_rtol, "stress")
    imposed = np.sort(qdeim(psi_p))
    eps_all = mode_strains_all(es, phi)
    pts, wts = ecm_fields(eps_all, S, w_fe, tol=cfg.ecm_tol, imposed=imposed)
    f_unit = external_forces(mesh, loading, material.density)
    pM = Z[:, pts, pcol]
    amp = loading.amplitude
    meta = {"case_file": str(case_file), "mesh_file": str(mesh_file),
            "state_names": {k: [v[0].start, v[0].stop] for k, v in names.items()},
            "p_column": pcol, "n_state": ns, "n_qp": nq, "n_nodes": mesh.n_nodes,
            "amplitude": None if amp is None else [list(amp.temperatures or [0.0]),
                                                   list(amp.values)],
            "ecm_tol": cfg.ecm_tol, "indicator_tol": cfg.indicator_tol,
            "newton_rtol": cfg.newton_rtol, "newton_max_iter": cfg.newton_max_iter,
            "dual_floor": 1e-3 * float(np.max(np.linalg.norm(pM, axis=1))),
            "n_enrichments": 0, "n_training_snapshots": m}
    full = {"phi": phi, "phi_sv": phi_sv, "psi_p": psi_p, "psi_p_sv": psi_p_sv,
            "psi_z": psi_z, "psi_z_sv": psi_z_sv, "sigma": sig * sig_sv, "f_unit": f_unit,
            "weights_fe": w_fe}
    red = restrict(mesh, phi, f_unit, pts, wts, imposed)
    model = ReducedModel(full, red, meta, material_to_json(material))
    model._mesh, model._elements = mesh, es
    return model


def read_snapshots(store_path: str | Path, law, comm: MPI.Comm | None = None):
    """(U (3 n_nodes, m), S (m, n_qp, 6), Z (m, n_qp, n_state), mesh path) from a store."""
    with SnapshotStore.open(store_path, comm=as_comm(comm)) as st:
        missing = [f for f in ("displacement", "stress", *law.state_names) if f not in st.fields]
        if missing:
            raise UserError(f"{store_path}: snapshot store has no field(s) {', '.join(missing)} "
                            "(write it with python -m rom.fom)")
        U = st.read_global("displacement")
        m = U.shape[1]
        S = st.read_global("stress").T.reshape(m, -1, 6)
        Z = np.zeros((m, S.shape[1], law.n_state))
        for name, (sl, _) in law.state_names.items():  # loop over internal-variable fields
            Z[:, :, sl] = st.read_global(name).T.reshape(m, S.shape[1], -1)
        mesh_path = st.mesh_path
    return U, S, Z, mesh_path


def build_reduced_model(case, comm: MPI.Comm | None = None, config: OnlineConfig | None = None,
                        *, path: str | Path | None = None) -> Path:
    """Offline stage: snapshot store of ``case`` -> reduced-model HDF5 file (collective).

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
    U, S, Z, _ = read_snapshots(case.snapshots.store, law, comm)
    mesh_file = str(Path(case.mesh).resolve())
    mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
    model = build_from_arrays(mesh, case.material, case.loading, U, S, Z, cfg,
                              case_file=str(Path(case.source_file or "").resolve()),
                              mesh_file=mesh_file)
    if path is None:
        path = cfg.model or Path(case.output.directory) / f"{case.name}.rom.h5"
    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path, comm=comm)
    rank0_print(comm, f"rom.online: wrote {path} ({model.n_modes} modes, {model.n_points} "
                      f"reduced points of {Z.shape[1]}, {len(model.reduced['imposed'])} imposed)")
    return path
