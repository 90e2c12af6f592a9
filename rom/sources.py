"""Snapshot sources of a case: an existing store, meshio files, or an analytical family.

Each returns the path of a snapshot store holding the case's snapshots.
"""
from __future__ import annotations

import glob
from pathlib import Path

import meshio
import numpy as np
from mpi4py import MPI

from .analytical import FAMILIES, sample_parameters
from .config import Case, CaseError
from .io.importer import import_meshio_files
from .io.snapshots import SnapshotStore
from .parallel import Progress, as_comm, even_split

__all__ = ["prepare_snapshots", "write_analytical_store"]


def prepare_snapshots(case: Case, mesh: meshio.Mesh, comm: MPI.Comm | None = None, *,
                      progress: bool = True) -> Path:
    """Make sure the case's snapshot store exists (writing it if the source says so)."""
    comm = as_comm(comm)
    snap = case.snapshots
    where = case.source_file or "<case>"
    if snap.source == "store":
        if not snap.store.is_file():
            raise CaseError(f"{where}: snapshots.store: file not found: {snap.store}")
        return snap.store
    if snap.source == "analytical":
        if snap.analytical is None:
            raise CaseError(f"{where}: snapshots.analytical: required when snapshots.source "
                            "is 'analytical'")
        return write_analytical_store(case, mesh, comm, progress=progress)
    # files
    files: list[str] = []
    base = Path(case.source_file).parent if case.source_file else Path.cwd()
    for pattern in snap.files:
        p = pattern if Path(pattern).is_absolute() else str(base / pattern)
        hits = sorted(glob.glob(p))
        if not hits:
            raise CaseError(f"{where}: snapshots.files: no file matches {pattern!r}")
        files.extend(hits)
    if not files:
        raise CaseError(f"{where}: snapshots.files: required when snapshots.source is 'files'")
    import_meshio_files(files, snap.store, fields=snap.fields or None, comm=comm)
    return snap.store


def write_analytical_store(case: Case, mesh: meshio.Mesh, comm: MPI.Comm | None = None, *,
                           progress: bool = True) -> Path:
    """Evaluate the case's analytical family at the mesh nodes, one snapshot per (loading, step).

    Every rank evaluates its contiguous block of nodes; the store is identical
    for any rank count.
    """
    comm = as_comm(comm)
    src = case.snapshots.analytical
    family = FAMILIES[src.family]
    where = case.source_file or "<case>"
    unknown = sorted(set(src.parameters) - set(family.defaults))
    if unknown:
        raise CaseError(f"{where}: snapshots.analytical.parameters.{unknown[0]}: unknown "
                        f"parameter of family {src.family!r} (has: {', '.join(family.defaults)})")
    for name, r in src.parameters.items():
        if not r.min <= r.max:
            raise CaseError(f"{where}: snapshots.analytical.parameters.{name}: min > max")
    mus = sample_parameters({k: (r.min, r.max) for k, r in src.parameters.items()},
                            src.samples, src.seed)
    times = src.times.array()[1:]
    n_nodes = len(mesh.points)
    off = even_split(n_nodes, comm.size)
    lo, hi = int(off[comm.rank]), int(off[comm.rank + 1])
    pts = np.asarray(mesh.points, dtype=float)[lo:hi]
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    bar = Progress(comm, len(mus) * len(times), "analytical snapshots", enabled=progress)
    with SnapshotStore.create(case.snapshots.store, comm=comm, overwrite=True) as store:
        store.add_field(family.field_name, kind="nodal", n_entities=n_nodes,
                        n_components=family.n_components, units=family.units)
        for i, mu in enumerate(mus):
            lid = store.add_loading(f"{src.family}-{i:03d}", {**family.defaults, **mu})
            for k, t in enumerate(times):
                u = family.displacement(pts, float(t), float(times[-1]), mu)
                store.append({family.field_name: u.reshape(-1)}, loading=lid, time=float(t),
                             step=k + 1)
                bar.update()
    bar.close()
    return case.snapshots.store
