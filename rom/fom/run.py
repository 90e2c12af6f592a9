"""Run every loading of a case with the mechanical solver and write the snapshot store.

Called by ``python -m rom.fom case.yaml``; usable from Python with any communicator.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import meshio
import numpy as np
from mpi4py import MPI

from ..config import CaseError, _Ctx, case_from_dict, load_case, read_case_mapping
from ..io.atomic import remove_stale_temps
from ..io.mesh import read_mesh, write_time_series
from ..io.snapshots import SnapshotStore
from ..linalg.rowblocks import entity_rows
from ..materials import von_mises
from ..parallel import Progress, StopRequest, UserError, as_comm, rank0_print
from .config import FOMConfig, LoadingConfig, MaterialConfig
from .mesh import FEMesh
from .setup import (
    check_fom_sections,
    loading_parameters,
    loads_from_config,
    material_from_config,
    temperature_history,
)
from .solver import ConvergenceError, MechanicalSolver, NewtonOptions

__all__ = ["CHECKPOINT_COST_RATIO", "FOMCase", "checkpoint_due", "load_fom_case", "run_case",
           "store_fields"]

#: a positive ``fom.checkpoint`` waits at least this many times the last checkpoint's duration
CHECKPOINT_COST_RATIO = 10.0


@dataclass
class FOMCase:
    """What the full-order run needs from a case file."""

    case: object
    fom: FOMConfig
    material: MaterialConfig
    loading: LoadingConfig


def load_fom_case(path: str | Path) -> FOMCase:
    """Load a case file with its ``fom:``, ``material:`` and ``loading:`` sections.

    Works whether or not :class:`rom.config.Case` already has these fields.
    """
    path = Path(path)
    try:
        case = load_case(path)
        sections = {k: getattr(case, k, None) for k in ("fom", "material", "loading")}
    except CaseError as exc:
        if not any(f"{k}: unknown key" in str(exc) for k in ("fom", "material", "loading")):
            raise
        data = read_case_mapping(path)
        ctx = _Ctx(str(path), path.resolve().parent)
        sections = {k: data.pop(k, None) for k in ("fom", "material", "loading")}
        case = case_from_dict(data, source=path)
        types = {"fom": FOMConfig, "material": MaterialConfig, "loading": LoadingConfig}
        sections = {k: None if v is None else ctx.build(types[k], v, k)
                    for k, v in sections.items()}
    for k in ("fom", "material", "loading"):
        if sections[k] is None:
            raise CaseError(f"{path}: {k}: required section is missing for python -m rom.fom")
    if not sections["fom"].loadings:
        raise CaseError(f"{path}: fom.loadings: give at least one loading")
    try:
        check_fom_sections(sections["fom"], sections["material"], sections["loading"])
    except UserError as exc:
        raise CaseError(f"{path}: {exc}") from None
    return FOMCase(case, sections["fom"], sections["material"], sections["loading"])


def make_solver(fc: FOMCase, mesh: FEMesh, law, scale: float = 1.0,
                comm: MPI.Comm | None = None) -> MechanicalSolver:
    """The case's mechanical solver (loads at ``scale``, PETSc options, Newton settings,
    partition) on ``comm`` (collective)."""
    return MechanicalSolver(mesh, law, loads_from_config(fc.loading, fc.material.density, scale),
                            comm=comm, petsc_options=fc.fom.petsc_options,
                            prefix=fc.fom.petsc_prefix,
                            newton=NewtonOptions(**vars(fc.fom.newton)),
                            partition=fc.fom.partition)


def run_case(fc: FOMCase, comm: MPI.Comm | None = None, *, overwrite: bool = False,
             resume: bool = False, progress: bool = True) -> Path:
    """Run every loading; write the snapshot store (and XDMF files); return the store path.

    A solver failure is raised after the steps already computed have been stored. A
    SIGTERM or SIGINT (e.g. a batch system's, before its wall-time limit) stops the run
    at the end of the loading in progress, which is stored with those before it, and
    raises a :class:`UserError` that says to ``--resume`` (a second signal acts as usual).
    ``resume``: add to an existing store only the loadings it does not hold yet (a loading
    it holds must have every time step and the same parameters, else a
    :class:`UserError`); without a store it is a normal run.

    Checkpoints (``fom.checkpoint``, see :func:`checkpoint_due`): after a loading, the
    store written so far is published at its path, so that a run killed outright keeps
    the loadings up to the last checkpoint for ``resume``. Rank 0 first removes the
    temporaries that killed runs left next to the store (:func:`remove_stale_temps`).
    """
    comm = as_comm(comm)
    if resume and overwrite:
        raise UserError("rom.fom: --resume and --overwrite exclude each other")
    checkpoints = _Checkpoints(fc.fom.checkpoint, comm)
    case = fc.case
    mio = read_mesh(case.mesh)
    mesh = FEMesh.from_meshio(mio, source=str(case.mesh))
    law = material_from_config(fc.material)
    times = fc.loading.times.array()
    store_path = Path(case.snapshots.store)
    if comm.rank == 0:
        store_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(store_path)
    out_dir = Path(case.output.directory)
    failure = None
    todo = list(enumerate(fc.fom.loadings))
    if resume and comm.bcast(store_path.is_file() if comm.rank == 0 else None, root=0):
        with SnapshotStore.open(store_path, comm=comm) as held:
            _check_precision(held, fc)
            todo = _loadings_to_run(held, fc, times.size - 1)
        if not todo:
            return store_path
        opened = SnapshotStore.update(store_path, comm=comm)
    else:
        if not overwrite and comm.bcast(store_path.exists() if comm.rank == 0 else None, root=0):
            err = UserError(f"{store_path} already exists: run with --resume to compute only "
                            "the loadings it does not hold, or --overwrite to start again")
            err.collective = True        # the same on every rank: printed once
            raise err
        opened = SnapshotStore.create(store_path, comm=comm, overwrite=overwrite,
                                      provenance={"case_hash": getattr(case, "source_hash", ""),
                                                  "writer": "rom.fom"})
    stopped = None
    with opened as store, StopRequest() as stop:
        if not store.loadings:
            store.set_mesh(path=str(case.mesh))
        # one solver alive at a time (each holds its matrix, preconditioner and element
        # data: 32 of them took 6.5 GB per rank at 75k dofs), kept for the next loading of
        # the same load scale: its preconditioner is reused (and rebuilt when it goes stale,
        # as across time steps) instead of factored again (the blade's subdomain Cholesky:
        # ~35 s per loading at 75k dofs, docs/fom.md); the first one's partition and points
        # (the same for all) set the store's rows
        solver, scale = make_solver(fc, mesh, law, todo[0][1].scale, comm), todo[0][1].scale
        fields = store_fields(fc, mesh.n_nodes, solver.elements.n_qp_global, law,
                              store.fields)
        try:
            _declare_fields(store, fields, case)
        except UserError:
            solver.destroy()
            raise
        own = np.flatnonzero(solver.part.node_part == comm.rank)
        qp = solver.elements.qp
        rows = {n: entity_rows(own if kind == "nodal" else qp, k)
                for n, (kind, _, k, _, _) in fields.items()}
        heat_cache: dict = {}          # one heat solve per distinct parameter set
        for k, (i, lc) in enumerate(todo):
            if lc.scale != scale:
                solver.destroy()
                solver, scale = make_solver(fc, mesh, law, lc.scale, comm), lc.scale
            n_cuts = len(solver.cuts)
            try:
                temp = temperature_history(lc.temperature, mesh, fc, comm=comm,
                                           where=f"fom.loadings[{i}].temperature",
                                           heat_cache=heat_cache, positive=True)
            except UserError as exc:  # the same on every rank (global mesh data)
                raise UserError(f"{getattr(case, 'source_file', None) or '<case>'}: {exc}"
                                ) from None
            lid = store.add_loading(lc.name, loading_parameters(lc, fc))
            bar = Progress(comm, len(times) - 1, f"loading {lc.name}", enabled=progress)
            series = []

            def save(i, st, lid=lid, temp=temp, solver=solver, series=series, bar=bar):
                vals = {"displacement": st.u[own].ravel(), "temperature": temp(st.time)[own],
                        "stress": st.stress.ravel()}
                if "strain" in fields:
                    vals["strain"] = st.strain.ravel()
                for name, (sl, _) in law.state_names.items():
                    vals[name] = st.internal[:, sl].ravel()
                store.append(vals, loading=lid, time=st.time, step=i, rows=rows)
                if fc.fom.write_xdmf:
                    vm = solver.gather_points(von_mises(st.stress), root=0)
                    p = solver.gather_points(st.internal[:, 6], root=0) \
                        if "p" in law.state_names else None
                    series.append((st.time, st.u.copy(), vm, p))
                bar.update()

            try:
                solver.solve(times, temp, callback=save)
            except ConvergenceError as exc:
                failure = ConvergenceError(f"loading {lc.name!r}: {exc}")
            bar.close()
            if solver.cuts[n_cuts:]:
                rank0_print(comm, cuts_message(f"rom.fom: loading {lc.name!r}",
                                               solver.cuts[n_cuts:]))
            if fc.fom.write_xdmf and comm.rank == 0 and series:
                _write_xdmf(out_dir / f"{case.name}.{lc.name}.xdmf", mesh, solver, series)
            if failure is not None:
                break
            if k + 1 < len(todo):            # the last one is published by the close
                if stop.requested(comm):     # SIGTERM / SIGINT: keep the loadings done
                    stopped = (k + 1, len(todo))
                    break
                checkpoints.after_loading(store)
        solver.destroy()
    if failure is not None:
        raise failure
    if stopped is not None:
        err = UserError(f"stopped by a signal after {stopped[0]} of the {stopped[1]} "
                        f"loading(s) to run; {store_path} holds them: run again with --resume "
                        "to compute the others")
        err.collective = True        # the same on every rank: printed once
        raise err
    rank0_print(comm, f"rom.fom: wrote {store_path}")
    return store_path


def store_fields(fc: FOMCase, n_nodes: int, n_qp: int, law, held: dict | None = None) -> dict:
    """The fields ``python -m rom.fom`` stores: name -> (kind, n_entities, n_components,
    units, dtype).

    Parameters
    ----------
    fc : the case; ``snapshots.precision`` sets the dtype of the quadrature fields
        (``"single"``: float32), ``snapshots.strain`` adds the total strain
    n_nodes, n_qp : global numbers of mesh nodes and integration points
    law : the material law (its ``state_names`` are stored, quadrature)
    held : the fields of the store a ``--resume`` appends to: a ``strain`` field it holds
        (stores written before ``snapshots.strain`` existed) is written on, so that every
        column of the store has every field

    Returns
    -------
    dict : displacement and temperature (nodal, float64), stress, the law's internal
        variables and, if asked or held, strain (quadrature, the case's precision)
    """
    snap = fc.case.snapshots
    quad = _quadrature_dtype(fc)
    fields = {"displacement": ("nodal", n_nodes, 3, "m", "float64"),
              "temperature": ("nodal", n_nodes, 1, "K", "float64"),
              "stress": ("quadrature", n_qp, 6, "Pa", quad)}
    if getattr(snap, "strain", False) or "strain" in (held or {}):
        fields["strain"] = ("quadrature", n_qp, 6, "1", quad)
    for name, (sl, unit) in law.state_names.items():
        fields[name] = ("quadrature", n_qp, sl.stop - sl.start, unit, quad)
    return fields


_PRECISION = {"float32": "single", "float64": "double"}


def _quadrature_dtype(fc: FOMCase) -> str:
    """The dtype of the quadrature fields the case asks for (``snapshots.precision``)."""
    single = getattr(fc.case.snapshots, "precision", "double") == "single"
    return "float32" if single else "float64"


def _precision_problem(store: SnapshotStore, name: str, held: str, want: str, where) -> str:
    held_p = _PRECISION.get(held, held)
    return (f"{store.path}: field {name!r} is stored in {held} (snapshots.precision: {held_p}) "
            f"but {where} has snapshots.precision: {_PRECISION[want]}; --resume keeps one "
            f"precision per store: set snapshots.precision: {held_p}, or run with --overwrite")


def _check_precision(store: SnapshotStore, fc: FOMCase) -> None:
    """A resumed store must hold its quadrature fields at the case's ``snapshots.precision``
    (checked before anything else, also when no loading is left to run; collective)."""
    want = _quadrature_dtype(fc)
    for name, info in sorted(store.fields.items()):
        if info.kind == "quadrature" and info.dtype != want:
            err = UserError(_precision_problem(store, name, info.dtype, want,
                                               getattr(fc.case, "source_file", None) or "<case>"))
            err.collective = True        # the same on every rank: printed once
            raise err


def _declare_fields(store: SnapshotStore, fields: dict, case) -> None:
    """Declare ``fields`` in a new store; in a resumed one, check that it holds exactly
    these fields, on the same mesh and law, at the case's precision (collective: the
    store's metadata are the same on every rank, so is the error)."""
    where = getattr(case, "source_file", None) or "<case>"
    held = store.fields
    problem = None
    for name, (kind, n, k, unit, dtype) in fields.items():
        info = held.get(name)
        if info is None:
            if not store.n_snapshots:
                store.add_field(name, kind=kind, n_entities=n, n_components=k, units=unit,
                                dtype=dtype)
                continue
            why = " (snapshots.strain: true)" if name == "strain" else ""
            alt = ", or set snapshots.strain: false" if name == "strain" else ""
            problem = (f"{store.path}: has no field {name!r}, which {where} asks rom.fom to "
                       f"store{why}; --resume cannot add a field to stored snapshots: run with "
                       f"--overwrite{alt}")
        elif (info.kind, info.n_entities, info.n_components) != (kind, n, k):
            problem = (f"{store.path}: field {name!r} was stored for another mesh or law; run "
                       "with --overwrite")
        elif info.dtype != dtype:
            problem = _precision_problem(store, name, info.dtype, dtype, where)
        if problem:
            break
    extra = sorted(set(held) - set(fields))
    if problem is None and extra:
        problem = (f"{store.path}: holds field(s) {', '.join(map(repr, extra))} that this case's "
                   f"law does not write ({where}); run with --overwrite")
    if problem is not None:
        err = UserError(problem)
        err.collective = True        # the same on every rank: printed once
        raise err


def checkpoint_due(elapsed: float, interval: float | None, last_cost: float) -> bool:
    """Whether to publish the store after a loading (``fom.checkpoint``).

    Parameters
    ----------
    elapsed : seconds since the run's start or the end of the last checkpoint
    interval : ``fom.checkpoint`` [s]; 0: after every loading; ``None``: never
    last_cost : seconds the last checkpoint took (0 before the first)

    A positive ``interval`` is stretched to :data:`CHECKPOINT_COST_RATIO` times the
    last checkpoint's duration: a store so large that copying it takes more than a
    tenth of the interval is copied less often, so that checkpoints take at most about
    a tenth of the run. ``0`` is taken literally (every loading, whatever the cost).
    """
    if interval is None:
        return False
    if interval == 0:
        return True
    return elapsed >= max(interval, CHECKPOINT_COST_RATIO * last_cost)


class _Checkpoints:
    """The checkpoints of one run: rank 0's clock decides, every rank commits."""

    def __init__(self, interval: float | None, comm: MPI.Comm):
        self.interval = interval
        self.comm = comm
        self.last = time.monotonic()      # the run's start, then the last checkpoint's end
        self.cost = 0.0

    def after_loading(self, store: SnapshotStore) -> None:
        """Collective: publish ``store`` (:meth:`SnapshotStore.commit`) if one is due.

        A failed checkpoint (e.g. no room for the copy) does not stop the run, which can
        still publish the store at its end (a rename, no copy): it is reported, and the
        run goes on without checkpoints.
        """
        due = checkpoint_due(time.monotonic() - self.last, self.interval, self.cost) \
            if self.comm.rank == 0 else None
        if not self.comm.bcast(due, root=0):
            return
        start = time.monotonic()
        try:
            store.commit()
        except Exception as exc:  # noqa: BLE001 - raised on every rank (agreed in commit)
            self.interval = None
            rank0_print(self.comm, f"rom.fom: warning: checkpoint of {store.path} failed "
                                   f"({type(exc).__name__}: {exc}); going on without "
                                   "checkpoints", file=sys.stderr)
            return
        self.last = time.monotonic()
        self.cost = self.last - start
        if self.comm.rank == 0:
            rank0_print(self.comm, f"rom.fom: checkpoint: {store.path} holds "
                                   f"{len(store.loadings)} loading(s) "
                                   f"({_bytes(store.path.stat().st_size)}, "
                                   f"written in {self.cost:.2g} s)")


def _remove_leftovers(store_path: Path) -> None:
    """Remove (rank 0) the temporaries of ``store_path`` left by killed runs; one line."""
    removed = remove_stale_temps(store_path)
    if removed:
        print(f"rom.fom: removed {len(removed)} temporary file(s) left by killed runs in "
              f"{store_path.parent}: " + ", ".join(f"{p.name} ({_bytes(n)})" for p, n in removed),
              flush=True)


def _bytes(n: int) -> str:
    """A size in bytes for people: ``'9.0 GB'`` (decimal units)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _as_json(value):
    """Parameters as JSON sees them (tuples -> lists, arrays and numpy scalars -> Python),
    so that a case's loading parameters compare equal to the stored ones."""
    return json.loads(json.dumps(value, sort_keys=True, default=lambda v: v.tolist()))


def _loadings_to_run(store: SnapshotStore, fc: FOMCase, n_steps: int) -> list:
    """(index, loading) of the case's loadings an existing store lacks; a loading present
    must be complete and have the same parameters."""
    held = {ld.name: ld for ld in store.loadings}
    todo = []
    for i, lc in enumerate(fc.fom.loadings):  # loop over the case's loadings
        ld = held.get(lc.name)
        if ld is None:
            todo.append((i, lc))
            continue
        n = len(store.columns_of(lc.name))
        if n != n_steps:
            raise UserError(f"{store.path}: loading {lc.name!r} has {n} of {n_steps} time "
                            "steps (an interrupted run?); run with --overwrite")
        if _as_json(ld.parameters) != _as_json(loading_parameters(lc, fc)):
            raise UserError(f"{store.path}: loading {lc.name!r} was stored with other "
                            "parameters than the case's; rename it or run with --overwrite")
    rank0_print(store.comm, f"rom.fom: resuming {store.path}: {len(fc.fom.loadings) - len(todo)} "
                            f"loading(s) already stored, {len(todo)} to run")
    return todo


def cuts_message(who: str, cuts) -> str:
    """One line for the full-order steps halved after a failed Newton (end times [s])."""
    return (f"{who}: {len(cuts)} full-order time step(s) halved after a failed Newton, "
            "sub-steps ending at t = " + ", ".join(f"{t:g}" for t in cuts) + " s")


def _write_xdmf(path: Path, mesh: FEMesh, solver: MechanicalSolver, series) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    vol = meshio.Mesh(mesh.points, [(b.etype.name, b.cells) for b in mesh.blocks])
    nq = [b.etype.n_qp for b in mesh.blocks]
    sizes = [len(b.cells) for b in mesh.blocks]

    def cell_mean(v):
        out, start = [], 0
        for n, q in zip(sizes, nq):  # loop over blocks
            out.append(v[start:start + n * q].reshape(n, q).mean(axis=1))
            start += n * q
        return out

    cells = []
    for _, _, vm, p in series:
        d = {"von_mises": cell_mean(vm)}
        if p is not None:
            d["p"] = cell_mean(p)
        cells.append(d)
    write_time_series(path, vol, [s[0] for s in series],
                      [{"displacement": s[1]} for s in series], cell_data_per_step=cells,
                      units={"displacement": "m", "von_mises": "Pa"})
