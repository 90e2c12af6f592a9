"""Mesh and field files through meshio: read any mesh, write VTU / XDMF for ParaView.

Field arrays follow the store's entity-major convention: a field with ``k``
components on ``n`` entities is ``(n, k)`` or flat ``(n * k,)``. For ParaView,
2-component vectors are padded to 3 components, and units, when given, are
put in the field name: ``"u [m]"``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import meshio
import numpy as np

from ..parallel import UserError

__all__ = ["MeshError", "for_paraview", "read_mesh", "write_fields", "write_time_series"]

_FORMATS = {".vtu": "vtu", ".xdmf": "xdmf", ".xmf": "xdmf"}


class MeshError(UserError, ValueError):
    """A mesh or field file that cannot be read or written (a ``ValueError``)."""


def read_mesh(path: str | os.PathLike) -> meshio.Mesh:
    """Read a mesh (and its data) with meshio, in any format meshio knows.

    Raises
    ------
    FileNotFoundError : no file at ``path``
    MeshError : (a ``ValueError``) the file is not a readable mesh, or has no points or no
        cells; names the path
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    try:
        mesh = meshio.read(path)
    except SystemExit:  # meshio exits when no reader fits the file
        raise MeshError(f"cannot read mesh file {path}: meshio found no reader for it "
                        "(format from the suffix)") from None
    except Exception as exc:  # noqa: BLE001 - meshio raises many types
        raise MeshError(f"cannot read mesh file {path}: {type(exc).__name__}: {exc}") from None
    if len(mesh.points) == 0 or not any(len(c.data) for c in mesh.cells):
        raise MeshError(f"mesh file {path} is empty ({len(mesh.points)} points, "
                        f"{sum(len(c.data) for c in mesh.cells)} cells)")
    return mesh


def for_paraview(values: np.ndarray, n: int, name: str = "field") -> np.ndarray:
    """Reshape field values on ``n`` entities for ParaView.

    Parameters
    ----------
    values : (n,), (n, k) or flat entity-major (n * k,)
    n : number of entities (points or cells)
    name : field name, for the error message

    Returns
    -------
    ndarray, (n,) for scalars, (n, 3) for 2- or 3-component vectors, else (n, k)
    """
    a = np.asarray(values)
    if a.ndim == 0 or a.size % max(n, 1) or (a.ndim > 1 and a.shape[0] != n):
        raise MeshError(f"field {name!r}: {a.size} values of shape {a.shape} do not fit "
                        f"{n} entities")
    a = a.reshape(n, -1)
    if a.shape[1] == 1:
        return a[:, 0]
    if a.shape[1] == 2:
        return np.column_stack([a, np.zeros(n, dtype=a.dtype)])
    return a


def _named(name: str, units: Mapping[str, str] | None) -> str:
    unit = (units or {}).get(name, "")
    return f"{name} [{unit}]" if unit else name


def _point_data(mesh: meshio.Mesh, data: Mapping[str, np.ndarray] | None, units) -> dict:
    n = len(mesh.points)
    return {_named(k, units): for_paraview(v, n, k) for k, v in (data or {}).items()}


def _cell_data(mesh: meshio.Mesh, data: Mapping | None, units) -> dict:
    """Per-block lists; accepts a list per block or one array over all cells (block order)."""
    sizes = [len(b.data) for b in mesh.cells]
    out = {}
    for name, values in (data or {}).items():
        if isinstance(values, list | tuple):
            if len(values) != len(sizes):
                raise MeshError(f"cell field {name!r}: {len(values)} blocks, mesh has "
                                f"{len(sizes)} cell blocks")
            out[_named(name, units)] = [for_paraview(v, s, name) for v, s in zip(values, sizes)]
            continue
        full = for_paraview(values, sum(sizes), name)
        out[_named(name, units)] = np.split(full, np.cumsum(sizes)[:-1])
    return out


def _points3(mesh: meshio.Mesh) -> np.ndarray:
    p = np.asarray(mesh.points, dtype=np.float64)
    return np.column_stack([p, np.zeros((len(p), 3 - p.shape[1]))]) if p.shape[1] < 3 else p


def write_fields(path: str | os.PathLike, mesh: meshio.Mesh,
                 point_data: Mapping[str, np.ndarray] | None = None,
                 cell_data: Mapping[str, np.ndarray | Sequence[np.ndarray]] | None = None, *,
                 units: Mapping[str, str] | None = None) -> Path:
    """Write fields on a mesh to a VTU or XDMF file (by suffix) that ParaView opens.

    Parameters
    ----------
    path : ``.vtu`` or ``.xdmf`` / ``.xmf`` (XDMF also writes ``<stem>.h5`` beside it)
    mesh : the mesh (points (n_points, 2 or 3) in m)
    point_data : name -> (n_points,), (n_points, k) or flat (n_points * k,)
    cell_data : name -> list of per-block arrays, or one array over all cells
        (blocks in mesh order), (n_cells,), (n_cells, k) or flat
    units : name -> SI units, appended to the field name as ``"name [unit]"``

    Returns
    -------
    Path of the written file
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MeshError(f"cannot write {path}: use a .vtu or .xdmf file name")
    out = meshio.Mesh(_points3(mesh), mesh.cells, point_data=_point_data(mesh, point_data, units),
                      cell_data=_cell_data(mesh, cell_data, units))
    meshio.write(path, out, file_format=fmt)
    return path


class _TimeSeriesWriter(meshio.xdmf.TimeSeriesWriter):
    """meshio's writer, with the ``.h5`` file beside the ``.xdmf`` (not in the cwd)."""

    def __enter__(self):
        import h5py
        self.h5_filename = str(self.filename.with_suffix(".h5"))
        self.h5_file = h5py.File(self.h5_filename, "w")
        return self


def write_time_series(path_xdmf: str | os.PathLike, mesh: meshio.Mesh, times: Sequence[float],
                      point_data_per_step: Sequence[Mapping[str, np.ndarray]], *,
                      cell_data_per_step: Sequence[Mapping] | None = None,
                      units: Mapping[str, str] | None = None) -> Path:
    """Write an XDMF time series (one mesh, fields at several times) for ParaView.

    Parameters
    ----------
    path_xdmf : ``.xdmf`` file; the data go to ``<stem>.h5`` in the same directory
    mesh : the mesh
    times : (n_steps,) times in s
    point_data_per_step : one ``point_data`` dict per time (see :func:`write_fields`)
    cell_data_per_step : optional, one ``cell_data`` dict per time
    units : name -> SI units, appended to the field names

    Returns
    -------
    Path of the ``.xdmf`` file
    """
    path = Path(path_xdmf)
    if path.suffix.lower() not in (".xdmf", ".xmf"):
        raise MeshError(f"cannot write a time series to {path}: use an .xdmf file name")
    times = list(times)
    cells_per_step = cell_data_per_step or [None] * len(times)
    if len(point_data_per_step) != len(times) or len(cells_per_step) != len(times):
        raise MeshError(f"{path}: {len(times)} times but {len(point_data_per_step)} point-data "
                        f"and {len(cells_per_step)} cell-data steps")
    with _TimeSeriesWriter(path) as writer:
        writer.write_points_cells(_points3(mesh), mesh.cells)
        for t, pd, cd in zip(times, point_data_per_step, cells_per_step):   # loop over steps
            writer.write_data(float(t), point_data=_point_data(mesh, pd, units),
                              cell_data=_cell_data(mesh, cd, units))
    return path
