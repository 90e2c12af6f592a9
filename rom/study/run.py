"""Run the held-out queries of a case study: reduced model (with and without enrichment)
against the full-order solver, per time step (docs/study.md).

Errors are measured per time step against the full-order solution and normalized by the
largest norm of that solution over the history,
``e_u(t) = |u_rom(t) - u_hf(t)| / max_s |u_hf(s)|`` (Euclidean over nodes), and the same
for p over the integration points, so that steps where a field passes through zero
(start of a ramp, unloading) do not divide by zero.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..fom.run import FOMCase, cuts_message, load_fom_case
from ..materials import von_mises
from ..online.training import history_errors
from ..parallel import Progress, UserError, as_comm, rank0_print
from .config import QuerySpec, StudyConfig
from .references import Reference, ReferenceStore, mesh_digest, reference_key

__all__ = ["QueryResult", "StudyInputs", "StudyResult", "expand_queries", "run_study",
           "study_inputs"]


@dataclass
class QueryResult:
    """One query: errors, indicator and timings per time step (steps 1..)."""

    name: str
    family: str
    err_u: np.ndarray                  # unenriched reduced model
    err_p: np.ndarray
    indicator: np.ndarray
    hf_seconds: np.ndarray             # full-order wall time per step (on `ranks` ranks)
    rom_seconds: np.ndarray            # reduced wall time per step (one process)
    diverged: bool = False
    err_u_enriched: np.ndarray | None = None
    err_p_enriched: np.ndarray | None = None
    indicator_enriched: np.ndarray | None = None
    enrichments: list = field(default_factory=list)
    enriched_seconds: float = float("nan")
    files: list = field(default_factory=list)
    hf_cuts: list = field(default_factory=list)   # end times of halved full-order steps [s]
    hf_ranks: int = 1                  # ranks the full-order solve ran on
    hf_reused: str = ""                # UTC time of a stored full-order solve reused, or ''
    #: periodic loading: the cycles at the model's critical point (:func:`_cycles`)
    cycles: dict | None = None
    #: the stress residual per step (unenriched), when the model uses one
    stress_indicator: np.ndarray | None = None
    #: wall time of the query's temperature history (the heat solve) [s], which both the
    #: full-order and the reduced answer need
    temperature_seconds: float = float("nan")

    @property
    def max_err(self) -> tuple[float, float]:
        return float(np.max(self.err_u)), float(np.max(self.err_p))

    @property
    def speedup(self) -> float:
        """Full-order over reduced wall time per step (medians; enrichment not counted)."""
        return float(np.median(self.hf_seconds) / np.median(self.rom_seconds))

    @property
    def speedup_enriched(self) -> float:
        """Whole query: full-order wall time over that of the solve with enrichment on
        (its full-order steps and model updates included); nan without that solve."""
        return float(np.sum(self.hf_seconds) / self.enriched_seconds)


@dataclass
class StudyResult:
    case_name: str
    model_path: Path
    times: np.ndarray
    ranks: int
    tol: float
    error_tol: tuple[float, float]
    n_dofs: int
    n_modes: int
    n_points: int
    n_qp: int
    queries: list[QueryResult] = field(default_factory=list)
    report: Path | None = None
    singular_values: dict = field(default_factory=dict)   # name -> (k,) of the model
    point_coords: np.ndarray | None = None                 # (q, 3) reduced points [m]
    point_imposed: np.ndarray | None = None                # (q,) bool: Q-DEIM (weight 0)
    mesh_points: np.ndarray | None = None                  # (n_nodes, 3) [m]
    hf_setup_seconds: float = 0.0
    rom_setup_seconds: float = 0.0                         # ReducedModel.prepare, once
    n_planned: int = 0                                     # queries asked for
    tol_source: str = ""                                   # where the tolerance comes from
    stress_tol: float | None = None                        # online.stress_indicator_tol
    training: dict | None = None                           # the model's training check
    crossval: dict | None = None                           # its cross-validation


def expand_queries(cfg: StudyConfig) -> list[QuerySpec]:
    """Explicit queries, then the sampled ones (deterministic for the seeds)."""
    out = list(cfg.queries)
    for s in cfg.sample:
        rng = np.random.default_rng(s.seed)
        for k in range(s.n):  # loop over sampled queries
            par = dict(getattr(s.temperature, "parameters", None) or {})
            for name, (lo, hi) in sorted(s.parameters.items()):
                par[name] = float(rng.uniform(lo, hi))
            out.append(QuerySpec(f"{s.prefix}{k}", s.family,
                                 replace(s.temperature, parameters=par)))
    names = [q.name for q in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"study: duplicate query names: {', '.join(dup)}")
    return out


def temperature_history(fc: FOMCase, spec, mesh, times: np.ndarray, comm) -> np.ndarray:
    """Nodal temperatures (n_times, n_nodes) [K] of a loading spec, exactly as
    ``python -m rom.fom`` computes them."""
    from ..fom.setup import temperature_history as history
    return history(spec, mesh, fc, comm=comm).array(times)


class _HF:
    """The full-order solver of the case, one per load scale, reused across queries. With
    ``model`` (a reduced model built from the same case file, on ``comm``), the solver is
    the one its enrichments use (:meth:`ReducedModel.full_order_solver`): one matrix and
    preconditioner per rank, not two."""

    def __init__(self, fc: FOMCase, mesh, law, comm, model=None):
        self.fc, self.mesh, self.law, self.comm = fc, mesh, law, comm
        self.solvers = {}
        self.setup_seconds = 0.0
        same = model is not None and fc.case.source_file is not None and \
            Path(model.meta.get("case_file") or "").resolve() == \
            Path(fc.case.source_file).resolve()
        self.model = model if same else None

    def solver(self, scale: float):
        if scale not in self.solvers:
            from ..fom.run import make_solver
            t0 = time.perf_counter()
            if self.model is not None:
                self.solvers[scale] = self.model.full_order_solver(self.comm, scale)
            else:
                self.solvers[scale] = make_solver(self.fc, self.mesh, self.law, scale,
                                                  self.comm)
            self.setup_seconds += time.perf_counter() - t0
        return self.solvers[scale]

    def run(self, T: np.ndarray, times: np.ndarray, scale: float, partition,
            monitor: int | None = None) -> Reference:
        """The full-order answer, this rank's rows of ``partition`` (the reduced model's:
        the solver's points sent to their owners, one ``Alltoallv`` per field and step);
        with ``monitor`` (a global integration point) its stress and strain histories."""
        from ..linalg.rowblocks import send_to_owners
        s = self.solver(scale)
        us, ps, vms, secs = [], [], [], []
        mon = np.zeros((times.size - 1, 12))
        hit = np.flatnonzero(s.elements.qp == monitor) if monitor is not None else []
        n_cuts = len(s.cuts)
        state = s.initial_state(float(times[0]))
        pcol = self.law.state_names["p"][0].start
        n0, n1 = partition.node_range
        qp, off = s.elements.qp, partition.points
        for i in range(1, times.size):  # loop over time steps
            self.comm.Barrier()
            t0 = time.perf_counter()
            state = s.step(state, T[i], float(times[i]), temperature_old=T[i - 1])
            secs.append(time.perf_counter() - t0)
            us.append(np.ravel(state.u)[3 * n0:3 * n1].copy())
            ps.append(send_to_owners(state.internal[:, pcol], qp, off, self.comm))
            vms.append(send_to_owners(von_mises(state.stress), qp, off, self.comm))
            if len(hit):                                   # the rank that holds the point
                mon[i - 1] = np.concatenate([state.stress[hit[0]], state.strain[hit[0]]])
        secs = np.array(secs)
        self.comm.Allreduce(MPI.IN_PLACE, secs, op=MPI.MAX)     # the slowest rank
        monitored = None
        if monitor is not None:
            self.comm.Allreduce(MPI.IN_PLACE, mon, op=MPI.SUM)
            monitored = {"point": int(monitor), "stress": mon[:, :6], "strain": mon[:, 6:]}
        return Reference(us, ps, vms, secs, list(s.cuts[n_cuts:]), self.comm.size,
                         monitor=monitored)

    def destroy(self):
        """Free the solvers (those shared with the model too: the study is done with both)."""
        for s in self.solvers.values():
            s.destroy()


@dataclass
class StudyInputs:
    """What a study reads before its first query (:func:`study_inputs`)."""

    fc: FOMCase
    cfg: StudyConfig
    queries: list[QuerySpec]       # every query of study: (not yet limited)
    mesh: object                   # FEMesh
    times: np.ndarray              # the queries' time grid [s] (study.times or loading.times)
    model_path: Path
    model: object                  # the reduced model, its mesh attached
    fields_dir: Path               # <output>/<study.report>
    store: ReferenceStore          # stored full-order answers (fields_dir / references)


def study_inputs(case_file: str | Path, comm: MPI.Comm | None = None) -> StudyInputs:
    """The case, its queries, mesh, time grid, reduced model and stored full-order answers
    of a study; errors name what is missing (a study: or online: section, the model)."""
    from ..online.model import case_model_path, load_for_case

    comm = as_comm(comm)
    fc = load_fom_case(case_file)
    case = fc.case
    cfg = getattr(case, "study", None)
    if cfg is None:
        raise UserError(f"{case_file}: study: section missing (the held-out queries)")
    model_path = case_model_path(case, case_file, "the reduced model to study")
    model = load_for_case(case, model_path, comm)
    mesh = model.mesh
    fields_dir = Path(case.output.directory) / cfg.report
    times = (cfg.times or fc.loading.times).array()
    return StudyInputs(fc, cfg, expand_queries(cfg), mesh, times, model_path, model,
                       fields_dir, ReferenceStore(fields_dir / "references", case.name, comm,
                                                  model.bases.partition))


def run_study(case_file: str | Path, comm: MPI.Comm | None = None, *, progress: bool = True,
              limit: int | None = None, report: bool = True,
              enrich: bool | None = None, recompute: bool = False) -> StudyResult:
    """Answer every query of the case's ``study:`` section with the reduced model and the
    full-order solver; write the report (rank 0). Collective on ``comm``.

    The reduced solves run on every rank (they are small); the full-order solves and the
    enrichment steps run on ``comm``. ``limit`` keeps only the first queries; ``enrich``
    overrides ``study.enrich``.
    """
    from ..fom.setup import material_from_config
    from ..online.solve import ReducedDivergence

    comm = as_comm(comm)
    inp = study_inputs(case_file, comm)
    fc, cfg, mesh, times, base = inp.fc, inp.cfg, inp.mesh, inp.times, inp.model
    case, model_path, fields_dir, store = fc.case, inp.model_path, inp.fields_dir, inp.store
    queries = inp.queries[:limit]
    if not queries:
        raise UserError(f"{case_file}: study: no queries (give study.queries or study.sample)")
    law = material_from_config(fc.material)
    if cfg.indicator_tol is not None:
        tol, tol_source = cfg.indicator_tol, "study.indicator_tol"
    else:
        tol = float(base.meta["indicator_tol"])
        tol_source = base.meta.get("indicator_tol_source", "online.indicator_tol")
    out = StudyResult(case.name, model_path, times, comm.size, tol,
                      (cfg.error_tol_displacement, cfg.error_tol_p), 3 * mesh.n_nodes,
                      base.n_modes, base.n_points, int(base.meta["n_qp"]))
    op = base.operator
    out.singular_values = {"displacement": base.bases.phi_sv, "p": base.bases.psi_p_sv}
    out.point_coords = np.einsum("qa,qak->qk", op.shape, op.node_coords)
    out.point_imposed = op.weights == 0
    out.mesh_points = mesh.points
    out.n_planned = len(queries)
    out.tol_source, out.training = tol_source, base.meta.get("training_check")
    out.stress_tol = base.meta.get("stress_indicator_tol")
    out.crossval = base.meta.get("crossval")
    t0 = time.perf_counter()
    base.prepare()                      # the copies of every query share its factorizations
    out.rom_setup_seconds = time.perf_counter() - t0
    hf = _HF(fc, mesh, law, comm, base)
    # a periodic loading: the cycles at the critical point (largest p of the training)
    period = getattr(fc.loading, "period", None) if fc.loading is not None else None
    monitor = base.meta.get("critical_point") if period else None
    mesh_sha = mesh_digest(mesh) if cfg.keep_references else ""
    written: dict[str, int] = {}
    bar = Progress(comm, len(queries), "study queries", enabled=progress)
    try:
        for q in queries:  # loop over queries
            t0 = time.perf_counter()
            T = temperature_history(fc, q.temperature, mesh, times, comm)
            t_temperature = time.perf_counter() - t0
            ref = None
            if cfg.keep_references:
                key = reference_key(fc, q, times, mesh_sha)
                if not recompute:
                    ref, why = store.load(q.name, key)
                    if why:
                        rank0_print(comm, f"rom.study: {why}")
            if ref is not None and monitor is not None and \
                    (ref.monitor is None or ref.monitor["point"] != monitor):
                rank0_print(comm, f"rom.study: {store.path(q.name)}: no histories at the "
                                  f"critical point {monitor}; recomputed")
                ref = None
            if ref is None:
                ref = hf.run(T, times, q.scale, base.bases.partition, monitor=monitor)
                if cfg.keep_references:
                    store.save(q.name, key, ref)
            # this rank's rows of the model's partition (the errors are reduced over ranks)
            us, ps, vms, hf_s, cuts = ref.u, ref.p, ref.von_mises, ref.seconds, ref.cuts
            model = base.copy()
            try:
                res = model.solve(T, times, scale=q.scale)
                eu, ep = history_errors(res, us, ps)
                r = QueryResult(q.name, q.family, eu, ep, res.indicator[1:].copy(), hf_s,
                                res.step_seconds[1:].copy())
                if out.stress_tol is not None:
                    r.stress_indicator = res.stress_indicator[1:].copy()
            except ReducedDivergence:
                n = times.size - 1
                r = QueryResult(q.name, q.family, np.full(n, np.inf), np.full(n, np.inf),
                                np.full(n, np.inf), hf_s, np.full(n, np.nan), diverged=True)
                res = None
            r.hf_cuts, r.temperature_seconds = cuts, t_temperature
            r.hf_ranks, r.hf_reused = ref.ranks, ref.created if ref.reused else ""
            if cuts:
                rank0_print(comm, cuts_message(f"rom.study: query {q.name!r}", cuts))
            enr = None
            if cfg.enrich if enrich is None else enrich:
                model = base.copy()
                t0 = time.perf_counter()
                enr = model.solve(T, times, scale=q.scale, enrich=True, tol=tol, comm=comm)
                r.enriched_seconds = time.perf_counter() - t0
                r.err_u_enriched, r.err_p_enriched = history_errors(enr, us, ps)
                r.indicator_enriched = enr.indicator[1:].copy()
                r.enrichments = [{k: v for k, v in e.items()} for e in enr.enrichments]
            answer = enr if enr is not None else res
            if monitor is not None and answer is not None:
                r.cycles = _cycles(answer, ref, times, period, monitor, mesh,
                                   base.bases.partition, comm, enriched=enr is not None,
                                   law=law, T=T)
            if written.get(q.family, 0) < cfg.fields and res is not None:
                written[q.family] = written.get(q.family, 0) + 1
                path = _write_comparison(fields_dir / f"{case.name}.{q.name}.xdmf", model, res,
                                         T, us, ps, vms, enr)
                if path is not None:
                    r.files.append(path)
            out.queries.append(r)
            out.hf_setup_seconds = hf.setup_seconds
            if report and comm.rank == 0:
                # rewritten after every query: a study stopped midway keeps its report
                from .report import write_report
                out.report = write_report(out, fields_dir)
            bar.update()
    finally:
        bar.close()
        hf.destroy()
    out.report = comm.bcast(out.report)
    rank0_print(comm, f"rom.study: report {out.report}" if out.report else "rom.study: done")
    return out


def _cycles(result, ref: Reference, times: np.ndarray, period: float, point: int, mesh,
            partition, comm, *, enriched: bool, law, T: np.ndarray) -> dict:
    """The cycles at the integration point ``point`` of the full-order answer ``ref`` and
    of the reduced ``result`` (:func:`rom.study.cycles.cycle_table`, both along the
    full-order answer's principal direction; the loops in mechanical strain, the law's
    thermal strain at the point removed: ``T`` the nodal temperatures (n_times,
    n_nodes)), and the wall time of each cycle on both sides (the reduced one with its
    enrichments)."""
    from ..linalg.rowblocks import rows_at
    from ..online.points import point_nodes
    from .cycles import cycle_steps, cycle_table, principal_direction
    zero = np.zeros((1, 6))
    hf_sig = np.vstack([zero, ref.monitor["stress"]])
    hf_eps = np.vstack([zero, ref.monitor["strain"]])
    hf_p = np.concatenate([[0.0], rows_at(np.column_stack(ref.p), partition.points,
                                          np.array([point]), comm)[0]])
    rom = result.at_point(point)
    n = principal_direction(hf_sig)
    step_s = result.step_seconds.copy()
    for e in result.enrichments:                 # the enrichments' time in their step
        step_s[e["step"]] += e["seconds"]
    spans = cycle_steps(times, period)
    nodes, shape, _ = point_nodes(mesh, np.array([point]))
    T_pt = np.asarray(T, float)[:, nodes[0]] @ shape[0]              # (n_times,) [K]
    eps_th = law.thermal_strain(T_pt)
    eps_th[0] = 0.0                                                  # the virgin state
    return {"point": int(point), "coords": shape[0] @ mesh.points[nodes[0]],
            "direction": n, "enriched": enriched,
            "hf": cycle_table(times, period, hf_sig, hf_eps - eps_th, hf_p, n),
            "rom": cycle_table(times, period, rom["stress"], rom["strain"] - eps_th,
                               rom["p"], n),
            "hf_seconds": [float(ref.seconds[i0:i1].sum()) for i0, i1 in spans],
            "rom_seconds": [float(step_s[i0 + 1:i1 + 1].sum()) for i0, i1 in spans]}


def _write_comparison(path: Path, model, res, T, us, ps, vms, enr=None) -> Path | None:
    """ROM and HF fields side by side in one XDMF time series: displacement, von Mises
    stress and p (cell means), temperature, and their differences; with ``enr`` (the
    solve with enrichment on) also its displacement, error, p and von Mises stress.
    Collective over the model's communicator: the reduced fields' rows are gathered on
    rank 0, which writes (returns the path there, None elsewhere)."""
    from ..io.mesh import write_time_series
    from ..linalg.distributed import gather_rows
    from ..materials import von_mises as vm_of
    from ..online.result import cell_means

    comm = model.comm
    fields = []
    for i in range(1, res.times.size):  # loop over steps (collective gathers)
        f = [res.displacement(i), res.p(i), vm_of(res.stress(i)), us[i - 1], ps[i - 1],
             vms[i - 1]]
        if enr is not None:
            f += [enr.displacement(i), enr.p(i), vm_of(enr.stress(i))]
        fields.append([gather_rows(x, comm, root=0) for x in f])
    if comm.rank != 0:
        return None
    mio = model.meshio_mesh()

    def cell_mean(v):
        return cell_means(model.mesh, v)

    points, cells = [], []
    for i in range(1, res.times.size):  # loop over steps
        u_rom, p_rom, vm_rom, u_hf, p_hf, vm_hf = fields[i - 1][:6]
        u_hf = np.reshape(u_hf, (-1, 3))
        points.append({"u_rom": u_rom, "u_hf": u_hf, "u_error": u_rom - u_hf,
                       "temperature": T[i]})
        cells.append({"p_rom": cell_mean(p_rom), "p_hf": cell_mean(p_hf),
                      "von_mises_rom": cell_mean(vm_rom), "von_mises_hf": cell_mean(vm_hf)})
        if enr is not None:
            u_enr, p_enr, vm_enr = fields[i - 1][6:]
            points[-1].update(u_enriched=u_enr, u_enriched_error=u_enr - u_hf)
            cells[-1].update(p_enriched=cell_mean(p_enr), von_mises_enriched=cell_mean(vm_enr))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_time_series(path, mio, res.times[1:], points, cell_data_per_step=cells,
                             units={"u_rom": "m", "u_hf": "m", "u_error": "m",
                                    "temperature": "K", "von_mises_rom": "Pa",
                                    "von_mises_hf": "Pa", "u_enriched": "m",
                                    "u_enriched_error": "m", "von_mises_enriched": "Pa"})
