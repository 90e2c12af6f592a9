"""The reduced model: its data, HDF5 save/load, and :meth:`ReducedModel.solve`.

File layout (schema ``rom.online.reduced_model`` version 1), all arrays float64/int64:

``/full``     (size N, used only for reconstruction and enrichment)
    ``phi`` (3 n_nodes, n) displacement modes [m]; ``phi_sv`` (n,) singular values;
    ``psi_p`` (n_qp, k) dual (p) modes; ``psi_p_sv``; ``psi_z`` (n_qp n_state, r)
    orthonormal internal-variable basis (point-major): the POD modes of the training, then
    one direction appended per enrichment that added one (only its span is used);
    ``psi_z_sv`` the singular values of the POD updated by the enrichments (for the
    record: after an enrichment they are not those of single columns); ``sigma`` (n_qp 6, s) stress
    modes times singular values [Pa] (ECM updates); ``f_unit`` (3 n_nodes,) external
    forces of unit amplitude [N]; ``weights_fe`` (n_qp,) [m^3]
``/reduced``  (size independent of N)
    ``points`` (q,) global integration points (ECM and imposed); ``weights`` (q,) [m^3]
    (0 at imposed points); ``imposed`` (k,); ``eps`` (q, 6, n) strains of the modes;
    ``nodes``, ``shape`` (q, n_en) temperature interpolation; ``node_coords`` (q, n_en, 3);
    ``f_red`` (n,) reduced external forces [N]
``/material`` attrs: the ``material:`` section as JSON; ``/loads`` amplitude table
root attrs: case file, mesh file, state names, tolerances, provenance.

In memory, enrichment appends columns to ``psi_z`` and ``sigma`` without copying them
(1.6 and 3 GB at size 2 of the blade, copied at every enrichment before): the columns
added are kept in ``full["psi_z_added"]`` / ``full["sigma_added"]`` (:data:`APPENDED`), and
the file holds the two blocks side by side (:func:`stacked`), as one array.
"""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..fom.config import MaterialConfig, TableSpec
from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh
from ..fom.setup import material_from_config
from ..io.atomic import atomic_h5, check_schema, stamp_provenance
from ..io.mesh import read_mesh
from ..parallel import UserError, as_comm
from . import checks as _checks

__all__ = ["APPENDED", "SCHEMA", "SCHEMA_VERSION", "ReducedModel", "block_dot", "block_rows",
           "blocks", "case_model_path", "dot_blocks", "load", "load_for_case", "n_columns",
           "stacked"]

SCHEMA, SCHEMA_VERSION = "rom.online.reduced_model", 1
FULL = ("phi", "phi_sv", "psi_p", "psi_p_sv", "psi_z", "psi_z_sv", "sigma", "f_unit",
        "weights_fe")
REDUCED = ("points", "weights", "imposed", "eps", "nodes", "shape", "node_coords", "f_red")
#: bases that enrichment extends by columns: ``full[name]`` is never copied, the columns
#: added are ``full[name + "_added"]`` (absent: none)
APPENDED = ("psi_z", "sigma")
#: units attributes of the datasets
UNITS = {"full/phi": "m", "full/sigma": "Pa", "full/f_unit": "N", "reduced/weights": "m^3"}


def blocks(full: dict, name: str) -> list[np.ndarray]:
    """The column blocks of ``full[name]``: the array, then the columns enrichment added."""
    added = full.get(name + "_added")
    return [full[name]] if added is None or added.shape[1] == 0 else [full[name], added]


def n_columns(full: dict, name: str) -> int:
    """Number of columns of ``full[name]`` with those enrichment added."""
    return sum(b.shape[1] for b in blocks(full, name))


def stacked(full: dict, name: str) -> np.ndarray:
    """``full[name]`` with the columns enrichment added, as one array (a copy when there
    are added columns)."""
    bs = blocks(full, name)
    return bs[0] if len(bs) == 1 else np.hstack(bs)


def block_rows(full: dict, name: str, rows: np.ndarray, k: int | None = None) -> np.ndarray:
    """Rows of :func:`stacked` (``full[name]`` and its added columns, the first ``k``)
    without forming it: (len(rows), k)."""
    out = np.hstack([b[rows] for b in blocks(full, name)])
    return out if k is None else out[:, :k]


def block_dot(full: dict, name: str, c: np.ndarray) -> np.ndarray:
    """``stacked(full, name)[:, :len(c)] @ c`` without forming it: (N,)."""
    return dot_blocks(blocks(full, name), c)


def dot_blocks(bs: list[np.ndarray], c: np.ndarray) -> np.ndarray:
    """``[B_1 B_2 ...][:, :len(c)] @ c`` for column blocks ``bs`` (N, k_i): (N,)."""
    out, start = np.zeros(bs[0].shape[0]), 0
    for b in bs:  # loop over the column blocks
        k = min(b.shape[1], c.size - start)
        if k <= 0:
            break
        out += b[:, :k] @ c[start:start + k]
        start += k
    return out


def write_layout(g, full: dict, reduced: dict, meta: dict, material_json: str,
                 shapes: dict | None = None) -> None:
    """The reduced-model layout in group ``g`` (a file or a group): ``full/<FULL>``,
    ``reduced/<REDUCED>``, ``meta`` and ``material`` attributes, units. The arrays named in
    ``shapes`` are only created with that shape (a distributed build fills them by rows,
    :func:`rom.online.build.write_built`)."""
    shapes = shapes or {}
    gf = g.create_group("full")
    for n in FULL:
        if n in shapes:
            gf.create_dataset(n, shape=shapes[n], dtype=np.float64)
        else:
            gf.create_dataset(n, data=stacked(full, n) if n in APPENDED else full[n])
    gr = g.create_group("reduced")
    for n in REDUCED:
        gr.create_dataset(n, data=reduced[n])
    g.attrs["meta"] = json.dumps(meta, sort_keys=True)
    g.attrs["material"] = material_json
    for name, unit in UNITS.items():
        g[name].attrs["units"] = unit


def material_to_json(cfg: MaterialConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


def material_from_json(text: str) -> MaterialConfig:
    d = json.loads(text)
    kw = {f.name: (TableSpec(**d[f.name]) if isinstance(d[f.name], dict) else d[f.name])
          for f in fields(MaterialConfig) if f.name in d}
    return MaterialConfig(**kw)


class ReducedModel:
    """A hyper-reduced elasto-viscoplastic model with an error indicator (docs/online.md).

    Build it with :func:`rom.online.build_reduced_model`, read it with :func:`load`.

    Attributes
    ----------
    full, reduced : dicts of arrays (see the module doc)
    meta : dict: ``case_file``, ``mesh_file``, ``state_names`` (name -> [start, stop]),
        ``p_column``, ``n_state``, ``amplitude`` ([times, values] or None),
        ``ecm_tol``, ``indicator_tol``, ``newton_rtol``, ``newton_max_iter``, ``dual_floor``,
        ``n_enrichments``
    """

    def __init__(self, full: dict, reduced: dict, meta: dict, material_json: str):
        self.full, self.reduced, self.meta = full, reduced, meta
        self.material_json = material_json
        self.material_config = material_from_json(material_json)
        self.law = material_from_config(self.material_config)
        self._mesh = None
        self._elements = None
        self._solvers: dict = {}
        self._gappy = None      # (psi_p, points, GappyPOD) of the indicator

    def copy(self) -> ReducedModel:
        """An independent copy (enrichment of the copy leaves this model unchanged) that
        shares the read-only mesh, element data, cached high-fidelity solvers and the
        online solve's cached factorizations (:meth:`prepare`)."""
        new = ReducedModel(dict(self.full), dict(self.reduced), json.loads(json.dumps(self.meta)),
                           self.material_json)
        new._mesh, new._elements, new._solvers = self._mesh, self._elements, self._solvers
        new._gappy = self._gappy     # valid while psi_p and the points are the same arrays
        return new

    def prepare(self) -> ReducedModel:
        """Compute now what the online solve would compute at its first step (the
        indicator's Gappy-POD factorization, single-precision mode strains: tens of ms on
        a thousand points), once for this model and the copies made after. Returns
        self."""
        from .solve import prepare
        prepare(self)
        return self

    # ---------------------------------------------------------------- sizes
    @property
    def n_modes(self) -> int:
        return int(self.full["phi"].shape[1])

    @property
    def n_points(self) -> int:
        """Number of reduced points (ECM + imposed)."""
        return int(self.reduced["points"].size)

    # ---------------------------------------------------------------- mesh (lazy, O(N))
    @property
    def mesh(self) -> FEMesh:
        if self._mesh is None:
            path = self.meta["mesh_file"]
            if not Path(path).is_file():
                raise UserError(f"reduced model: mesh file {path} not found (needed for "
                                "fields on the mesh and enrichment)")
            self._mesh = FEMesh.from_meshio(read_mesh(path), source=path)
        return self._mesh

    @property
    def elements(self) -> ElementSet:
        if self._elements is None:
            self._elements = ElementSet(self.mesh)
        return self._elements

    def meshio_mesh(self):
        import meshio
        m = self.mesh
        return meshio.Mesh(m.points, [(b.etype.name, b.cells) for b in m.blocks])

    # ---------------------------------------------------------------- I/O
    def save(self, path: str | Path, *, comm: MPI.Comm | None = None) -> Path:
        """Write the model to one HDF5 file (atomic; rank 0 of ``comm`` writes)."""
        path = Path(path)
        with atomic_h5(path, comm=as_comm(comm)) as f:
            if f is not None:
                stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                                 writer="rom.online")
                write_layout(f, self.full, self.reduced, self.meta, self.material_json)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReducedModel:
        """Read a model written by :meth:`save` (any process, no communicator needed)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reduced model file {path} not found")
        with _checks.open_checked(path) as f:    # whole file checked (rom/online/checks.py)
            check_schema(f, path, SCHEMA, SCHEMA_VERSION, "a reduced model")
            full = {k: f["full"][k][()] for k in FULL}
            red = {k: f["reduced"][k][()] for k in REDUCED}
            meta = json.loads(f.attrs["meta"])
            mat = str(f.attrs["material"])
        return cls(full, red, meta, mat)

    # ---------------------------------------------------------------- online
    def solve(self, temperature, times, **kwargs):
        """Reduced time integration; see :func:`rom.online.solve.solve` for the arguments."""
        from .solve import solve
        return solve(self, temperature, times, **kwargs)


def load(path: str | Path) -> ReducedModel:
    """Read a reduced-model file: ``model = rom.load(path)``."""
    return ReducedModel.load(path)


def load_for_case(case, path: str | Path) -> ReducedModel:
    """The reduced model in ``path`` with the mesh of ``case`` (its ``mesh:``, read now)
    instead of the one named in the model, which may have moved since the build."""
    model = ReducedModel.load(path)
    _checks.check_case(model.meta, case, path)    # built for this case's mesh, material...?
    mesh_file = str(Path(case.mesh).resolve())
    model._mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
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
