"""HDF5 snapshot store: named nodal / quadrature / cell fields, many snapshots.

Rows are stored in global entity-major order (``row = entity * n_components +
component``), one column per snapshot, so that the file does not depend on the
number of ranks that wrote it, and any number of ranks can read it. See
``docs/snapshots.md`` for the file layout.

Writing is collective: each rank passes its local row block, rank 0 gathers it
(``Gatherv``, one field and a bounded number of columns at a time) and writes
(h5py from pip has no parallel HDF5). The file is written to a temporary and
renamed onto its path when the ``with`` block ends without error
(:mod:`rom.io.atomic`). Reading: every rank opens the file read-only and reads
its own row block.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np
from mpi4py import MPI

from ..parallel import UserError, as_comm, even_split, raise_if_failed
from .atomic import AtomicH5, stamp_provenance

__all__ = [
    "FIELD_DTYPES",
    "FIELD_KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLE_DTYPE",
    "FieldInfo",
    "Loading",
    "SnapshotError",
    "SnapshotStore",
    "nonfinite",
]

SCHEMA = "rom.snapshots"
SCHEMA_VERSION = 1
FIELD_KINDS = ("nodal", "quadrature", "cell")
#: storage types of a field's values (``add_field(dtype=...)``); reads return float64
FIELD_DTYPES = ("float64", "float32")
TABLE_DTYPE = np.dtype([("loading", np.int64), ("time", np.float64), ("step", np.int64)])
_CHUNK_ROWS = 32768            # rows per HDF5 chunk (chunks are one column wide)
_GATHER_BYTES = 1 << 27        # at most 128 MiB of a field gathered on rank 0 at once
_MPI_TYPES = {"float64": MPI.DOUBLE, "float32": MPI.FLOAT}


class SnapshotError(UserError, ValueError):
    """Bad snapshot data or a file that is not a snapshot store (a ``ValueError``)."""


@dataclass(frozen=True)
class FieldInfo:
    """Description of one stored field.

    Attributes
    ----------
    name : field name
    kind : ``"nodal"``, ``"quadrature"`` (integration points) or ``"cell"``
    n_entities : global number of nodes / integration points / cells
    n_components : values per entity (rows are entity-major)
    units : SI units, e.g. ``"m"`` or ``"Pa"`` (free text)
    dtype : storage type in the file, ``"float64"`` or ``"float32"`` (reads always
        return float64)
    """

    name: str
    kind: str
    n_entities: int
    n_components: int
    units: str
    dtype: str = "float64"

    @property
    def n_rows(self) -> int:
        """Global number of rows, ``n_entities * n_components``."""
        return self.n_entities * self.n_components

    def __getitem__(self, key: str) -> Any:
        """Mapping-style access (``info["n_entities"]``), for code that treats it as a dict."""
        if key not in ("name", "kind", "n_entities", "n_components", "units", "n_rows", "dtype"):
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class Loading:
    """A loading case: its id (index), name and parameters (scalars, arrays, dicts)."""

    id: int
    name: str
    parameters: dict = dc_field(default_factory=dict)


# ---------------------------------------------------------------- parameters
def _encode_parameters(params: Mapping[str, Any], group: h5py.Group) -> str:
    """Store arrays of ``params`` as datasets of ``group``; return the JSON of the rest."""
    def enc(value: Any, path: str) -> Any:
        if isinstance(value, np.ndarray) and value.ndim > 0:
            name = path.replace("/", "|") or "value"
            while name in group:
                name += "_"
            group.create_dataset(name, data=value)
            return {"$array": name}
        if isinstance(value, np.generic | np.ndarray):
            return value.item()
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise SnapshotError(f"loading parameter {path!r}: dictionary keys must be strings")
            return {k: enc(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [enc(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if value is None or isinstance(value, str | bool | int | float):
            return value
        raise SnapshotError(f"loading parameter {path!r}: cannot store a {type(value).__name__}")

    encoded = enc(dict(params), "")
    for key, value in params.items():  # numeric/str scalars also as attributes, for h5ls
        if isinstance(value, str | bool | int | float | np.generic):
            group.attrs[key] = value
    return json.dumps(encoded, sort_keys=True)


def _decode_parameters(text: str, group: h5py.Group) -> dict:
    def hook(obj: dict) -> Any:
        if set(obj) == {"$array"}:
            return group[obj["$array"]][()]
        return obj
    return json.loads(text, object_hook=hook)


# ---------------------------------------------------------------- helpers
def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _agree(comm: MPI.Comm, message: str | None) -> None:
    """Collective: raise :class:`SnapshotError` on every rank if any rank has a message."""
    raise_if_failed(message, comm, SnapshotError)


def _open_read(path: Path) -> h5py.File:
    """Open ``path`` read-only without file locking, checking the schema."""
    if not path.exists():
        raise FileNotFoundError(f"snapshot store not found: {path}")
    try:
        try:
            f = h5py.File(path, "r", locking=False)
        except TypeError:  # old h5py without the locking argument
            f = h5py.File(path, "r")
        except OSError as exc:
            if "lock" not in str(exc):
                raise
            f = h5py.File(path, "r")  # already open in this process with locking on
    except OSError as exc:
        raise SnapshotError(f"{path} is not a rom snapshot store (not an HDF5 file: {exc})") from None
    schema = _str(f.attrs.get("schema", ""))
    version = f.attrs.get("schema_version", None)
    if schema != SCHEMA or version is None:
        f.close()
        found = f"schema {schema!r}" if schema else "no 'schema' attribute"
        raise SnapshotError(f"{path} is not a rom snapshot store ({found}; expected {SCHEMA!r})")
    if int(version) != SCHEMA_VERSION:
        f.close()
        raise SnapshotError(f"{path}: snapshot store schema version {int(version)} is not "
                            f"supported (this rom reads version {SCHEMA_VERSION})")
    return f


def _load_meta(f: h5py.File) -> tuple[dict, list, np.ndarray, str | None]:
    """(fields, loadings, snapshot table, mesh path) of an open store."""
    fields = {}
    for name, grp in f["fields"].items():
        a = grp["values"].attrs
        fields[name] = FieldInfo(name, _str(a["kind"]), int(a["n_entities"]),
                                 int(a["n_components"]), _str(a["units"]),
                                 np.dtype(grp["values"].dtype).name)
    loadings = []
    for key in sorted(f["loadings"], key=int):
        grp = f["loadings"][key]
        params = _decode_parameters(_str(grp.attrs["parameters_json"]), grp["parameters"])
        loadings.append(Loading(int(key), _str(grp.attrs["name"]), params))
    s = f["snapshots"]
    table = np.empty(s["time"].shape[0], dtype=TABLE_DTYPE)
    for name in TABLE_DTYPE.names:
        table[name] = s[name][()]
    mesh_path = _str(f.attrs["mesh_path"]) if "mesh_path" in f.attrs else None
    return fields, loadings, table, mesh_path


def _rows_runs(rows: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """Row ranges [a, b) made of consecutive HDF5 chunks that contain some of ``rows`` (sorted)."""
    ids = np.unique(rows // chunk)
    if ids.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) > 1)
    starts = ids[np.concatenate([[0], breaks + 1])]
    stops = ids[np.concatenate([breaks, [len(ids) - 1]])] + 1
    return [(int(a) * chunk, int(b) * chunk) for a, b in zip(starts, stops)]


def _read_cols(dset: h5py.Dataset, r0: int, r1: int, cols: slice | np.ndarray) -> np.ndarray:
    """``dset[r0:r1, cols]`` for a slice or any integer index array."""
    if isinstance(cols, slice):
        return dset[r0:r1, cols]
    if cols.size == 0:
        return np.empty((r1 - r0, 0), dtype=dset.dtype)
    u, inv = np.unique(cols, return_inverse=True)
    if u[-1] - u[0] + 1 <= 2 * u.size + 8:        # dense enough: read the range
        block = dset[r0:r1, int(u[0]):int(u[-1]) + 1][:, u - u[0]]
    else:
        block = dset[r0:r1, list(u)]
    return block[:, inv]


def nonfinite(a, block_bytes: int = _GATHER_BYTES) -> tuple[int, int, int] | None:
    """Where ``a`` (an array or an h5py dataset) holds NaN or Inf: ``(first index along
    axis 0, number of NaN, number of Inf)``, or ``None``. Read and checked in slabs of
    ``a[i:j]`` of at most ``block_bytes`` (bounded memory whatever the size of ``a``)."""
    if len(a.shape) == 0:
        v = float(np.asarray(a[()]))
        return None if np.isfinite(v) else (0, int(np.isnan(v)), int(np.isinf(v)))
    n = a.shape[0]
    if 0 in a.shape:
        return None
    per = max(1, int(np.prod(a.shape[1:])) * 8)
    step = max(1, block_bytes // per)
    first, n_nan, n_inf = None, 0, 0
    for i in range(0, n, step):  # loop over slabs
        slab = np.asarray(a[i:i + step])
        bad = ~np.isfinite(slab)
        if not bad.any():
            continue
        if first is None:
            first = i + int(np.flatnonzero(bad.reshape(len(slab), -1).any(axis=1))[0])
        nan = int(np.isnan(slab).sum())
        n_nan, n_inf = n_nan + nan, n_inf + int(bad.sum()) - nan
    return None if first is None else (first, n_nan, n_inf)


def _describe(loading: str, steps: np.ndarray, times: np.ndarray, j: int | None = None) -> str:
    if j is None and steps.size == 1:
        j = 0
    if j is not None:
        return f"snapshot (loading {loading!r}, step {int(steps[j])}, time {float(times[j]):g})"
    return (f"snapshots (loading {loading!r}, steps {int(steps[0])}..{int(steps[-1])}, "
            f"times {float(times[0]):g}..{float(times[-1]):g})")


# ---------------------------------------------------------------- the store
class SnapshotStore:
    """HDF5 store of snapshots of named fields, written and read at any rank count.

    Do not construct directly: use :meth:`create` / :meth:`update` (writing,
    collective, a context manager) or :meth:`open` (reading).

    Examples
    --------
    >>> with SnapshotStore.create("snaps.h5", comm=comm) as store:      # doctest: +SKIP
    ...     store.add_field("u", kind="nodal", n_entities=n_nodes, n_components=3, units="m")
    ...     lid = store.add_loading("hot", {"T_max": 1300.0})
    ...     for step, t in enumerate(times):
    ...         store.append({"u": u_local}, loading=lid, time=t, step=step)
    >>> store = SnapshotStore.open("snaps.h5", comm=comm)               # doctest: +SKIP
    >>> X = store.read("u")            # this rank's rows, (n_local, n_snapshots)
    """

    def __init__(self, path: Path, comm: MPI.Comm, *, writer: AtomicH5 | None = None,
                 reader: h5py.File | None = None):
        self.path = path
        self.comm = comm
        self._writer = writer
        self._file = reader
        self._fields: dict[str, FieldInfo] = {}
        self._loadings: list[Loading] = []
        self._table = np.empty(0, dtype=TABLE_DTYPE)
        self._mesh_path: str | None = None
        # field -> (this rank's last rows=, rank 0: the gathered global rows), reused when
        # every rank passes the same rows again (the usual case: a fixed partition)
        self._rows_cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    # ------------------------------------------------------------ open / close
    @classmethod
    def create(cls, path: str | os.PathLike, *, comm: MPI.Comm | None = None,
               overwrite: bool = False, provenance: Mapping[str, Any] | None = None
               ) -> SnapshotStore:
        """Start writing a new store (collective); use it as a context manager.

        The file appears at ``path`` only when the ``with`` block ends (or
        :meth:`close` is called) without error on every rank, or at
        :meth:`commit`. To keep the snapshots written before a solver failure,
        catch the failure inside the block and let the block end normally.

        Parameters
        ----------
        path : destination file (``.h5``)
        comm : communicator of the writing ranks (``None``: serial)
        overwrite : replace an existing file (only when writing succeeds)
        provenance : extra provenance attributes (e.g. ``{"case_hash": ...}``)

        Raises
        ------
        FileExistsError : ``path`` exists and ``overwrite`` is False
        """
        comm = as_comm(comm)
        path = Path(path).absolute()
        exists = comm.bcast(path.exists() if comm.rank == 0 else None, root=0)
        if exists and not overwrite:
            raise FileExistsError(f"snapshot store {path} already exists (pass overwrite=True)")
        store = cls(path, comm, writer=AtomicH5(path, comm=comm, mode="w"))

        def setup(f: h5py.File) -> None:
            stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                             writer_ranks=comm.size, **dict(provenance or {}))
            f.create_group("fields")
            f.create_group("loadings")
            s = f.create_group("snapshots")
            for name in TABLE_DTYPE.names:
                s.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(4096,),
                                 dtype=TABLE_DTYPE[name])
        try:
            store._on_writer(setup, "create")
        except BaseException:
            store.close(success=False)
            raise
        return store

    @classmethod
    def update(cls, path: str | os.PathLike, *, comm: MPI.Comm | None = None) -> SnapshotStore:
        """Append to an existing store atomically (collective; a context manager like :meth:`create`).

        The existing file is copied to a temporary; ``path`` is replaced only
        when the block ends without error.
        """
        comm = as_comm(comm)
        path = Path(path).absolute()
        meta, error = None, None
        if comm.rank == 0:
            try:
                with _open_read(path) as f:
                    meta = _load_meta(f)
            except (OSError, ValueError) as exc:
                error = exc
        error_info = comm.bcast(None if error is None else (type(error), str(error)), root=0)
        if error_info is not None:
            if error is not None:
                raise error
            raise error_info[0](error_info[1])
        meta = comm.bcast(meta, root=0)
        odd = [f"{f.name} ({f.dtype})" for f in meta[0].values() if f.dtype not in FIELD_DTYPES]
        if odd:
            raise SnapshotError(f"{path}: cannot append to field(s) {', '.join(odd)}: this rom "
                                f"writes {' or '.join(FIELD_DTYPES)} values")
        store = cls(path, comm, writer=AtomicH5(path, comm=comm, mode="a"))
        store._fields, store._loadings, store._table, store._mesh_path = meta
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, *, comm: MPI.Comm | None = None) -> SnapshotStore:
        """Open a store for reading (collective: every rank opens the file read-only).

        Raises
        ------
        FileNotFoundError : no file at ``path``
        SnapshotError : (a ``ValueError``) not an HDF5 file, not a rom snapshot
            store, or an unsupported schema version; the message names the file
        """
        comm = as_comm(comm)
        path = Path(path).absolute()
        f, error = None, None
        try:
            f = _open_read(path)
        except (OSError, ValueError) as exc:
            error = exc
        try:
            raise_if_failed(error, comm, SnapshotError, what=f"opening {path}")
        except BaseException:
            if f is not None:
                f.close()
            raise
        store = cls(path, comm, reader=f)
        store._fields, store._loadings, store._table, store._mesh_path = _load_meta(f)
        return store

    def commit(self) -> None:
        """Collective: publish what was written so far at :attr:`path`, and keep writing."""
        self._require_writer().commit()

    def close(self, success: bool = True) -> None:
        """Close the store. A writer publishes the file if ``success`` on every rank (collective)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close(success=success)
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)

    # ------------------------------------------------------------ metadata
    @property
    def fields(self) -> dict[str, FieldInfo]:
        """Stored fields by name."""
        return dict(self._fields)

    @property
    def loadings(self) -> list[Loading]:
        """Loadings in id order (``loadings[i].id == i``)."""
        return list(self._loadings)

    @property
    def n_snapshots(self) -> int:
        """Number of snapshot columns (shared by all fields)."""
        return int(self._table.size)

    @property
    def mesh_path(self) -> str | None:
        """Path of the mesh file the rows refer to, if recorded."""
        return self._mesh_path

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (schema and provenance) of a store open for reading."""
        f = self._require_reader()
        return {k: (_str(v) if isinstance(v, bytes) else v.item() if isinstance(v, np.generic)
                    else v) for k, v in f.attrs.items()}

    def nonfinite_message(self, field: str, values: np.ndarray,
                          columns: np.ndarray | None = None) -> str | None:
        """A message naming this store, ``field`` and the first snapshot where ``values``
        (columns, axis 0: one per snapshot ``columns``, default all) hold NaN or Inf, or
        ``None`` (checked by :func:`nonfinite`, bounded memory)."""
        found = nonfinite(values)
        if found is None:
            return None
        j, n_nan, n_inf = found
        col = int(j if columns is None else np.asarray(columns)[j])
        tag = self._table[col]
        where = _describe(self._loadings[int(tag["loading"])].name, np.array([tag["step"]]),
                          np.array([tag["time"]]))
        return (f"{self.path}: field {field!r} holds {n_nan} NaN and {n_inf} Inf value(s) "
                f"(rows of rank {self.comm.rank}), the first in the {where}; the store is "
                "damaged: write it again with python -m rom.fom")

    def snapshot_table(self) -> np.ndarray:
        """Tags of every column: structured array ``(n_snapshots,)`` with fields
        ``loading`` (loading id), ``time`` (s) and ``step``."""
        return self._table.copy()

    def field(self, name: str) -> FieldInfo:
        """The :class:`FieldInfo` of ``name``; the error lists the available fields."""
        try:
            return self._fields[name]
        except KeyError:
            raise SnapshotError(f"{self.path}: unknown field {name!r}; available fields: "
                                f"{sorted(self._fields) or 'none'}") from None

    def loading_id(self, loading: int | str) -> int:
        """Id of a loading given by id or name."""
        if isinstance(loading, str):
            for item in self._loadings:
                if item.name == loading:
                    return item.id
            raise SnapshotError(f"{self.path}: unknown loading {loading!r}; available: "
                                f"{[item.name for item in self._loadings]}")
        lid = int(loading)
        if not 0 <= lid < len(self._loadings):
            raise SnapshotError(f"{self.path}: no loading with id {lid} "
                                f"({len(self._loadings)} loadings)")
        return lid

    def columns_of(self, loading: int | str | Sequence[int | str]) -> np.ndarray:
        """Column indices (in storage order) of the snapshots of one or several loadings."""
        items = [loading] if isinstance(loading, int | str | np.integer) else list(loading)
        ids = [self.loading_id(item) for item in items]
        return np.flatnonzero(np.isin(self._table["loading"], ids))

    def row_partition(self, field: str) -> np.ndarray:
        """Offsets ``(size + 1,)`` of the ``rows="even"`` split of ``field`` over the ranks."""
        return even_split(self.field(field).n_rows, self.comm.size)

    def read_mesh(self):
        """The mesh (``meshio.Mesh``) stored in the file, else read from :attr:`mesh_path`
        (a relative path is looked up next to the store, then from the current directory);
        ``None`` if neither."""
        f = self._require_reader()
        if "mesh" in f:
            import meshio
            g = f["mesh"]
            cells = [(_str(g["cells"][k].attrs["cell_type"]), g["cells"][k][()])
                     for k in sorted(g["cells"], key=int)]
            return meshio.Mesh(g["points"][()], cells)
        if self._mesh_path is None:
            return None
        from .mesh import read_mesh
        near = self.path.parent / self._mesh_path
        return read_mesh(near if near.exists() else self._mesh_path)

    # ------------------------------------------------------------ reading
    def read(self, field: str, *, columns: int | slice | Sequence[int] | np.ndarray | None = None,
             loading: int | str | Sequence[int | str] | None = None,
             rows: str | tuple[int, int] | Sequence[int] | np.ndarray = "even",
             dtype: type | None = np.float64) -> np.ndarray:
        """This rank's rows of ``field`` for the chosen snapshot columns.

        Not collective: each rank reads its own rows directly from the file.

        Parameters
        ----------
        field : field name
        columns : ``None`` (all), an int, a slice, or an index / boolean array
        loading : instead of ``columns``: the columns of one or several loadings
        rows : ``"even"`` (rank r gets rows ``even_split(n_rows, size)[r:r+2]``),
            ``(start, stop)``, or an array of global row indices (any order)
        dtype : of the result, default float64 (a float32 field is converted exactly);
            ``None``: the stored one (float32 for ``snapshots.precision: single``)

        Returns
        -------
        ndarray, (n_local_rows, n_columns), C-contiguous, in the field's units
        """
        f = self._require_reader()
        info = self.field(field)
        cols = self._select_columns(columns, loading)
        dset = f["fields"][field]["values"]
        n = info.n_rows
        if isinstance(rows, str):
            if rows != "even":
                raise SnapshotError(f"read({field!r}): rows must be 'even', (start, stop) or "
                                    f"an index array, not {rows!r}")
            r0, r1 = even_split(n, self.comm.size)[self.comm.rank:self.comm.rank + 2]
            return np.ascontiguousarray(_read_cols(dset, int(r0), int(r1), cols), dtype=dtype)
        if isinstance(rows, tuple) and len(rows) == 2:
            r0, r1 = int(rows[0]), int(rows[1])
            if not 0 <= r0 <= r1 <= n:
                raise SnapshotError(f"read({field!r}): row range {rows} outside [0, {n}]")
            return np.ascontiguousarray(_read_cols(dset, r0, r1, cols), dtype=dtype)
        idx = np.asarray(rows, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise SnapshotError(f"read({field!r}): row indices outside [0, {n})")
        u, inv = np.unique(idx, return_inverse=True)
        ncols = self._n_selected(cols)
        out = np.empty((u.size, ncols), dtype=dset.dtype if dtype is None else dtype)
        chunk = dset.chunks[0] if dset.chunks else _CHUNK_ROWS
        span = max(chunk, (_GATHER_BYTES // (8 * max(ncols, 1))) // chunk * chunk)
        for a0, b0 in _rows_runs(u, chunk):         # loop over runs of HDF5 chunks, pieces of
            for a in range(a0, min(b0, n), span):    # bounded size
                b = min(a + span, b0, n)
                lo, hi = np.searchsorted(u, [a, b])
                if hi > lo:
                    out[lo:hi] = _read_cols(dset, a, b, cols)[u[lo:hi] - a]
        return np.ascontiguousarray(out[inv])

    def read_global(self, field: str, *, columns=None, loading=None) -> np.ndarray:
        """All rows of ``field`` on every rank, (n_rows, n_columns); for small data."""
        return self.read(field, columns=columns, loading=loading,
                         rows=(0, self.field(field).n_rows))

    def _select_columns(self, columns, loading) -> slice | np.ndarray:
        m = self.n_snapshots
        if loading is not None:
            if columns is not None:
                raise SnapshotError("read: give columns or loading, not both")
            return self.columns_of(loading)
        if columns is None:
            return slice(0, m)
        if isinstance(columns, slice):
            start, stop, step = columns.indices(m)
            if step > 0:
                return slice(start, stop, step)
            return np.arange(start, stop, step)
        idx = np.asarray(columns)
        if idx.dtype == bool:
            if idx.shape != (m,):
                raise SnapshotError(f"read: boolean column mask has shape {idx.shape}, "
                                    f"expected ({m},)")
            return np.flatnonzero(idx)
        idx = np.atleast_1d(idx).astype(np.int64).ravel()
        if idx.size and (idx.min() < -m or idx.max() >= m):
            raise SnapshotError(f"{self.path}: column index out of range ({m} snapshots)")
        return np.where(idx < 0, idx + m, idx)

    def _n_selected(self, cols: slice | np.ndarray) -> int:
        return len(range(*cols.indices(self.n_snapshots))) if isinstance(cols, slice) else cols.size

    def _require_reader(self) -> h5py.File:
        if self._file is None:
            raise SnapshotError(f"{self.path}: store is not open for reading "
                                "(use SnapshotStore.open after the writer closed it)")
        return self._file

    def _require_writer(self) -> AtomicH5:
        if self._writer is None:
            raise SnapshotError(f"{self.path}: store is not open for writing")
        return self._writer

    def _on_writer(self, work, what: str) -> None:
        """Collective: run ``work(file)`` on rank 0; an error there is raised on every rank."""
        f = self._require_writer().file
        error = None
        if f is not None:
            try:
                work(f)
            except Exception as exc:  # noqa: BLE001 - reported on every rank
                error = f"{what} failed on rank 0 writing {self.path}: {type(exc).__name__}: {exc}"
        _agree(self.comm, error)

    # ------------------------------------------------------------ writing
    def _check_same(self, what: str, value: Any) -> None:
        """Collective: the arguments of a declaration must be equal on every rank."""
        values = self.comm.allgather(value) if self.comm.size > 1 else [value]
        if any(v != values[0] for v in values):
            detail = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
            raise SnapshotError(f"{what}: arguments differ between ranks ({detail})")

    def add_field(self, name: str, *, kind: str, n_entities: int, n_components: int = 1,
                  units: str = "", dtype: str | np.dtype | type = "float64") -> FieldInfo:
        """Declare a field (collective, same arguments on every rank, before any :meth:`append`).

        Parameters
        ----------
        name : field name (no ``/``)
        kind : ``"nodal"``, ``"quadrature"`` (integration points) or ``"cell"``
        n_entities : GLOBAL number of nodes / integration points / cells
        n_components : values per entity; the field has ``n_entities * n_components`` rows
        units : SI units of the values (e.g. ``"m"``, ``"Pa"``, ``"K"``)
        dtype : storage type, ``"float64"`` (default) or ``"float32"`` (half the bytes;
            :meth:`append` rounds the values to nearest, :meth:`read` returns them as
            float64). The file's dataset has this type, so the store describes itself.
        """
        self._require_writer()
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = str(dtype)
        self._check_same(f"add_field({name!r})", (name, kind, int(n_entities), int(n_components),
                                                   units, dtype_name))
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise SnapshotError(f"add_field: invalid field name {name!r}")
        if name in self._fields:
            raise SnapshotError(f"add_field: field {name!r} already exists")
        if kind not in FIELD_KINDS:
            raise SnapshotError(f"add_field({name!r}): kind must be one of {FIELD_KINDS}, "
                                f"not {kind!r}")
        if dtype_name not in FIELD_DTYPES:
            raise SnapshotError(f"add_field({name!r}): dtype must be one of {FIELD_DTYPES}, "
                                f"not {dtype!r}")
        if int(n_entities) <= 0 or int(n_components) <= 0:
            raise SnapshotError(f"add_field({name!r}): n_entities and n_components must be "
                                f"positive (got {n_entities}, {n_components})")
        if self.n_snapshots:
            raise SnapshotError(f"add_field({name!r}): declare every field before the first "
                                "append (all fields share the snapshot columns)")
        info = FieldInfo(name, kind, int(n_entities), int(n_components), str(units), dtype_name)

        def work(f: h5py.File) -> None:
            dset = f["fields"].create_group(name).create_dataset(
                "values", shape=(info.n_rows, 0), maxshape=(info.n_rows, None), dtype=dtype_name,
                chunks=(min(info.n_rows, _CHUNK_ROWS), 1))
            dset.attrs.update(kind=kind, n_entities=info.n_entities,
                              n_components=info.n_components, n_rows=info.n_rows,
                              units=info.units, row_order="entity-major")
        self._on_writer(work, f"add_field({name!r})")
        self._fields[name] = info
        return info

    def add_loading(self, name: str, parameters: Mapping[str, Any] | None = None) -> int:
        """Declare a loading (collective); returns its id. Parameters are taken from rank 0.

        Parameters
        ----------
        name : unique loading name
        parameters : scalars, strings, numpy arrays, lists and nested dicts (str keys)
        """
        writer = self._require_writer()
        self._check_same("add_loading", name)
        if any(item.name == name for item in self._loadings):
            raise SnapshotError(f"add_loading: loading {name!r} already exists")
        params = self.comm.bcast(dict(parameters or {}) if self.comm.rank == 0 else None, root=0)
        lid = len(self._loadings)
        error = None
        if writer.file is not None:
            grp = writer.file["loadings"].create_group(str(lid))
            grp.attrs["name"] = name
            try:
                grp.attrs["parameters_json"] = _encode_parameters(params, grp.create_group(
                    "parameters"))
            except SnapshotError as exc:
                del writer.file["loadings"][str(lid)]
                error = str(exc)
        _agree(self.comm, error if self.comm.rank == 0 else None)
        self._loadings.append(Loading(lid, str(name), params))
        return lid

    def set_mesh(self, *, path: str | os.PathLike | None = None, mesh=None) -> None:
        """Record the mesh the rows refer to (collective; ``mesh`` is used from rank 0).

        Parameters
        ----------
        path : mesh file, stored as given (relative paths: relative to the store)
        mesh : optional ``meshio.Mesh`` stored in the file under ``/mesh``
        """

        def work(f: h5py.File) -> None:
            if path is not None:
                f.attrs["mesh_path"] = os.fspath(path)
            if mesh is not None:
                if "mesh" in f:
                    del f["mesh"]
                g = f.create_group("mesh")
                g.create_dataset("points", data=np.asarray(mesh.points, dtype=np.float64))
                cg = g.create_group("cells")
                for i, block in enumerate(mesh.cells):          # loop over cell blocks
                    d = cg.create_dataset(str(i), data=np.asarray(block.data))
                    d.attrs["cell_type"] = block.type
        self._on_writer(work, "set_mesh")
        if path is not None:
            self._mesh_path = os.fspath(path)

    def append(self, field_values: Mapping[str, np.ndarray], *, loading: int | str,
               time: float | Sequence[float] | np.ndarray, step: int | Sequence[int] | np.ndarray,
               rows: np.ndarray | Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Append one or several snapshot columns of every field (collective).

        Parameters
        ----------
        field_values : for EVERY declared field, this rank's row block,
            ``(n_local_rows,)`` for one snapshot or ``(n_local_rows, k)`` for k
            at once (same k for all fields), in the field's units
        loading : loading id or name (one loading for the k columns)
        time : time(s) of the snapshot(s) in s, scalar or ``(k,)``
        step : step number(s), scalar or ``(k,)``
        rows : ``None``: each rank's rows are a contiguous block, blocks in rank
            order; else the global row indices ``(n_local_rows,)`` of the local
            rows (any order; together a permutation of the field's rows), one
            array for all fields or a dict by field name

        Returns
        -------
        ndarray (k,) : the column indices of the new snapshots

        Raises
        ------
        SnapshotError : (a ``ValueError``, on every rank) NaN/Inf values, wrong
            shapes, missing or unknown fields, inconsistent rows or tags; the
            message names the field, the snapshot (loading, step, time) and the rank
        """
        writer = self._require_writer()
        comm = self.comm
        lid = self.loading_id(loading)
        lname = self._loadings[lid].name
        times = np.atleast_1d(np.asarray(time, dtype=np.float64)).ravel()
        steps = np.atleast_1d(np.asarray(step)).ravel()
        names = sorted(self._fields)
        blocks: dict[str, np.ndarray] = {}
        local_rows: dict[str, np.ndarray | None] = {}
        message = None
        try:
            blocks, times, steps = self._local_blocks(field_values, lname, times, steps)
            local_rows = self._local_rows(rows, blocks, lname, times, steps)
        except SnapshotError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - any local failure must reach every rank
            message = f"append (loading {lname!r}) on rank {comm.rank}: {type(exc).__name__}: {exc}"
        counts_local = [blocks[n].shape[0] if n in blocks else -1 for n in names]
        explicit_local = [local_rows.get(n) is not None for n in names]
        cached_local = [local_rows.get(n) is not None and n in self._rows_cache
                        and np.array_equal(self._rows_cache[n][0], local_rows[n]) for n in names]
        info = (message, lid, times.tobytes(), steps.tobytes(), counts_local, explicit_local,
                cached_local)
        gathered = comm.allgather(info) if comm.size > 1 else [info]
        _agree(comm, next((g[0] for g in gathered if g[0] is not None), None))
        if any(g[1:4] != gathered[0][1:4] for g in gathered):
            raise SnapshotError(f"append: loading/time/step differ between ranks "
                                f"({_describe(lname, steps, times)} on rank {comm.rank})")
        counts = np.array([g[4] for g in gathered], dtype=np.int64)      # (size, n_fields)
        explicit = np.array([g[5] for g in gathered], dtype=bool)
        cached = np.array([g[6] for g in gathered], dtype=bool).all(axis=0)
        errors = []
        for j, name in enumerate(names):
            n_rows = self._fields[name].n_rows
            if counts[:, j].sum() != n_rows:
                errors.append(f"field {name!r}, {_describe(lname, steps, times)}: the ranks' row "
                              f"blocks have {' + '.join(map(str, counts[:, j]))} = "
                              f"{counts[:, j].sum()} rows, expected {n_rows} "
                              "(n_entities * n_components)")
            elif explicit[:, j].any() and not explicit[:, j].all():
                errors.append(f"field {name!r}: rows= given on ranks "
                              f"{np.flatnonzero(explicit[:, j]).tolist()} only (give it on all)")
        _agree(comm, "; ".join(errors) if errors and comm.rank == 0 else None)
        # explicit rows: gather and check they form a permutation (rank 0)
        global_rows: dict[str, np.ndarray | None] = {}
        message = None
        for j, name in enumerate(names):
            if not explicit[0, j]:
                global_rows[name] = None
                continue
            if cached[j]:
                global_rows[name] = self._rows_cache[name][1]
                continue
            r = self._gatherv(local_rows[name].reshape(-1, 1), counts[:, j], MPI.INT64_T)
            global_rows[name] = None if r is None else r.ravel()
            if r is not None and message is None:
                n_rows = self._fields[name].n_rows
                ok = r.min() >= 0 and r.max() < n_rows and np.bincount(
                    r.ravel(), minlength=n_rows).max() == 1
                if not ok:
                    message = (f"field {name!r}, {_describe(lname, steps, times)}: rows= of all "
                               f"ranks are not a permutation of 0..{n_rows - 1} "
                               "(repeated or out-of-range row indices)")
        _agree(comm, message)
        for j, name in enumerate(names):
            if explicit[0, j] and not cached[j]:
                self._rows_cache[name] = (local_rows[name].copy(), global_rows[name])
        return self._write_columns(writer, blocks, global_rows, counts, lid, times, steps)

    def _local_blocks(self, field_values, lname, times, steps):
        """Validate this rank's values: (blocks (n_local, k) float64 by name, times, steps)."""
        rank = self.comm.rank
        where = _describe(lname, steps, times) if steps.size == times.size else f"loading {lname!r}"
        given = set(field_values)
        missing, unknown = sorted(set(self._fields) - given), sorted(given - set(self._fields))
        if missing or unknown:
            raise SnapshotError(f"append {where} on rank {rank}: missing field(s) {missing}, "
                                f"unknown field(s) {unknown}; declared fields: "
                                f"{sorted(self._fields)}")
        blocks, k = {}, None
        for name in sorted(given):
            arr = np.asarray(field_values[name])
            if arr.dtype.kind not in "biuf" or arr.ndim not in (1, 2):
                raise SnapshotError(f"field {name!r}, {where}, rank {rank}: expected a real array "
                                    f"(n_local_rows,) or (n_local_rows, k), got dtype "
                                    f"{arr.dtype} shape {arr.shape}")
            arr = np.ascontiguousarray(arr[:, None] if arr.ndim == 1 else arr, dtype=np.float64)
            if k is not None and arr.shape[1] != k:
                raise SnapshotError(f"field {name!r}, {where}, rank {rank}: {arr.shape[1]} "
                                    f"columns but other fields have {k}")
            k = arr.shape[1]
            blocks[name] = arr
        if k == 0 or k is None:
            raise SnapshotError(f"append {where} on rank {rank}: no snapshot columns given")
        for label, tags in (("time", times), ("step", steps)):
            if tags.size not in (1, k):
                raise SnapshotError(f"append (loading {lname!r}) on rank {rank}: {tags.size} "
                                    f"{label} values for {k} columns")
        if steps.dtype.kind not in "iu" and not np.all(np.mod(steps, 1) == 0):
            raise SnapshotError(f"append (loading {lname!r}): step must be integers, got {steps}")
        if not np.all(np.isfinite(times)):
            raise SnapshotError(f"append (loading {lname!r}): time must be finite, got {times}")
        times = np.broadcast_to(times, (k,)).copy()
        steps = np.broadcast_to(steps.astype(np.int64), (k,)).copy()
        for name, arr in blocks.items():
            finite = np.isfinite(arr)
            if not finite.all():
                j = int(np.flatnonzero(~finite.all(axis=0))[0])
                n_nan = int(np.isnan(arr).sum())
                n_inf = int(arr.size - finite.sum() - n_nan)
                raise SnapshotError(f"field {name!r}, {_describe(lname, steps, times, j)}: "
                                    f"{n_nan} NaN and {n_inf} Inf value(s) on rank {rank}")
            dtype = np.dtype(self._fields[name].dtype)
            if dtype != np.float64 and arr.size:
                big = np.abs(arr).max(axis=0) > np.finfo(dtype).max
                if big.any():
                    j = int(np.flatnonzero(big)[0])
                    raise SnapshotError(
                        f"field {name!r}, {_describe(lname, steps, times, j)}: values up to "
                        f"{np.abs(arr[:, j]).max():.3e} on rank {rank} do not fit the field's "
                        f"{dtype.name} storage (largest {np.finfo(dtype).max:.3e})")
        return blocks, times, steps

    def _local_rows(self, rows, blocks, lname, times, steps) -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {}
        for name, arr in blocks.items():
            r = rows.get(name) if isinstance(rows, Mapping) else rows
            if r is None:
                out[name] = None
                continue
            r = np.asarray(r)
            if r.dtype.kind not in "iu" or r.ndim != 1 or r.size != arr.shape[0]:
                raise SnapshotError(f"field {name!r}, {_describe(lname, steps, times)}, rank "
                                    f"{self.comm.rank}: rows= must be an integer array of "
                                    f"{arr.shape[0]} global row indices, got dtype {r.dtype} "
                                    f"shape {r.shape}")
            out[name] = np.ascontiguousarray(r, dtype=np.int64)
        return out

    def _gatherv(self, local: np.ndarray, counts: np.ndarray, mpitype) -> np.ndarray | None:
        """Row blocks ``(counts[r], w)`` of every rank stacked in rank order on rank 0."""
        comm = self.comm
        if comm.size == 1:
            return local
        width = local.shape[1]
        if comm.rank != 0:
            comm.Gatherv(local, None, root=0)
            return None
        recv = np.empty((int(counts.sum()), width), dtype=local.dtype)
        sizes = counts * width
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        comm.Gatherv(local, [recv, sizes, displs, mpitype], root=0)
        return recv

    def _write_columns(self, writer, blocks, global_rows, counts, lid, times, steps):
        """Gather and write the new columns (rank 0), bounded memory; collective."""
        comm, m0, k = self.comm, self.n_snapshots, times.size
        f = writer.file
        error: str | None = None
        try:
            if f is not None:
                for name in self._fields:
                    f["fields"][name]["values"].resize(m0 + k, axis=1)
        except Exception as exc:  # noqa: BLE001 - reported collectively below
            error = f"{type(exc).__name__}: {exc}"
        for j, name in enumerate(sorted(self._fields)):
            n_rows = self._fields[name].n_rows
            dtype = np.dtype(self._fields[name].dtype)     # rounded here: half the traffic
            batch = max(1, _GATHER_BYTES // (dtype.itemsize * n_rows))
            for c0 in range(0, k, batch):                  # loop over column batches
                c1 = min(k, c0 + batch)
                data = self._gatherv(np.ascontiguousarray(blocks[name][:, c0:c1], dtype=dtype),
                                     counts[:, j], _MPI_TYPES[dtype.name])
                if data is None or error is not None:
                    continue
                try:
                    if global_rows[name] is not None:
                        full = np.empty_like(data)
                        full[global_rows[name]] = data
                        data = full
                    f["fields"][name]["values"][:, m0 + c0:m0 + c1] = data
                except Exception as exc:  # noqa: BLE001
                    error = f"{type(exc).__name__}: {exc}"
        if f is not None and error is None:
            try:
                s = f["snapshots"]
                for tag, values in (("loading", np.full(k, lid)), ("time", times), ("step", steps)):
                    s[tag].resize((m0 + k,))
                    s[tag][m0:] = values
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
        if f is not None and error is not None:      # undo: keep the store consistent
            for name in self._fields:
                f["fields"][name]["values"].resize(m0, axis=1)
            for tag in TABLE_DTYPE.names:
                f["snapshots"][tag].resize((m0,))
        raise_if_failed(error, comm, OSError, what=f"writing "
                        f"{_describe(self._loadings[lid].name, steps, times)} to {self.path} "
                        "failed")
        new = np.empty(k, dtype=TABLE_DTYPE)
        new["loading"], new["time"], new["step"] = lid, times, steps
        self._table = np.concatenate([self._table, new])
        return np.arange(m0, m0 + k)
