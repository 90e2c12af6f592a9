"""The reduced model on its own training loadings: errors, indicator, calibrated tolerance.

After the build, every training loading of the snapshot store is solved again with the
reduced model (its temperature computed exactly as ``python -m rom.fom`` computed it, at
the stored snapshot times) and compared with the stored displacement and p. This gives

- the accuracy the model has where it was trained (a floor for held-out queries:
  truncation of the bases and the reduced quadrature, not extrapolation);
- the indicator levels of loadings the model is known to answer well. With
  ``online.indicator_factor: c`` the enrichment tolerance becomes
  ``c * max_training(max_t eta)``: a query is flagged when its indicator leaves the range
  seen on the training loadings by more than the factor (docs/online.md).

The numbers go into the model's ``meta["training_check"]`` and ``meta["indicator_tol"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..parallel import UserError, as_comm, rank0_print

__all__ = ["TrainingCheck", "history_errors", "training_check"]

#: errors above which a training loading is reported as not reproduced (those of rom.study)
TARGET_U, TARGET_P = 0.01, 0.02


def history_errors(res, us, ps) -> tuple[np.ndarray, np.ndarray]:
    """Errors per step 1.. of a reduced solution against full-order fields ``us``, ``ps``
    (one per step), relative to the largest norm of the full-order field over the history:
    ``e(t) = |x_rom(t) - x_hf(t)| / max_s |x_hf(s)|`` (Euclidean)."""
    nu = max(float(np.linalg.norm(u)) for u in us) or 1.0
    npp = max(float(np.linalg.norm(p)) for p in ps) or 1.0
    eu = np.array([np.linalg.norm(np.ravel(res.displacement(i)) - np.ravel(u)) / nu
                   for i, u in enumerate(us, start=1)])
    ep = np.array([np.linalg.norm(res.p(i) - p) / npp for i, p in enumerate(ps, start=1)])
    return eu, ep


@dataclass
class TrainingCheck:
    """Largest error and indicator over the steps, per training loading."""

    names: list
    err_u: np.ndarray
    err_p: np.ndarray
    indicator: np.ndarray

    def score(self) -> np.ndarray:
        """Largest error relative to its target (:data:`TARGET_U`, :data:`TARGET_P`)."""
        return np.maximum(self.err_u / TARGET_U, self.err_p / TARGET_P)

    def worst(self, n: int = 3) -> str:
        """The ``n`` loadings of largest error relative to the targets."""
        score = self.score()
        return ", ".join(f"{self.names[i]} (e_u {self.err_u[i]:.1e}, e_p {self.err_p[i]:.1e}, "
                         f"indicator {self.indicator[i]:.1e})"
                         for i in np.argsort(-score, kind="stable")[:n])

    def as_meta(self) -> dict:
        return {"names": list(self.names), "err_u": self.err_u.tolist(),
                "err_p": self.err_p.tolist(), "indicator": self.indicator.tolist()}


def training_check(case_file: str | Path, model, comm: MPI.Comm | None = None) -> TrainingCheck:
    """Solve ``model`` (a :class:`~rom.online.model.ReducedModel` with its mesh) on every
    loading of the case's snapshot store that the case's ``fom.loadings`` describe;
    collective (the heat solves run on ``comm``, the reduced solves on every rank)."""
    from ..fom.run import load_fom_case
    from ..fom.setup import temperature_history
    from ..io.snapshots import SnapshotStore
    from .solve import ReducedDivergence

    comm = as_comm(comm)
    fc = load_fom_case(case_file)
    specs = {lc.name: lc for lc in fc.fom.loadings}
    t0 = float(fc.loading.times.start)
    names, eu, ep, eta = [], [], [], []
    heat_cache: dict = {}
    with SnapshotStore.open(fc.case.snapshots.store, comm=comm) as store:
        table = store.snapshot_table()
        for ld in store.loadings:  # loop over training loadings
            lc = specs.get(ld.name)
            if lc is None:
                continue
            cols = store.columns_of(ld.name)
            times = np.concatenate([[t0], table["time"][cols]])
            hist = temperature_history(lc.temperature, model.mesh, fc, comm=comm,
                                       where=f"fom.loadings[{ld.name}].temperature",
                                       heat_cache=heat_cache)
            us = list(store.read_global("displacement", columns=cols).T)
            ps = list(store.read_global("p", columns=cols).T)
            try:
                res = model.copy().solve(hist.array(times), times, scale=lc.scale)
                e_u, e_p = history_errors(res, us, ps)
                row = (e_u.max(), e_p.max(), float(np.max(res.indicator[1:])))
            except ReducedDivergence:
                row = (np.inf, np.inf, np.inf)
            names.append(ld.name)
            for values, v in zip((eu, ep, eta), row):
                values.append(v)
    if not names:
        raise UserError(f"{case_file}: training check: none of the store's loadings is "
                        "described in fom.loadings")
    return TrainingCheck(names, np.array(eu), np.array(ep), np.array(eta))


def check_and_calibrate(case, path: str | Path, comm: MPI.Comm | None = None) -> TrainingCheck:
    """The training check of the model file ``path``, stored in its meta; with
    ``online.indicator_factor`` also the calibrated ``indicator_tol`` (file rewritten
    atomically). Collective."""
    from ..fom.mesh import FEMesh
    from ..io.mesh import read_mesh
    from .model import ReducedModel

    comm = as_comm(comm)
    cfg = case.online
    model = ReducedModel.load(path)
    mesh_file = str(Path(case.mesh).resolve())
    model._mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
    chk = training_check(case.source_file, model, comm)
    model.meta["training_check"] = chk.as_meta()
    finite = np.isfinite(chk.indicator)
    rank0_print(comm, f"rom.online: training check on {len(chk.names)} loading(s): max e_u "
                      f"{np.max(chk.err_u):.2e}, max e_p {np.max(chk.err_p):.2e}, indicator "
                      f"{np.min(chk.indicator):.2e} .. {np.max(chk.indicator):.2e}; largest "
                      "errors: " + chk.worst())
    above = [n for n, x in zip(chk.names, chk.score()) if x > 1.0]
    if above:
        rank0_print(comm, f"rom.online: WARNING: the reduced model misses {TARGET_U:.0%} on u "
                          f"or {TARGET_P:.0%} on p on {len(above)} of its own training "
                          f"loadings ({', '.join(above[:6])}{', ...' if len(above) > 6 else ''}):"
                          " the bases or the reduced quadrature are too coarse (ecm_tol, "
                          "displacement_rtol); a tolerance calibrated on these loadings "
                          "assumes they are reproduced")
    if cfg.indicator_factor is not None:
        if not finite.all():
            bad = [n for n, ok in zip(chk.names, finite) if not ok]
            raise UserError(f"{case.source_file}: online.indicator_factor: the reduced model "
                            f"diverges on training loading(s) {', '.join(bad)}; no tolerance "
                            "can be calibrated")
        tol = float(cfg.indicator_factor * np.max(chk.indicator))
        model.meta["indicator_tol"] = tol
        model.meta["indicator_tol_source"] = (
            f"online.indicator_factor {cfg.indicator_factor:g} x largest training indicator "
            f"{np.max(chk.indicator):.3g}")
        rank0_print(comm, f"rom.online: indicator_tol = {tol:.3g} "
                          f"({model.meta['indicator_tol_source']})")
    model.save(path, comm=comm)
    return chk


def main(argv: list[str] | None = None) -> int:
    """``[mpirun -n N] python -m rom.online.training case.yaml``: the training check (and,
    with ``online.indicator_factor``, the calibrated tolerance) of an existing model."""
    import argparse
    import sys

    from ..config import load_case
    from ..parallel import abort_on_error, world
    parser = argparse.ArgumentParser(
        prog="python -m rom.online.training",
        description="Solve the case's reduced model on its training loadings, store the "
                    "errors and indicator in the model, and with online.indicator_factor "
                    "calibrate its indicator_tol (docs/online.md).")
    parser.add_argument("case", help="case file with online:, fom: and snapshots:")
    from ..fom.cli import parse_and_init_petsc
    args = parse_and_init_petsc(parser, sys.argv[1:] if argv is None else argv)
    comm = world()
    with abort_on_error(comm, prog="rom.online.training"):
        case = load_case(args.case)
        if case.online is None or case.fom is None:
            raise UserError(f"{args.case}: needs online: and fom: sections")
        path = Path(case.online.model or Path(case.output.directory) / f"{case.name}.rom.h5")
        if not path.is_file():
            raise UserError(f"{path}: reduced model not found; build it with "
                            f"python -m rom.offline {args.case}")
        check_and_calibrate(case, path, comm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
