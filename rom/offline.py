"""Offline stage: ``[mpirun -n N] python -m rom.offline case.yaml``.

Reads the case, makes sure the snapshots exist (store, files or formula), computes
the POD of the case's field, and writes one self-describing reduced-basis file
(``<output>/<name>.basis.h5``), the modes on the mesh for ParaView
(``<name>.modes.vtu``) and, when matplotlib is installed, a PNG of the singular
values. A summary table goes to stdout on rank 0, progress to stderr.

The outputs of the stage (basis, modes, local bases, reduced models, operator
interpolation, plots) are written under temporary names and published together when
every step succeeded (:class:`rom.io.atomic.StagedOutputs`): a failing or killed run
replaces none of the files of the previous one.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from mpi4py import MPI

from . import __version__
from .config import Case, CaseError, load_case
from .io.atomic import StagedOutputs, remove_stale_stages, remove_stale_temps
from .io.basis import write_basis
from .io.mesh import read_mesh, write_fields
from .io.snapshots import SnapshotStore
from .linalg import pod
from .linalg.distributed import gather_rows
from .meshes import lumped_mass
from .parallel import (UserError, abort_on_error, as_comm, even_split, raise_if_failed,
                       rank0_print, world)
from .plots import have_matplotlib, singular_value_decay
from .sources import prepare_snapshots

__all__ = ["main", "run", "OfflineResult"]


@dataclass
class OfflineResult:
    """What the offline stage produced (paths) and measured (timings in s).

    ``local_bases`` is the :class:`rom.clustering.LocalBases` of a case with a
    ``clustering`` section.

    ``basis``/``n_modes``/``energy``/``singular_values`` describe the POD stage (None
    when the case has no snapshots); ``interp`` is the operator-interpolation model
    (None when the case has no ``interp`` section).
    """

    basis: Path | None = None
    n_modes: int = 0
    energy: float = float("nan")
    singular_values: np.ndarray | None = None
    interp: object | None = None
    local_bases: object | None = None
    online: Path | None = None
    online_local: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class _Timer:
    """Wall time per stage, synchronized over the communicator (max over ranks)."""

    def __init__(self, comm: MPI.Comm):
        self.comm = comm
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.comm.Barrier()
        t0 = time.perf_counter()
        yield
        self.comm.Barrier()
        self.times[name] = time.perf_counter() - t0


def load_case_collective(path: str | Path, comm: MPI.Comm) -> Case:
    """Rank 0 loads and validates the case; every rank gets it or raises the same error."""
    payload: tuple[str, object] | None = None
    if comm.rank == 0:
        try:
            payload = ("ok", load_case(path))
        except CaseError as exc:
            payload = ("error", str(exc))
    status, value = comm.bcast(payload, root=0)
    if status == "error":
        exc = CaseError(value)
        exc.collective = True  # every rank raises it: printed once, no MPI_Abort needed
        raise exc
    return value  # type: ignore[return-value]


def run(case: Case, comm: MPI.Comm | None = None, *, progress: bool = True,
        out=sys.stdout) -> OfflineResult:
    """Run the offline stage of ``case`` on ``comm`` (collective): every stage the case configures."""
    comm = as_comm(comm)
    timer = _Timer(comm)
    if case.online is not None and case.online.local and case.clustering is None:
        raise UserError(f"{case.source_file}: online.local: needs a 'clustering:' section "
                        "(one local reduced model per cluster)")
    for key in ("indicator_factor", "indicator_crossval"):
        if (case.online is not None and getattr(case.online, key) is not None
                and not (case.online.check_training and case.fom is not None)):
            raise UserError(f"{case.source_file}: online.{key}: needs online.check_training "
                            "and a fom: section (the training loadings)")
    if comm.rank == 0:
        case.output.directory.mkdir(parents=True, exist_ok=True)
        if case.snapshots is not None:
            case.snapshots.store.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(case)
    comm.Barrier()
    result = OfflineResult(timings=timer.times)
    staged = StagedOutputs(comm)
    try:
        _stages(case, comm, timer, result, progress, staged)
    except BaseException:
        staged.discard()          # no communication: this rank may be the only one failing
        raise
    staged.publish()
    _report(case, result, comm, out)
    return result


def _stages(case: Case, comm: MPI.Comm, timer: _Timer, result: OfflineResult, progress: bool,
            staged: StagedOutputs) -> None:
    """Every stage the case configures, writing its outputs into ``staged``."""
    if case.snapshots is not None:
        _pod_stage(case, comm, timer, result, progress, staged)
    if case.online is not None:
        from .online import build_reduced_model
        final = _model_paths(case)[0]
        with timer("reduced model"):
            written = build_reduced_model(case, comm, path=staged.path(final))
        result.online = final
        result.outputs.append(final)
        result.lines.append(f"  reduced model (ECM + error indicator): {final}")
        if case.online.check_training and case.fom is not None:
            from .online.training import check_and_calibrate
            with timer("training check"):
                chk = check_and_calibrate(case, written, comm)    # rewrites it
            result.lines.append(
                f"  training check ({len(chk.names)} loadings): max e_u "
                f"{chk.err_u.max():.2e}, max e_p {chk.err_p.max():.2e}, largest indicator "
                f"{chk.indicator.max():.2e}")
        if case.online.local:
            from .online import build_local_models
            final = _model_paths(case)[1]
            with timer("local reduced models"):
                build_local_models(case, comm, path=staged.path(final))
            result.online_local = final
            result.outputs.append(final)
            result.lines.append(f"  local reduced models ({case.clustering.k}, selector, "
                                f"switching): {final}")
    if case.interp is not None:
        _interp_stage(case, comm, timer, result, progress, staged)


def _model_paths(case: Case) -> tuple[Path, Path]:
    """The reduced-model and local reduced-models files of the case."""
    cfg, out = case.online, Path(case.output.directory)
    return (Path(cfg.model or out / f"{case.name}.rom.h5"),
            Path(cfg.local_model or out / f"{case.name}.local.rom.h5"))


def _outputs(case: Case) -> list[Path]:
    """Every file the offline stage of ``case`` may write."""
    out = Path(case.output.directory)
    names = ("basis.h5", "modes.vtu", "singular_values.png", "local_bases.h5",
             "clusters.png", "interp.h5")
    paths = [out / f"{case.name}.{n}" for n in names]
    return paths + (list(_model_paths(case)) if case.online is not None else [])


def _remove_leftovers(case: Case) -> None:
    """Remove (rank 0) the temporaries and staging directories that killed runs left next
    to the outputs of ``case``; one line."""
    removed = []
    for path in _outputs(case):  # loop over the possible outputs
        removed += remove_stale_temps(path)
    for directory in sorted({p.parent for p in _outputs(case)}):
        removed += remove_stale_stages(directory)
    if removed:
        print(f"rom.offline: removed {len(removed)} temporary file(s) or directories left by "
              "killed runs: " + ", ".join(f"{p} ({n} B)" for p, n in removed), flush=True)


def _provenance(case: Case, **extra) -> dict:
    return {"case_name": case.name, "case_file": str(case.source_file),
            "case_sha256": case.source_hash, **extra}


def _pod_stage(case: Case, comm: MPI.Comm, timer: _Timer, result: OfflineResult,
               progress: bool, staged: StagedOutputs) -> None:
    outdir = case.output.directory
    with timer("read mesh"):
        mesh = read_mesh(case.mesh)
    with timer("snapshots"):
        store_path = prepare_snapshots(case, mesh, comm, progress=progress)
    with timer("load snapshots"):
        store = SnapshotStore.open(store_path, comm=comm)
        if case.pod.field not in store.fields:
            raise UserError(f"{case.source_file}: pod.field: {case.pod.field!r} is not in the "
                            f"snapshot store {store_path} (has: {', '.join(store.fields)})")
        info = store.fields[case.pod.field]
        n_rows = info.n_rows
        off = even_split(n_rows, comm.size)
        rows = (int(off[comm.rank]), int(off[comm.rank + 1]))
        if store.n_snapshots == 0:
            raise UserError(f"{store_path}: the snapshot store holds no snapshots")
        X = store.read(case.pod.field, rows=rows)
        raise_if_failed(store.nonfinite_message(case.pod.field, X.T), comm, UserError)
        n_snap = comm.allreduce(X.shape[1], op=MPI.MAX)
    weights = None
    if case.pod.product == "lumped_mass":
        if info.kind != "nodal" or int(info.n_entities) != len(mesh.points):
            raise UserError(f"{case.source_file}: pod.product: 'lumped_mass' needs a nodal field "
                            f"on the case mesh ({case.pod.field!r} is {info.kind} with "
                            f"{info.n_entities} entities, the mesh has {len(mesh.points)} nodes)")
        weights = np.repeat(lumped_mass(mesh), int(info.n_components))[rows[0]:rows[1]]
    with timer("pod"):
        res = pod(X, comm=comm, method=case.pod.method, rtol=case.pod.rtol,
                  max_modes=case.pod.max_modes, product=weights)
    basis_path = outdir / f"{case.name}.basis.h5"
    result.outputs.append(basis_path)
    with timer("write basis"):
        attrs = {"field": case.pod.field, "kind": info.kind,
                 "n_components": int(info.n_components), "n_entities": int(info.n_entities),
                 "units": info.units, "method": case.pod.method,
                 "rtol": case.pod.rtol, "max_modes": case.pod.max_modes,
                 "product": case.pod.product, "n_snapshots": n_snap,
                 "energy": float(res.energy)}
        write_basis(staged.path(basis_path), modes=res.modes, singular_values=res.singular_values,
                    all_singular_values=res.all_singular_values, attrs=attrs,
                    provenance=_provenance(case, snapshot_store=str(store_path)),
                    product_weights=weights, comm=comm)
        if case.output.write_modes:
            vtu = outdir / f"{case.name}.modes.vtu"
            _write_modes_vtu(staged.path(vtu), mesh, res.modes, info, comm)
            result.outputs.append(vtu)
        png = outdir / f"{case.name}.singular_values.png"
        if case.output.plot and comm.rank == 0:
            if have_matplotlib():
                singular_value_decay(
                    staged.path(png), res.all_singular_values,
                    len(res.singular_values), rtol=case.pod.rtol,
                    title=f"{case.name}: POD of {case.pod.field} ({case.pod.method})")
                result.outputs.append(png)
            else:
                rank0_print(comm, "note: matplotlib not installed, no singular-value plot "
                                  "(pip install 'rom[plot]')", file=sys.stderr)
    s = res.singular_values
    result.basis, result.n_modes, result.energy, result.singular_values = \
        basis_path, len(s), float(res.energy), s
    result.lines += [
        f"  snapshots  {n_rows} rows x {n_snap} columns ({case.pod.field})",
        f"  POD        method={case.pod.method} rtol={case.pod.rtol:g} product={case.pod.product}",
        f"  modes kept {len(s)}   energy captured {res.energy:.10f}   "
        f"sigma_1={s[0]:.4e} sigma_n={s[-1]:.4e}" if len(s) else "  no modes kept"]
    if case.clustering is not None:
        _clustering_stage(case, comm, timer, result, X, weights, store, staged)


def _clustering_stage(case: Case, comm: MPI.Comm, timer: _Timer, result: OfflineResult,
                      X: np.ndarray, weights: np.ndarray | None, store: SnapshotStore,
                      staged: StagedOutputs) -> None:
    from .clustering import (build_local_bases, efficiency_criterion, format_summary,
                             plot_local_bases, snapshot_gram, write_local_bases_file)

    c = case.clustering
    if c.k > X.shape[1]:
        raise UserError(f"{case.source_file}: clustering.k: {c.k} clusters for only "
                        f"{X.shape[1]} snapshots")
    path = case.output.directory / f"{case.name}.local_bases.h5"
    with timer("clustering"):
        G = snapshot_gram(X, comm=comm, product=weights)
        groups = store.snapshot_table()["loading"] if c.level == "simulations" else None
        lb = build_local_bases(X, comm=comm, k=c.k, dissimilarity=c.dissimilarity,
                               level=c.level, groups=groups, rtol=case.pod.rtol,
                               max_modes=case.pod.max_modes, product=weights,
                               method=case.pod.method, overlap=c.overlap, seed=c.seed, gram=G)
        crit = efficiency_criterion(G, lb.columns, rtol=case.pod.rtol)
        write_local_bases_file(staged.path(path), lb, comm=comm, provenance=_provenance(case))
    result.outputs.append(path)
    result.local_bases = lb
    result.lines += ["  " + line for line in format_summary(lb, crit).splitlines()]
    png = case.output.directory / f"{case.name}.clusters.png"
    if case.output.plot and comm.rank == 0 and have_matplotlib():
        plot_local_bases(staged.path(png), lb, title=case.name)
        result.outputs.append(png)


def _interp_stage(case: Case, comm: MPI.Comm, timer: _Timer, result: OfflineResult,
                  progress: bool, staged: StagedOutputs) -> None:
    from .interp.config import run_offline

    path = case.output.directory / f"{case.name}.interp.h5"
    log = (lambda msg: rank0_print(comm, msg, file=sys.stderr)) if progress else None
    with timer("operator interpolation"):
        model = run_offline(case.interp, staged.path(path), comm=comm, log=log,
                            **_provenance(case))
    result.interp = model
    result.outputs.append(path)
    h = model.history
    cfg = case.interp
    result.lines.append(
        f"  interp     {cfg.problem}: {model.matrix_eim.n_terms} matrix EIM terms, "
        f"{model.rhs_eim.n_terms} rhs terms, RB size {model.reduced_matrices.shape[1]}, "
        f"estimator={model.estimator}")
    if "validation_error" in h and len(h["validation_error"]):
        eff = h["validation_effectivity"]
        result.lines.append(
            f"  held-out   {len(eff)} parameters: max error {np.max(h['validation_error']):.3e}, "
            f"effectivity {np.min(eff):.2f}..{np.max(eff):.2f}, median online "
            f"{1e3 * np.median(h['validation_online_s']):.2f} ms vs full-order "
            f"{1e3 * np.median(h['validation_fom_s']):.2f} ms")


def _write_modes_vtu(path: Path, mesh, modes: np.ndarray, info, comm: MPI.Comm) -> Path:
    full = gather_rows(modes, comm, root=0)
    if comm.rank == 0:
        nc, ne = int(info.n_components), int(info.n_entities)
        data = {f"mode_{j + 1:03d}": full[:, j].reshape(ne, nc) if nc > 1 else full[:, j]
                for j in range(full.shape[1])}
        if info.kind == "nodal":
            write_fields(path, mesh, point_data=data)
        else:
            write_fields(path, mesh, cell_data={k: [v] for k, v in data.items()})
    comm.Barrier()
    return path


def _report(case: Case, r: OfflineResult, comm: MPI.Comm, out) -> None:
    if comm.rank != 0:
        return
    p = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    p(f"rom.offline {__version__}: case '{case.name}' on {comm.size} rank(s)")
    for line in r.lines:
        p(line)
    p("  stage                    time [s]")
    for name, t in r.timings.items():
        p(f"  {name:<24s} {t:9.3f}")
    p(f"  {'total':<24s} {sum(r.timings.values()):9.3f}")
    p("  outputs:")
    for o in r.outputs:
        p(f"    {o}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rom.offline",
        description="Offline stage of rom: snapshots -> POD -> reduced-basis file. "
                    "Run under mpirun/mpiexec for distributed memory.")
    parser.add_argument("case", help="case file (YAML), e.g. cases/plate/case.yaml")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--version", action="version", version=f"rom {__version__}")
    args = parser.parse_args(argv)
    comm = world()
    with abort_on_error(comm, prog="rom.offline"):
        case = load_case_collective(args.case, comm)
        run(case, comm, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
