"""The reduced model: a replicated reduced operator and distributed full-size bases, their
HDF5 save/load by row blocks, and :meth:`ReducedModel.solve`.

Where data lives (DESIGN.md section 7):

- :class:`~rom.online.operator.ReducedOperator`, replicated on every rank: the arrays at
  the q reduced points and the law; everything a reduced step needs;
- :class:`FullBases`, distributed: the full-size bases as :class:`~rom.linalg.rowblocks.RowBlocks`
  split over the model's communicator by the offline build's :class:`Partition` (blocks
  of nodes; blocks of whole elements' integration points). A model loaded with
  ``rom.load(path, comm=comm)`` reads each rank's rows only, and only when they are first
  used (fields on the mesh, enrichment); a query without enrichment reads none.

File layout (schema ``rom.online.reduced_model`` version 1), all arrays float64/int64,
the full-size ones in global row order whatever the number of ranks that wrote them:

``/full``     (size N: fields on the mesh and enrichment)
    ``phi`` (3 n_nodes, n) displacement modes [m]; ``phi_sv`` (n,) singular values;
    ``psi_p`` (n_qp, k) dual (p) modes; ``psi_p_sv``; ``psi_z`` (n_qp n_state, r)
    orthonormal internal-variable basis (point-major): the POD modes of the training, then
    one direction appended per enrichment that added one (only its span is used);
    ``psi_z_sv`` the singular values of the POD updated by the enrichments (for the
    record); ``psi_z_scale`` (n_state,) the scale of each internal variable in ``psi_z``
    (the basis holds ``z / psi_z_scale``: one scale per unit, the RMS of the training's
    variables of that unit, so that back stresses [Pa] and strains share one basis; ones
    for a law whose variables have one unit, and when absent); ``sigma`` (n_qp 6, s) stress modes times singular values [Pa], then the
    stress snapshots of the enrichments (ECM updates); ``f_unit`` (3 n_nodes,) external
    forces of unit amplitude [N]; ``weights_fe`` (n_qp,) [m^3]
``/reduced``  (size independent of N): :attr:`ReducedOperator.ARRAYS`
    ``points`` (q,) global integration points (ECM and imposed); ``weights`` (q,) [m^3]
    (0 at imposed points); ``imposed`` (k,); ``eps`` (q, 6, n) strains of the modes;
    ``nodes``, ``shape`` (q, n_en) temperature interpolation; ``node_coords`` (q, n_en, 3);
    ``f_red`` (n,) reduced external forces [N]
``/material`` attrs: the ``material:`` section as JSON; root attrs ``meta`` (JSON: case
file, mesh file, state names, tolerances, ``qp_layout`` the element blocks'
(elements, points per element) that define the point split), provenance.
"""
from __future__ import annotations

import copy as _copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..fom.config import MaterialConfig, TableSpec
from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh
from ..fom.setup import material_from_config
from ..io.atomic import atomic_h5, check_schema, stamp_provenance
from ..io.mesh import read_mesh
from ..linalg.rowblocks import RowBlocks
from ..parallel import UserError, as_comm, even_split, raise_if_failed
from . import checks as _checks
from .operator import ReducedOperator

__all__ = ["FullBases", "Partition", "ReducedModel", "SCHEMA", "SCHEMA_VERSION",
           "case_model_path", "load", "load_for_case"]

SCHEMA, SCHEMA_VERSION = "rom.online.reduced_model", 1
#: the full-size arrays (``/full``), distributed by rows; ``_sv``: replicated
DISTRIBUTED = ("phi", "psi_p", "psi_z", "sigma", "f_unit", "weights_fe")
SINGULAR = ("phi_sv", "psi_p_sv", "psi_z_sv")
#: the datasets of the file's ``full`` and ``reduced`` groups
FULL = DISTRIBUTED + SINGULAR
REDUCED = ReducedOperator.ARRAYS
#: units attributes of the datasets
UNITS = {"full/phi": "m", "full/sigma": "Pa", "full/f_unit": "N", "reduced/weights": "m^3"}


# ---------------------------------------------------------------- the row split
def qp_layout(mesh: FEMesh) -> list[list[int]]:
    """(elements, points per element) of every element block: the global point numbering
    (block by block, element-major) without the mesh."""
    return [[len(b.ids), int(b.etype.n_qp)] for b in mesh.blocks]


def _element_starts(layout) -> np.ndarray:
    """First global point of every element of ``layout`` (:func:`qp_layout`), then the
    number of points: (n_elements + 1,)."""
    starts, off = [], 0
    for n_el, n_qp in layout:  # loop over element blocks (types)
        starts.append(off + np.arange(int(n_el), dtype=np.int64) * int(n_qp))
        off += int(n_el) * int(n_qp)
    return np.concatenate(starts + [[off]]).astype(np.int64)


@dataclass(frozen=True)
class Partition:
    """The model's rows of one rank: a block of nodes and a block of whole elements'
    integration points.

    Attributes
    ----------
    nodes : (size + 1,) node offsets (even split); rank r holds nodes ``nodes[r]:nodes[r+1]``
        i.e. dofs / displacement rows ``3 nodes[r] : 3 nodes[r+1]``
    points : (size + 1,) integration-point offsets, an even split moved up to the next
        element start, so that every rank holds whole elements
    rank : this rank
    """

    nodes: np.ndarray
    points: np.ndarray
    rank: int

    @property
    def node_range(self) -> tuple[int, int]:
        return int(self.nodes[self.rank]), int(self.nodes[self.rank + 1])

    @property
    def point_range(self) -> tuple[int, int]:
        return int(self.points[self.rank]), int(self.points[self.rank + 1])

    @classmethod
    def from_layout(cls, n_nodes: int, layout, size: int, rank: int) -> Partition:
        """The split of ``n_nodes`` nodes and of the points of ``layout``
        (:func:`qp_layout`) over ``size`` ranks, seen from ``rank``."""
        starts = _element_starts(layout)
        points = starts[np.searchsorted(starts, even_split(int(starts[-1]), size))]
        return cls(even_split(int(n_nodes), size), points, rank)

    @classmethod
    def of(cls, mesh: FEMesh, size: int, rank: int) -> Partition:
        """The partition of ``mesh`` over ``size`` ranks, seen from ``rank``."""
        return cls.from_layout(mesh.n_nodes, qp_layout(mesh), size, rank)

    def elements(self, mesh: FEMesh) -> np.ndarray:
        """Global element numbers of this rank's points."""
        starts = _element_starts(qp_layout(mesh))[:-1]
        ids = np.concatenate([np.asarray(b.ids, np.int64) for b in mesh.blocks])
        lo, hi = self.point_range
        return ids[(starts >= lo) & (starts < hi)]

    def row_offsets(self, name: str, n_state: int) -> np.ndarray:
        """Row offsets of the full-size array ``name`` (:data:`DISTRIBUTED`)."""
        per = {"phi": 3, "f_unit": 3, "psi_p": 1, "weights_fe": 1, "psi_z": n_state,
               "sigma": 6}[name]
        return (self.nodes if name in ("phi", "f_unit") else self.points) * per


# ---------------------------------------------------------------- full-size bases
@dataclass(eq=False)
class FullBases:
    """The full-size arrays of a reduced model, by rows (:class:`RowBlocks`), and the
    replicated singular values. Never modified in place: an enrichment makes a new one
    (appending columns shares the training block)."""

    phi: RowBlocks
    psi_p: RowBlocks
    psi_z: RowBlocks
    sigma: RowBlocks
    f_unit: RowBlocks
    weights_fe: RowBlocks
    phi_sv: np.ndarray
    psi_p_sv: np.ndarray
    psi_z_sv: np.ndarray
    partition: Partition
    #: (n_state,) the scale of each internal variable in ``psi_z`` (None: ones)
    psi_z_scale: np.ndarray | None = None

    @property
    def comm(self) -> MPI.Comm:
        return self.phi.comm

    def arrays(self) -> dict:
        return {n: getattr(self, n) for n in DISTRIBUTED}

    def z_to_basis(self, z: np.ndarray) -> np.ndarray:
        """Internal variables (..., n_state) in the units of ``psi_z`` (divided by
        ``psi_z_scale``)."""
        return z if self.psi_z_scale is None else z / self.psi_z_scale

    def z_from_basis(self, z: np.ndarray) -> np.ndarray:
        """Internal variables (..., n_state) from the units of ``psi_z`` back to theirs."""
        return z if self.psi_z_scale is None else z * self.psi_z_scale

    @property
    def nbytes(self) -> int:
        """Bytes of this rank's rows in memory (lazy rows not read yet count 0)."""
        return sum(a.nbytes for a in self.arrays().values())

    @classmethod
    def from_local(cls, local: dict, part: Partition, n_state: int,
                   comm: MPI.Comm | None) -> FullBases:
        """From this rank's rows (``local[name]`` for :data:`DISTRIBUTED`) and the
        singular values (:data:`SINGULAR`)."""
        arrs = {}
        for n in DISTRIBUTED:
            a = np.asarray(local[n], float)
            arrs[n] = RowBlocks([a if a.ndim == 2 else a[:, None]],
                                part.row_offsets(n, n_state), comm, name=n)
        scale = local.get("psi_z_scale")
        return cls(**arrs, **{n: np.asarray(local[n], float) for n in SINGULAR},
                   partition=part, psi_z_scale=None if scale is None else
                   np.asarray(scale, float))

    @classmethod
    def read(cls, g, path: Path, part: Partition, n_state: int,
             comm: MPI.Comm | None) -> FullBases:
        """Lazy rows of group ``g`` (``full`` below it) of the open file at ``path`` (read
        on first use)."""
        prefix = g.name.rstrip("/")
        arrs = {n: RowBlocks.lazy(path, f"{prefix}/full/{n}", part.row_offsets(n, n_state),
                                  comm, n_cols=int(np.prod(g["full"][n].shape[1:])))
                for n in DISTRIBUTED}
        scale = g["full"]["psi_z_scale"][()] if "psi_z_scale" in g["full"] else None
        return cls(**arrs, **{n: g["full"][n][()] for n in SINGULAR}, partition=part,
                   psi_z_scale=scale)

    def write(self, g, comm: MPI.Comm) -> None:
        """Write into group ``g`` (``None`` except on rank 0): collective; an ``OSError``
        on every rank when writing fails on rank 0."""
        error = None
        if g is not None:
            try:
                gf = g.create_group("full")
                for n in SINGULAR:
                    gf.create_dataset(n, data=getattr(self, n))
                if self.psi_z_scale is not None:
                    gf.create_dataset("psi_z_scale", data=self.psi_z_scale)
                for n, a in self.arrays().items():
                    shape = (a.n_rows,) if n in ("f_unit", "weights_fe") else a.shape
                    gf.create_dataset(n, shape=shape, dtype=np.float64)
            except Exception as exc:  # noqa: BLE001 - reported on every rank
                error = f"{type(exc).__name__}: {exc}"
        raise_if_failed(error, comm, OSError, what="writing the reduced model failed")
        for n, a in self.arrays().items():  # same order on every rank
            error = a.write(None if g is None else g["full"][n]) or error
        raise_if_failed(error, comm, OSError, what="writing the reduced model failed")


# ---------------------------------------------------------------- material JSON
def material_to_json(cfg: MaterialConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


def material_from_json(text: str) -> MaterialConfig:
    d = json.loads(text)
    kw = {f.name: (TableSpec(**d[f.name]) if isinstance(d[f.name], dict) else d[f.name])
          for f in fields(MaterialConfig) if f.name in d and f.name != "parameters"}
    kw["parameters"] = {k: TableSpec(**v) for k, v in d.get("parameters", {}).items()}
    return MaterialConfig(**kw)


def make_operator(arrays: dict, psi_p_M: np.ndarray, meta: dict, law) -> ReducedOperator:
    """The :class:`ReducedOperator` of reduced ``arrays`` (:attr:`ReducedOperator.ARRAYS`)
    with the model's settings in ``meta``."""
    amp = None
    if meta.get("amplitude") is not None:
        from ..fom.setup import Amplitude
        a = meta["amplitude"]
        amp = Amplitude(np.asarray(a[0], float), np.asarray(a[1], float), meta.get("period"))
    return ReducedOperator(
        **{k: np.asarray(arrays[k]) for k in ReducedOperator.ARRAYS},
        psi_p_M=np.asarray(psi_p_M, float), law=law, p_column=int(meta["p_column"]),
        dual_floor=float(meta["dual_floor"]), newton_rtol=float(meta["newton_rtol"]),
        newton_max_iter=int(meta["newton_max_iter"]), load_factor=amp)


def write_layout(g, operator: ReducedOperator, bases: FullBases, meta: dict,
                 material_json: str, comm: MPI.Comm) -> None:
    """The reduced-model layout in group ``g`` (a file or a group, open on rank 0 only,
    ``None`` elsewhere): collective. Raises ``OSError`` on every rank when writing fails
    on rank 0."""
    error = None
    if g is not None:
        try:
            gr = g.create_group("reduced")
            for n in ReducedOperator.ARRAYS:
                gr.create_dataset(n, data=getattr(operator, n))
            g.attrs["meta"] = json.dumps(meta, sort_keys=True)
            g.attrs["material"] = material_json
        except Exception as exc:  # noqa: BLE001 - reported on every rank
            error = f"{type(exc).__name__}: {exc}"
    raise_if_failed(error, comm, OSError, what="writing the reduced model failed")
    bases.write(g, comm)
    if g is not None:
        for name, unit in UNITS.items():
            g[name].attrs["units"] = unit


def read_layout(g, path: Path, comm: MPI.Comm | None, mesh: FEMesh | None = None):
    """(operator, bases, meta, material JSON) of the layout in group ``g`` of the open
    file at ``path``: the reduced arrays read whole, the full-size ones lazily by this
    rank's rows of the build's partition (``meta["qp_layout"]``, or ``mesh``'s for files
    written before it was recorded)."""
    comm = as_comm(comm)
    meta = json.loads(g.attrs["meta"])
    material_json = str(g.attrs["material"])
    law = material_from_config(material_from_json(material_json))
    red = {k: g["reduced"][k][()] for k in ReducedOperator.ARRAYS}
    layout = meta.get("qp_layout")
    if layout is None:
        if comm.size == 1:
            layout = [[int(meta["n_qp"]), 1]]
        else:
            layout = qp_layout(mesh if mesh is not None else _read_mesh(meta["mesh_file"]))
    part = Partition.from_layout(int(meta["n_nodes"]), layout, comm.size, comm.rank)
    bases = FullBases.read(g, path, part, int(meta["n_state"]), comm)
    psi_p_M = bases.psi_p.rows(red["points"])
    return make_operator(red, psi_p_M, meta, law), bases, meta, material_json


def _read_mesh(path: str) -> FEMesh:
    if not Path(path).is_file():
        raise UserError(f"reduced model: mesh file {path} not found (needed for fields on "
                        "the mesh and enrichment)")
    return FEMesh.from_meshio(read_mesh(path), source=path)


# ---------------------------------------------------------------- the model
class ReducedModel:
    """A hyper-reduced elasto-viscoplastic model with an error indicator (docs/online.md).

    Build it with :func:`rom.online.build_reduced_model`, read it with :func:`load`.

    Attributes
    ----------
    operator : :class:`~rom.online.operator.ReducedOperator` (replicated)
    bases : :class:`FullBases` (this rank's rows)
    comm : the communicator the bases are split over (``MPI.COMM_SELF``: one process)
    meta : dict: ``case_file``, ``mesh_file``, ``state_names`` (name -> [start, stop]),
        ``p_column``, ``n_state``, ``n_nodes``, ``n_qp``, ``qp_layout``, ``amplitude``
        ([times, values] or None), ``ecm_tol``, ``indicator_tol``, ``newton_rtol``,
        ``newton_max_iter``, ``dual_floor``, ``n_enrichments``
    """

    def __init__(self, operator: ReducedOperator, bases: FullBases, meta: dict,
                 material_json: str):
        self.operator, self.bases, self.meta = operator, bases, meta
        self.material_json = material_json
        self._mesh = None
        self._elements = None
        self._solvers: dict = {}

    @property
    def comm(self) -> MPI.Comm:
        return self.bases.comm

    @property
    def law(self):
        return self.operator.law

    @property
    def material_config(self) -> MaterialConfig:
        return material_from_json(self.material_json)

    def copy(self) -> ReducedModel:
        """An independent copy (enrichment of the copy leaves this model unchanged) that
        shares the read-only bases, mesh, element data, cached high-fidelity solvers and
        the operator's cached arrays (:meth:`prepare`)."""
        new = ReducedModel(_copy.copy(self.operator), self.bases, _copy.deepcopy(self.meta),
                           self.material_json)
        new._mesh, new._elements, new._solvers = self._mesh, self._elements, self._solvers
        return new

    def prepare(self) -> ReducedModel:
        """Compute now what the online solve would compute at its first step (the
        indicator's Gappy-POD factorization, single-precision mode strains: tens of ms on
        a thousand points), once for this model and the copies made after. Returns
        self."""
        self.operator.prepare()
        return self

    # ---------------------------------------------------------------- sizes
    @property
    def n_modes(self) -> int:
        return self.operator.n_modes

    @property
    def n_points(self) -> int:
        """Number of reduced points (ECM + imposed)."""
        return self.operator.n_points

    # ---------------------------------------------------------------- mesh (lazy, O(N))
    @property
    def mesh(self) -> FEMesh:
        if self._mesh is None:
            self._mesh = _read_mesh(self.meta["mesh_file"])
        return self._mesh

    def use_mesh(self, mesh: FEMesh) -> ReducedModel:
        """Use ``mesh`` (the case's, read by the caller) instead of reading the one named
        in the model. Returns self."""
        self._mesh, self._elements = mesh, None
        return self

    @property
    def mesh_loaded(self) -> bool:
        """Whether the mesh was read (an online solve without enrichment never reads it)."""
        return self._mesh is not None

    def full_order_solver(self, comm: MPI.Comm, scale: float):
        """The full-order solver of the model's case on ``comm`` for a load ``scale`` (made
        at the first enrichment, kept: its preconditioner is reused), shared by copies."""
        key = (id(comm), scale)
        if key not in self._solvers:
            from ..fom.run import load_fom_case, make_solver
            case_file = self.meta["case_file"]
            try:
                fc = load_fom_case(case_file)
            except Exception as exc:  # noqa: BLE001 - name the file in any case
                raise UserError(f"enrichment needs the case file {case_file}: {exc}") from None
            self._solvers[key] = make_solver(fc, self.mesh, self.law, scale, comm)
        return self._solvers[key]

    def share_mesh_with(self, other: ReducedModel) -> None:
        """Use ``other``'s mesh, element data and full-order solvers (models of one case
        and one partition: the local models)."""
        self._mesh, self._elements, self._solvers = other.mesh, other.elements, other._solvers

    @property
    def elements(self) -> ElementSet:
        """The element data of this rank's points (whole elements)."""
        if self._elements is None:
            self._elements = ElementSet(self.mesh, self.bases.partition.elements(self.mesh))
        return self._elements

    def meshio_mesh(self):
        import meshio
        m = self.mesh
        return meshio.Mesh(m.points, [(b.etype.name, b.cells) for b in m.blocks])

    # ---------------------------------------------------------------- I/O
    def save(self, path: str | Path, *, comm: MPI.Comm | None = None) -> Path:
        """Write the model to one HDF5 file (atomic; collective over the model's
        communicator, rank 0 writes the rows gathered in bounded blocks)."""
        comm = self.check_comm(comm, "save")
        path = Path(path)
        with atomic_h5(path, comm=comm) as f:
            if f is not None:
                stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                                 writer="rom.online", writer_ranks=comm.size)
            write_layout(f, self.operator, self.bases, self.meta, self.material_json, comm)
        return path

    def check_comm(self, comm: MPI.Comm | None, what: str) -> MPI.Comm:
        """The model's communicator; ``comm``, if given, must be it (or of one rank when
        the model's is)."""
        mine = self.comm
        if comm is None or comm is mine or (comm.size == mine.size == 1):
            return mine
        if mine.size == 1:
            raise UserError(f"reduced model: {what} on {comm.size} ranks, but the model was "
                            "loaded on one process: load it with rom.load(path, comm=comm) so "
                            "that each rank holds its rows")
        if MPI.Comm.Compare(comm, mine) not in (MPI.IDENT, MPI.CONGRUENT):
            raise UserError(f"reduced model: {what} on a communicator other than the one "
                            "the model was loaded on")
        return mine

    @classmethod
    def load(cls, path: str | Path, comm: MPI.Comm | None = None, *,
             mesh: FEMesh | None = None) -> ReducedModel:
        """Read a model written by :meth:`save`: the reduced operator on every rank, the
        full-size bases by rows of ``comm`` (``None``: one process, all rows), read when
        first used. ``mesh``: the mesh to use (default: the one named in the model, read
        when needed)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reduced model file {path} not found")
        with _checks.open_checked(path) as f:    # whole file checked (rom/online/checks.py)
            check_schema(f, path, SCHEMA, SCHEMA_VERSION, "a reduced model")
            op, bases, meta, mat = read_layout(f, path, comm, mesh)
        model = cls(op, bases, meta, mat)
        return model if mesh is None else model.use_mesh(mesh)

    # ---------------------------------------------------------------- online
    def solve(self, temperature, times, **kwargs):
        """Reduced time integration; see :func:`rom.online.solve.solve` for the arguments."""
        from .solve import solve
        return solve(self, temperature, times, **kwargs)


def load(path: str | Path, comm: MPI.Comm | None = None) -> ReducedModel:
    """Read a reduced-model file: ``model = rom.load(path)`` (one process) or
    ``rom.load(path, comm=comm)`` (each rank its rows)."""
    return ReducedModel.load(path, comm)


def load_for_case(case, path: str | Path, comm: MPI.Comm | None = None) -> ReducedModel:
    """The reduced model in ``path`` with the mesh of ``case`` (its ``mesh:``, read now)
    instead of the one named in the model, which may have moved since the build; refused
    when it was built for other case sections (:func:`rom.online.checks.check_case`)."""
    mesh_file = str(Path(case.mesh).resolve())
    model = ReducedModel.load(path, comm, mesh=FEMesh.from_meshio(read_mesh(mesh_file),
                                                                  source=mesh_file))
    _checks.check_case(model.meta, case, path)    # built for this case's mesh, material...?
    return model


def case_model_path(case, case_file: str | Path, purpose: str) -> Path:
    """The reduced-model file of a case (``online.model``, else
    ``<output>/<case>.rom.h5``); a :class:`UserError` when the case has no ``online:``
    section (``purpose``: what the model is for) or the file is not built yet."""
    if case.online is None:
        raise UserError(f"{case_file}: online: section missing ({purpose})")
    path = Path(case.online.model or Path(case.output.directory) / f"{case.name}.rom.h5")
    if not path.is_file():
        raise UserError(f"{path}: reduced model not found; build it first with "
                        f"python -m rom.offline {case_file}")
    return path

