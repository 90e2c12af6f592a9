"""The reduced-basis artifact written by the offline stage (HDF5, self-describing).

Layout (schema ``rom.reduced_basis``, version 1)::

    /                      attrs: schema, schema_version, rom_version, created, host,
                                  case_name, case_file, case_sha256
    /pod                   attrs: field, kind, n_components, n_entities, units, method,
                                  rtol, max_modes, product, n_snapshots, n_modes, energy
    /pod/singular_values   (n_modes,)            kept singular values
    /pod/all_singular_values (k,)                every singular value the method computed
    /pod/modes             (n_rows, n_modes)     modes in GLOBAL row order
                                                 (row = entity * n_components + component)
    /pod/product_weights   (n_rows,)             diagonal of the inner product (if not Euclidean)

The file does not depend on the number of ranks that wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from mpi4py import MPI

from ..linalg.distributed import gather_rows
from ..parallel import as_comm, even_split
from .atomic import atomic_h5, stamp_provenance

__all__ = ["SCHEMA", "SCHEMA_VERSION", "BasisArtifact", "write_basis", "read_basis"]

SCHEMA = "rom.reduced_basis"
SCHEMA_VERSION = 1


@dataclass
class BasisArtifact:
    """A reduced basis read back from disk (modes are this rank's row block)."""

    path: Path
    modes: np.ndarray                    # (n_local_rows, n_modes)
    singular_values: np.ndarray          # (n_modes,)
    all_singular_values: np.ndarray
    rows: tuple[int, int]                # global row range of ``modes``
    attrs: dict[str, Any] = field(default_factory=dict)
    file_attrs: dict[str, Any] = field(default_factory=dict)


def write_basis(path: str | Path, *, modes: np.ndarray, singular_values: np.ndarray,
                all_singular_values: np.ndarray, attrs: dict[str, Any],
                provenance: dict[str, Any], product_weights: np.ndarray | None = None,
                comm: MPI.Comm | None = None) -> Path:
    """Write the artifact atomically (collective). ``modes`` is this rank's contiguous row block,
    ranks in order; ``product_weights`` likewise (n_local_rows,) or None."""
    comm = as_comm(comm)
    full_modes = gather_rows(np.ascontiguousarray(modes), comm, root=0)
    full_w = gather_rows(np.asarray(product_weights)[:, None], comm, root=0) \
        if product_weights is not None else None
    path = Path(path)
    with atomic_h5(path, comm=comm) as f:
        if f is not None:
            stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION, **provenance)
            g = f.create_group("pod")
            for k, v in attrs.items():
                g.attrs[k] = "none" if v is None else v
            g.attrs["n_modes"] = full_modes.shape[1]
            g.create_dataset("singular_values", data=np.asarray(singular_values))
            g.create_dataset("all_singular_values", data=np.asarray(all_singular_values))
            chunks = (min(len(full_modes), 65536), max(1, full_modes.shape[1])) \
                if full_modes.size else None
            d = g.create_dataset("modes", data=full_modes, chunks=chunks)
            d.attrs["units"] = attrs.get("units", "")
            if full_w is not None:
                g.create_dataset("product_weights", data=full_w[:, 0])
    return path


def read_basis(path: str | Path, *, comm: MPI.Comm | None = None,
               rows: tuple[int, int] | None = None) -> BasisArtifact:
    """Read an artifact; each rank gets the row block ``rows`` (default: an even split)."""
    comm = as_comm(comm)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reduced-basis file not found: {path}")
    with h5py.File(path, "r", locking=False) as f:
        schema = f.attrs.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"{path}: not a rom reduced-basis file (schema={schema!r})")
        version = int(f.attrs.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path}: reduced-basis schema version {version}, "
                             f"this rom reads version {SCHEMA_VERSION}")
        g = f["pod"]
        n_rows = g["modes"].shape[0]
        if rows is None:
            off = even_split(n_rows, comm.size)
            rows = (int(off[comm.rank]), int(off[comm.rank + 1]))
        return BasisArtifact(
            path=path, modes=g["modes"][rows[0]:rows[1]],
            singular_values=g["singular_values"][()],
            all_singular_values=g["all_singular_values"][()], rows=rows,
            attrs={k: _py(v) for k, v in g.attrs.items()},
            file_attrs={k: _py(v) for k, v in f.attrs.items()})


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v
