"""HDF5 storage of :class:`~rom.clustering.local_bases.LocalBases` (rank-count independent).

Written by rank 0 into a group the caller opened (e.g. inside
:func:`rom.io.atomic.atomic_h5`); modes in GLOBAL row order. Read by every rank, each
taking its own row block of the modes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from mpi4py import MPI

from ..linalg.distributed import gather_rows
from ..linalg.pod import PODResult
from ..parallel import even_split

__all__ = ["read_local_bases", "read_local_bases_file", "write_local_bases",
           "write_local_bases_file"]

_POD_SCALARS = ("total_energy", "energy", "truncation_error", "floor", "method", "rtol",
                "n_snapshots")


def _ids_dataset(group, name: str, values: np.ndarray) -> None:
    if values.dtype.kind in "USO":
        group.create_dataset(name, data=np.array([str(v) for v in values], dtype="S"))
    else:
        group.create_dataset(name, data=values)


def _ids_read(ds) -> np.ndarray:
    v = ds[()]
    return v.astype(str) if v.dtype.kind == "S" else v


def write_local_bases(lb, group, comm: MPI.Comm) -> None:
    """See :meth:`LocalBases.write` (collective; ``group`` is used on rank 0 only)."""
    from .local_bases import SCHEMA, SCHEMA_VERSION
    full = [gather_rows(np.ascontiguousarray(b.modes), comm, root=0) for b in lb.bases]
    if comm.rank != 0:
        return
    if group is None:
        raise ValueError("LocalBases.write: rank 0 needs an open HDF5 group")
    a = group.attrs
    a["schema"], a["schema_version"] = SCHEMA, SCHEMA_VERSION
    a["k"], a["metric"], a["level"] = lb.k, lb.metric, lb.level
    a["cost"], a["n_rows"] = lb.cost, lb.n_rows
    a["params"] = json.dumps(lb.params)
    for name in ("labels", "medoids", "dissimilarity", "column_labels", "training_errors"):
        group.create_dataset(name, data=np.asarray(getattr(lb, name)))
    if lb.groups is not None:
        _ids_dataset(group, "groups", np.asarray(lb.groups))
    if lb.group_ids is not None:
        _ids_dataset(group, "group_ids", np.asarray(lb.group_ids))
    for c, (b, modes) in enumerate(zip(lb.bases, full)):       # loop over clusters
        g = group.create_group(f"cluster_{c:03d}")
        g.create_dataset("columns", data=lb.columns[c])
        g.create_dataset("modes", data=modes)
        g.create_dataset("singular_values", data=b.singular_values)
        g.create_dataset("all_singular_values", data=b.all_singular_values)
        g.create_dataset("right_vectors", data=b.right_vectors)
        for key in _POD_SCALARS:
            g.attrs[key] = getattr(b, key)
        g.attrs["max_modes"] = -1 if b.max_modes is None else int(b.max_modes)
        g.attrs["n_modes"] = b.n_modes


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if isinstance(v, np.generic) else v


def read_local_bases(cls, group, comm: MPI.Comm, rows: tuple[int, int] | None):
    """See :meth:`LocalBases.read`."""
    from .local_bases import SCHEMA, SCHEMA_VERSION
    a = group.attrs
    if _py(a.get("schema")) != SCHEMA:
        raise ValueError(f"{group.name}: not a local-bases group (schema={_py(a.get('schema'))!r})")
    if int(a["schema_version"]) != SCHEMA_VERSION:
        raise ValueError(f"{group.name}: local-bases schema version {int(a['schema_version'])}, "
                         f"this rom reads version {SCHEMA_VERSION}")
    n_rows, k = int(a["n_rows"]), int(a["k"])
    if rows is None:
        off = even_split(n_rows, comm.size)
        rows = (int(off[comm.rank]), int(off[comm.rank + 1]))
    bases, columns = [], []
    for c in range(k):                                          # loop over clusters
        g = group[f"cluster_{c:03d}"]
        mm = int(g.attrs["max_modes"])
        bases.append(PODResult(
            modes=g["modes"][rows[0]:rows[1]], singular_values=g["singular_values"][()],
            right_vectors=g["right_vectors"][()], all_singular_values=g["all_singular_values"][()],
            max_modes=None if mm < 0 else mm,
            **{key: _py(g.attrs[key]) for key in _POD_SCALARS}))
        columns.append(g["columns"][()])
    return cls(labels=group["labels"][()], medoids=group["medoids"][()], bases=bases,
               dissimilarity=group["dissimilarity"][()], columns=columns,
               column_labels=group["column_labels"][()],
               training_errors=group["training_errors"][()], metric=_py(a["metric"]),
               level=_py(a["level"]),
               groups=_ids_read(group["groups"]) if "groups" in group else None,
               group_ids=_ids_read(group["group_ids"]) if "group_ids" in group else None,
               cost=float(a["cost"]), n_rows=n_rows, params=json.loads(_py(a["params"])))


def write_local_bases_file(path: str | Path, lb, *, comm: MPI.Comm | None = None,
                           provenance: dict[str, Any] | None = None) -> Path:
    """Write ``lb`` atomically to its own HDF5 file, group ``/local_bases`` (collective).

    The root carries the provenance attributes (:func:`rom.io.atomic.stamp_provenance`,
    schema ``rom.local_bases``) plus ``provenance`` (e.g. case name and hash).
    """
    from ..io.atomic import atomic_h5, stamp_provenance
    from ..parallel import as_comm
    from .local_bases import SCHEMA, SCHEMA_VERSION
    comm = as_comm(comm)
    path = Path(path)
    with atomic_h5(path, comm=comm) as f:
        if f is not None:
            stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                             **(provenance or {}))
        lb.write(f.create_group("local_bases") if f is not None else None, comm)
    return path


def read_local_bases_file(path: str | Path, *, comm: MPI.Comm | None = None,
                          rows: tuple[int, int] | None = None):
    """Read a file written by :func:`write_local_bases_file`; each rank gets rows ``rows``."""
    from ..parallel import as_comm
    from .local_bases import LocalBases
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"local-bases file not found: {path}")
    with h5py.File(path, "r", locking=False) as f:
        if "local_bases" not in f:
            raise ValueError(f"{path}: no /local_bases group (not a local-bases file)")
        return LocalBases.read(f["local_bases"], as_comm(comm), rows)
