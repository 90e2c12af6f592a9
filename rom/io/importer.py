"""Import field files written by another solver (anything meshio reads) into a snapshot store.

Point data become ``"nodal"`` fields, cell data ``"cell"`` fields (cell blocks
concatenated in file order); one snapshot per file, or per time step of an
XDMF time series. Rank 0 reads the files and writes the store (it is I/O);
the other ranks wait and raise the same error if rank 0 fails.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import meshio
import numpy as np
from mpi4py import MPI

from ..parallel import UserError, as_comm
from .mesh import read_mesh
from .snapshots import SnapshotStore

__all__ = ["ImportFilesError", "import_meshio_files"]


class ImportFilesError(UserError, ValueError):
    """Files that cannot be imported (different meshes, NaN, missing field); a ``ValueError``."""


@dataclass
class _Frame:
    """One snapshot read from a file: where it came from, its mesh sizes and data."""

    source: str
    time: float | None
    n_points: int
    cell_counts: list[tuple[str, int]]
    point_data: dict[str, np.ndarray]
    cell_data: dict[str, np.ndarray]         # concatenated over the cell blocks
    mesh: meshio.Mesh | None = None


def _concat_cells(cell_data: Mapping[str, Sequence[np.ndarray]]) -> dict[str, np.ndarray]:
    out = {}
    for name, blocks in cell_data.items():
        arrays = [np.asarray(b) for b in blocks]
        out[name] = np.concatenate([a.reshape(len(a), -1) for a in arrays])
    return out


def _frames(path: Path) -> Iterator[_Frame]:
    """The snapshots of one file (several for an XDMF time series)."""
    if path.suffix.lower() in (".xdmf", ".xmf"):
        try:
            reader = meshio.xdmf.TimeSeriesReader(path)
        except Exception:  # noqa: BLE001 - not a time series: read as one mesh below
            reader = None
        if reader is not None:
            with reader:
                points, cells = reader.read_points_cells()
                mesh = meshio.Mesh(points, cells)
                counts = [(b.type, len(b.data)) for b in mesh.cells]
                for k in range(reader.num_steps):                # loop over time steps
                    t, pd, cd = reader.read_data(k)
                    yield _Frame(f"{path} (step {k})", float(t), len(points), counts,
                                 dict(pd), _concat_cells(cd), mesh)
            return
    mesh = read_mesh(path)
    yield _Frame(str(path), None, len(mesh.points), [(b.type, len(b.data)) for b in mesh.cells],
                 dict(mesh.point_data), _concat_cells(mesh.cell_data), mesh)


def _select(frame: _Frame, fields: Sequence[str] | None) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (kind, values (n_entities, k)) of the chosen fields of a frame."""
    clash = sorted(set(frame.point_data) & set(frame.cell_data))
    names = list(fields) if fields is not None else sorted(
        set(frame.point_data) | set(frame.cell_data))
    out = {}
    for name in names:
        if name in clash:
            raise ImportFilesError(f"{frame.source}: {name!r} is both point and cell data; "
                               "cannot import it")
        if name in frame.point_data:
            a = np.asarray(frame.point_data[name])
            out[name] = ("nodal", a.reshape(len(a), -1))
        elif name in frame.cell_data:
            out[name] = ("cell", frame.cell_data[name])
        else:
            raise ImportFilesError(f"{frame.source}: no field {name!r} (point data: "
                               f"{sorted(frame.point_data)}, cell data: {sorted(frame.cell_data)})")
    return out


def _check(frame: _Frame, ref: _Frame, data: dict, ref_data: dict) -> None:
    """Same mesh sizes, same fields and shapes as the first snapshot; finite values."""
    if frame.n_points != ref.n_points or frame.cell_counts != ref.cell_counts:
        raise ImportFilesError(f"{frame.source}: mesh differs from {ref.source} "
                           f"({frame.n_points} points, cells {frame.cell_counts}; expected "
                           f"{ref.n_points} points, cells {ref.cell_counts})")
    if set(data) != set(ref_data):
        raise ImportFilesError(f"{frame.source}: fields {sorted(data)} differ from {ref.source} "
                           f"({sorted(ref_data)})")
    for name, (kind, values) in data.items():
        if (kind, values.shape) != (ref_data[name][0], ref_data[name][1].shape):
            raise ImportFilesError(f"{frame.source}: field {name!r} is {kind} {values.shape}, "
                               f"expected {ref_data[name][0]} {ref_data[name][1].shape} "
                               f"as in {ref.source}")
        if values.dtype.kind not in "biuf":
            raise ImportFilesError(f"{frame.source}: field {name!r} is not numeric "
                               f"({values.dtype})")
        bad = ~np.isfinite(values)
        if bad.any():
            raise ImportFilesError(f"{frame.source}: field {name!r} has {int(bad.sum())} NaN/Inf "
                               "value(s)")


def _import(files, store_path, fields, loading_name, times, parameters, units, overwrite,
            store_mesh) -> int:
    """Serial import (rank 0); returns the number of snapshots written."""
    if not files:
        raise ImportFilesError("import_meshio_files: no files given")
    count = 0
    with SnapshotStore.create(store_path, comm=MPI.COMM_SELF, overwrite=overwrite,
                              provenance={"imported_from": [os.fspath(f) for f in files]}) as st:
        ref = ref_data = None
        for path in files:                                       # loop over files
            for frame in _frames(Path(path)):                    # loop over time steps
                data = _select(frame, fields)
                if ref is None:
                    ref, ref_data = frame, data
                    for name, (kind, values) in data.items():
                        st.add_field(name, kind=kind, n_entities=values.shape[0],
                                     n_components=values.shape[1],
                                     units=(units or {}).get(name, ""))
                    st.set_mesh(path=os.path.relpath(Path(path).absolute(),
                                                     Path(store_path).absolute().parent),
                                mesh=frame.mesh if store_mesh else None)
                    lid = st.add_loading(loading_name, parameters or {})
                _check(frame, ref, data, ref_data)
                if times is not None and count >= len(times):
                    raise ImportFilesError(f"import_meshio_files: {len(times)} times given, but "
                                       f"{frame.source} is snapshot number {count + 1}")
                t = float(times[count]) if times is not None else (
                    frame.time if frame.time is not None else float(count))
                st.append({n: v.reshape(-1) for n, (_, v) in data.items()}, loading=lid,
                          time=t, step=count)
                count += 1
        if times is not None and len(times) != count:
            raise ImportFilesError(f"import_meshio_files: {len(times)} times given for {count} "
                               "snapshots")
    return count


def import_meshio_files(files: Sequence[str | os.PathLike], store_path: str | os.PathLike, *,
                        fields: Sequence[str] | None = None, loading_name: str = "imported",
                        times: Sequence[float] | None = None, comm: MPI.Comm | None = None,
                        parameters: Mapping[str, Any] | None = None,
                        units: Mapping[str, str] | None = None, overwrite: bool = True,
                        store_mesh: bool = True) -> int:
    """Write the fields of mesh files (VTU, XDMF incl. time series, VTK, ...) into a store.

    Collective over ``comm``: rank 0 does the work, every rank returns the
    same result or raises the same error. The store file appears only if the
    whole import succeeds.

    Parameters
    ----------
    files : files in snapshot order; an XDMF time series gives one snapshot per step
    store_path : snapshot store to write (replaced if it exists and ``overwrite``)
    fields : names to import (default: all point and cell data of the first file)
    loading_name : name of the single loading the snapshots belong to
    times : (n_snapshots,) times in s; default: the time series' times, else 0, 1, 2...
    comm : communicator (``None``: serial)
    parameters : parameters of the loading
    units : field name -> SI units stored with the field
    overwrite : replace an existing store
    store_mesh : also store the first file's mesh in the store (``/mesh``)

    Returns
    -------
    int : the number of snapshots written (step numbers are 0..n-1)

    Raises
    ------
    ImportFilesError : (a ``ValueError``) meshes that differ, NaN/Inf, missing fields;
        the message names the file (and the field)
    FileNotFoundError : a missing file
    """
    comm = as_comm(comm)
    result, error = None, None
    if comm.rank == 0:
        try:
            result = _import(list(files), store_path, fields, loading_name, times, parameters,
                             units, overwrite, store_mesh)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            error = exc
    if comm.size > 1:
        info = comm.bcast(None if error is None else (type(error), str(error)), root=0)
        if info is not None and comm.rank != 0:
            try:
                error = info[0](info[1])
            except Exception:  # noqa: BLE001 - exotic exception types
                error = RuntimeError(f"import failed on rank 0: {info[1]}")
        result = comm.bcast(result, root=0)
    if error is not None:
        raise error
    return int(result)
