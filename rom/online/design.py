"""Training design by the error indicator: propose the loadings the reduced model needs.

One batch of a weak greedy (Veroy et al. 2003; Haasdonk 2017, sec. 2.3): the reduced model
is solved, without enrichment, for ``n`` candidate loadings sampled uniformly in the box
of the training loadings' temperature parameters (``temperature.parameters``: those of the
heat solver, or named values of a formula), their temperature computed exactly as
``python -m rom.fom`` computes it; each candidate is scored by its largest indicator
(cost independent of the mesh but for the heat solve), and the ``add`` candidates of
largest indicator, no two closer than ``min_distance`` in the box scaled to the unit
cube, are proposed as new training loadings. They are written as a case file that
extends the case with them: ``rom.fom <proposal> --resume`` computes only the new ones,
``rom.offline <proposal>`` rebuilds the model.

    [mpirun -n N] python -m rom.online.design case.yaml --candidates 200 --add 12 \\
        -o case-greedy.yaml

Candidates are spread over the ranks (each solves its heat problems alone). The scores,
the parameters and the choice are kept in ``<output>/<case>.design.h5``.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..parallel import Progress, UserError, as_comm, rank0_print

__all__ = ["Design", "parameter_box", "propose", "score", "select"]


@dataclass
class Design:
    """Candidates, their scores and the proposal."""

    names: list            # temperature parameter names (columns of ``candidates``)
    low: np.ndarray        # (d,) box of the training loadings
    high: np.ndarray
    candidates: np.ndarray  # (n, d) parameter values
    indicator: np.ndarray   # (n,) largest indicator of the reduced solve (inf: diverged)
    chosen: np.ndarray      # indices of the proposed candidates, best first
    seconds: float = 0.0


def parameter_box(loadings) -> tuple[list, np.ndarray, np.ndarray, object]:
    """Names, low and high values of the temperature parameters over the training loadings
    (``fom.loadings`` whose ``temperature.parameters`` are set: heat-solver parameters or
    named values of a formula), and the first such loading (the candidates' template)."""
    heat = [ld for ld in loadings if ld.temperature.parameters]
    if not heat:
        raise UserError("fom.loadings: no training loading with temperature.parameters: "
                        "nothing to sample candidates from")
    names = sorted({k for ld in heat for k in ld.temperature.parameters})
    missing = [(ld.name, k) for ld in heat for k in names if k not in ld.temperature.parameters]
    if missing:
        raise UserError(f"fom.loadings.{missing[0][0]}.temperature.parameters: no "
                        f"{missing[0][1]!r} (every loading with parameters must set the same ones)")
    X = np.array([[ld.temperature.parameters[k] for k in names] for ld in heat], float)
    return names, X.min(axis=0), X.max(axis=0), heat[0]


def select(unit: np.ndarray, indicator: np.ndarray, add: int, min_distance: float) -> np.ndarray:
    """Indices of at most ``add`` candidates by decreasing indicator, skipping any closer
    than ``min_distance`` (Euclidean, ``unit``: candidates scaled to [0, 1]^d) to one
    already chosen. Diverged candidates (indicator inf) come first."""
    chosen: list[int] = []
    for i in np.argsort(-indicator, kind="stable"):  # loop over candidates, worst first
        if len(chosen) == add:
            break
        if all(np.linalg.norm(unit[i] - unit[j]) >= min_distance for j in chosen):
            chosen.append(int(i))
    return np.array(chosen, np.int64)


def score(model, fc, mesh, times: np.ndarray, template, names, X: np.ndarray,
          comm: MPI.Comm, *, progress: bool = True) -> np.ndarray:
    """Largest indicator of the unenriched reduced solve of each candidate (row of ``X``);
    candidates are split over the ranks of ``comm``, each heat solve on one rank."""
    from ..fom.setup import temperature_history
    from .solve import ReducedDivergence
    model.prepare()                     # the candidates' copies share its factorizations
    eta = np.zeros(len(X))
    mine = range(comm.rank, len(X), comm.size)
    bar = Progress(comm, len(mine), f"design: {len(X)} candidates (rank 0's share)",
                   enabled=progress)
    for i in mine:  # loop over this rank's candidates
        spec = replace(template.temperature, parameters=dict(zip(names, map(float, X[i]))))
        T = temperature_history(spec, mesh, fc, comm=MPI.COMM_SELF).array(times)
        try:
            res = model.copy().solve(T, times, scale=template.scale)
            eta[i] = float(np.max(res.indicator))
        except ReducedDivergence:
            eta[i] = np.inf
        bar.update()
    bar.close()
    comm.Allreduce(MPI.IN_PLACE, eta, op=MPI.SUM)
    return eta


def propose(case_file: str | Path, out: str | Path, *, candidates: int = 200, add: int = 10,
            seed: int = 0, min_distance: float = 0.25, comm: MPI.Comm | None = None,
            progress: bool = True) -> Design:
    """Score ``candidates`` loadings with the case's reduced model, write the case file
    ``out`` (extends ``case_file`` by the ``add`` chosen loadings, named ``greedy<k>``
    after the existing ones) and ``<output>/<case>.design.h5``. Collective."""
    from ..config import read_case_mapping
    from ..fom.run import load_fom_case
    from .model import case_model_path, load_for_case

    comm = as_comm(comm)
    if candidates < 1 or add < 1:
        raise UserError(f"design: --candidates ({candidates}) and --add ({add}) must be >= 1")
    if not min_distance >= 0:
        raise UserError(f"design: --min-distance {min_distance} must be >= 0")
    if Path(out).resolve().parent != Path(case_file).resolve().parent:
        raise UserError(f"design: -o {out}: write the proposal next to {case_file} (it extends "
                        f"that file, and the relative paths of a case resolve against the file "
                        f"that extends it)")
    fc = load_fom_case(case_file)
    case = fc.case
    model_path = case_model_path(case, case_file, "the reduced model to score with")
    names, lo, hi, template = parameter_box(fc.fom.loadings)
    t0 = time.perf_counter()
    X = lo + (hi - lo) * np.random.default_rng(seed).random((candidates, len(names)))
    X = np.vectorize(lambda v: float(f"{v:.6g}"))(X)    # as written in the case file
    model = load_for_case(case, model_path)
    mesh = model.mesh
    times = fc.loading.times.array()
    eta = score(model, fc, mesh, times, template, names, X, comm, progress=progress)
    span = np.where(hi > lo, hi - lo, 1.0)
    chosen = select((X - lo) / span, eta, add, min_distance)
    design = Design(names, lo, hi, X, eta, chosen, time.perf_counter() - t0)

    taken = {ld.name for ld in fc.fom.loadings}
    raw = read_case_mapping(case_file)
    new, k = [], 0
    for i in chosen:  # loop over the proposal
        while f"greedy{k}" in taken:
            k += 1
        entry = copy.deepcopy(_raw_loading(raw, template.name))
        entry["name"] = f"greedy{k}"
        entry.setdefault("temperature", {})["parameters"] = {
            n: float(v) for n, v in zip(names, X[i])}
        new.append(entry)
        taken.add(entry["name"])
    if comm.rank == 0:
        _write(design, case_file, out, raw["fom"]["loadings"] + new, model_path,
               Path(case.output.directory) / f"{case.name}.design.h5", seed, min_distance)
        worst = ", ".join(f"{e['name']} ({eta[i]:.2e})" for e, i in zip(new, chosen))
        rank0_print(comm, f"rom.online.design: indicator of {candidates} candidates "
                          f"{np.min(eta):.2e} .. {np.max(eta):.2e} ({design.seconds:.0f} s); "
                          f"proposed {worst}; wrote {out}")
    comm.Barrier()
    return design


def _raw_loading(raw: dict, name: str) -> dict:
    for entry in raw["fom"]["loadings"]:
        if entry.get("name") == name:
            return entry
    raise RuntimeError(f"loading {name!r} not in the case mapping")


def _write(design: Design, case_file, out, loadings, model_path, h5_path, seed, min_distance):
    import yaml

    from ..io.atomic import atomic_h5, stamp_provenance
    out = Path(out)
    try:
        shown = os.path.relpath(Path(model_path).resolve(), out.resolve().parent)
    except ValueError:          # another drive
        shown = str(model_path)
    header = (f"# written by python -m rom.online.design from {case_file}: the training loadings "
              f"and {len(design.chosen)} proposed by the indicator of {shown}\n"
              f"# next: mpirun -n 2 python -m rom.fom {out} --resume; "
              f"mpirun -n 2 python -m rom.offline {out}\n")
    body = {"extends": Path(case_file).name, "fom": {"loadings": loadings}}
    out.write_text(header + yaml.safe_dump(body, default_flow_style=None, width=120,
                                           sort_keys=False))
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(h5_path) as f:
        stamp_provenance(f, schema="rom.online.design", schema_version=1,
                         case_file=str(case_file), model=str(model_path), seed=seed,
                         min_distance=min_distance, seconds=design.seconds, proposal=str(out),
                         parameters=design.names)
        f["candidates"], f["indicator"] = design.candidates, design.indicator
        f["chosen"], f["low"], f["high"] = design.chosen, design.low, design.high


def main(argv: list[str] | None = None) -> int:
    """``[mpirun -n N] python -m rom.online.design case.yaml -o proposal.yaml``."""
    import argparse
    import sys

    from ..parallel import abort_on_error, world
    parser = argparse.ArgumentParser(
        prog="python -m rom.online.design",
        description="Score random loadings in the box of the training loadings' temperature "
                    "parameters by the reduced model's indicator and propose the worst as new "
                    "training loadings (a case file extending the case; docs/online.md).")
    parser.add_argument("case", help="case file with fom:, online: and a built reduced model")
    parser.add_argument("-o", "--output", required=True, help="case file to write")
    parser.add_argument("--candidates", type=int, default=200, help="candidates scored (200)")
    parser.add_argument("--add", type=int, default=10, help="loadings proposed (10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the candidates (0)")
    parser.add_argument("--min-distance", type=float, default=0.25,
                        help="smallest distance between two proposed loadings, parameters "
                             "scaled to [0, 1] (0.25)")
    parser.add_argument("--quiet", action="store_true", help="no progress report")
    from ..fom.cli import parse_and_init_petsc
    args = parse_and_init_petsc(parser, sys.argv[1:] if argv is None else argv)
    comm = world()
    with abort_on_error(comm, prog="rom.online.design"):
        propose(args.case, args.output, candidates=args.candidates, add=args.add,
                seed=args.seed, min_distance=args.min_distance, comm=comm,
                progress=not args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
