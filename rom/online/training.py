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

Each loading is then left out of the bases in turn (:mod:`rom.online.crossval`, reduced
solves only): errors and indicator of loadings the bases did not see. With
``online.indicator_crossval: f`` the tolerance becomes ``f`` times the indicator at which
the first left-out loading above the error targets (those of the case's ``study:``
section, default 1 % / 2 %: :func:`error_targets`) would have reached them, errors in
proportion to indicators (:func:`~rom.online.crossval.crossval_tolerance`; with both keys,
the smaller tolerance).

The numbers go into the model's ``meta["training_check"]``, ``meta["crossval"]`` and
``meta["indicator_tol"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..parallel import UserError, allreduce_sum, as_comm, raise_if_failed, rank0_print
from .crossval import crossval, crossval_tolerance, fold_data, fold_solve, spread

__all__ = ["TrainingCheck", "error_targets", "history_errors", "training_check"]

#: default error targets (displacement, p): those of rom.study (``study.error_tol_*``)
TARGET_U, TARGET_P = 0.01, 0.02


def error_targets(case) -> tuple[float, float]:
    """The error targets (displacement, p) of the case: its ``study:`` section's
    ``error_tol_displacement`` and ``error_tol_p`` when it has one, else the defaults, so
    that a tolerance calibrated offline aims at the targets the study measures."""
    st = getattr(case, "study", None)
    if st is None:
        return TARGET_U, TARGET_P
    return float(st.error_tol_displacement), float(st.error_tol_p)


def history_errors(res, us, ps) -> tuple[np.ndarray, np.ndarray]:
    """Errors per step 1.. of a reduced solution against full-order fields ``us``, ``ps``
    (one per step; this rank's rows of the model's partition, the whole fields on one
    process), relative to the largest norm of the full-order field over the history:
    ``e(t) = |x_rom(t) - x_hf(t)| / max_s |x_hf(s)|`` (Euclidean). Collective over the
    model's communicator (one Allreduce)."""
    k = len(us)
    sq = np.zeros((4, k))
    for j, (u, p) in enumerate(zip(us, ps), start=1):  # loop over steps
        du = np.ravel(res.displacement(j)) - np.ravel(u)
        dp = res.p(j) - np.ravel(p)
        sq[:, j - 1] = (du @ du, dp @ dp, np.ravel(u) @ np.ravel(u), np.ravel(p) @ np.ravel(p))
    sq = allreduce_sum(sq, res.model.comm)
    nu, npp = np.sqrt(sq[2].max()) or 1.0, np.sqrt(sq[3].max()) or 1.0
    return np.sqrt(sq[0]) / nu, np.sqrt(sq[1]) / npp


@dataclass
class TrainingCheck:
    """Largest error and indicator over the steps, per training loading."""

    names: list
    err_u: np.ndarray
    err_p: np.ndarray
    indicator: np.ndarray
    targets: tuple[float, float] = (TARGET_U, TARGET_P)

    def score(self) -> np.ndarray:
        """Largest error relative to its target (``targets``: displacement, p)."""
        return np.maximum(self.err_u / self.targets[0], self.err_p / self.targets[1])

    def worst(self, n: int = 3) -> str:
        """The ``n`` loadings of largest error relative to the targets."""
        score = self.score()
        return ", ".join(f"{self.names[i]} (e_u {self.err_u[i]:.1e}, e_p {self.err_p[i]:.1e}, "
                         f"indicator {self.indicator[i]:.1e})"
                         for i in np.argsort(-score, kind="stable")[:n])

    def as_meta(self) -> dict:
        return {"names": list(self.names), "err_u": self.err_u.tolist(),
                "err_p": self.err_p.tolist(), "indicator": self.indicator.tolist()}


def training_check(case_file: str | Path, model, comm: MPI.Comm | None = None,
                   folds: list | None = None) -> TrainingCheck:
    """Solve ``model`` (a :class:`~rom.online.model.ReducedModel` with its mesh, its bases
    split over ``comm``) on every loading of the case's snapshot store that the case's
    ``fom.loadings`` describe; collective. Each rank reads its rows of the stored fields
    and projects them on the bases (:func:`~rom.online.crossval.fold_data`: the errors
    then need no full-size field), the heat solves run on ``comm``, and the reduced solves
    are spread over the ranks. With a list ``folds``, append each loading's
    :class:`~rom.online.crossval.FoldData`."""
    from ..fom.run import load_fom_case
    from ..fom.setup import temperature_history
    from ..io.snapshots import SnapshotStore
    from .solve import temperature_at_points

    comm = model.check_comm(comm, "the training check")
    fc = load_fom_case(case_file)
    specs = {lc.name: lc for lc in fc.fom.loadings}
    t0 = float(fc.loading.times.start)
    op, part = model.operator, model.bases.partition
    n0, n1 = part.node_range
    p0, p1 = part.point_range
    data: list = []
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
            T = hist.array(times)
            T_M = [temperature_at_points(op, T, t, i) for i, t in enumerate(times)]
            U, P, msg = None, None, None
            try:
                U = _checked(store, "displacement", cols, (3 * n0, 3 * n1))
                P = _checked(store, "p", cols, (p0, p1))
            except UserError as exc:
                msg = str(exc)
            raise_if_failed(msg, comm, UserError)
            data.append(fold_data(model.bases, ld.name, times, T_M, lc.scale, U, P))
    if not data:
        raise UserError(f"{case_file}: training check: none of the store's loadings is "
                        "described in fom.loadings")
    if folds is not None:
        folds.extend(data)
    kind = model.meta.get("indicator", "p")
    rows = spread(data, lambda d: fold_solve(op, np.eye(op.n_modes), np.eye(
        op.psi_p_M.shape[1]), d, kind), comm)
    eu, ep, eta = (np.array(v) for v in zip(*rows))
    return TrainingCheck([d.name for d in data], eu, ep, eta)


def _checked(store, name: str, cols: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """This rank's ``rows`` of the columns ``cols`` of field ``name`` of ``store``,
    (n_local_rows, len(cols)); a :class:`UserError` naming the store, field and snapshot
    when they hold NaN or Inf (not collective: agree on it after)."""
    values = store.read(name, columns=cols, rows=rows)
    message = store.nonfinite_message(name, values.T, cols)
    if message is not None:
        raise UserError(message)
    return values


def tolerance_below_training(tol: float, chk: TrainingCheck) -> str:
    """A warning (empty if none) when the hand-set ``indicator_tol`` sits below the
    indicator of the model's own training loadings that it reproduces within the targets:
    every in-family query like them is flagged (false alarms, enrichments for nothing)."""
    ok = (chk.score() <= 1.0) & np.isfinite(chk.indicator)
    below = ok & (chk.indicator > tol)
    if not below.any():
        return ""
    names = np.asarray(chk.names)[below]
    return (f"online.indicator_tol {tol:.3g} sits below the indicator of {int(below.sum())} of "
            f"the model's {int(ok.sum())} training loading(s) within the error targets "
            f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}: up to "
            f"{float(np.max(chk.indicator[below])):.3g}): queries like them will be flagged "
            "and enriched although within the targets; calibrate it instead "
            "(online.indicator_crossval or indicator_factor, docs/online.md)")


def check_and_calibrate(case, path: str | Path, comm: MPI.Comm | None = None) -> TrainingCheck:
    """The training check and cross-validation of the model file ``path``, stored in its
    meta; with ``online.indicator_factor`` or ``online.indicator_crossval`` also the
    calibrated ``indicator_tol`` (file rewritten atomically). Collective."""
    from .model import load_for_case

    comm = as_comm(comm)
    cfg = case.online
    model = load_for_case(case, path, comm)
    folds: list = []
    chk = training_check(case.source_file, model, comm, folds=folds)
    chk.targets = error_targets(case)
    model.meta["training_check"] = chk.as_meta()
    model.meta["error_targets"] = list(chk.targets)
    finite = np.isfinite(chk.indicator)
    rank0_print(comm, f"rom.online: training check on {len(chk.names)} loading(s): max e_u "
                      f"{np.max(chk.err_u):.2e}, max e_p {np.max(chk.err_p):.2e}, indicator "
                      f"{np.min(chk.indicator):.2e} .. {np.max(chk.indicator):.2e}; largest "
                      "errors: " + chk.worst())
    above = [n for n, x in zip(chk.names, chk.score()) if x > 1.0]
    if above:
        rank0_print(comm, f"rom.online: WARNING: the reduced model misses "
                          f"{100 * chk.targets[0]:g} % on u or {100 * chk.targets[1]:g} % on p on "
                          f"{len(above)} of its own training loadings ({', '.join(above[:6])}"
                          f"{', ...' if len(above) > 6 else ''}):"
                          " the bases or the reduced quadrature are too coarse (ecm_tol, "
                          "displacement_rtol); a tolerance calibrated on these loadings "
                          "assumes they are reproduced")
    cv = None
    if len(folds) >= 2:
        cv = crossval(model.operator, folds, cfg.displacement_rtol, cfg.dual_rtol,
                      model.meta.get("indicator", "p"), comm)
        cv["targets"] = list(chk.targets)
        model.meta["crossval"] = cv
        cvc = TrainingCheck(cv["names"], *(np.array(cv[k]) for k in ("err_u", "err_p",
                                                                       "indicator")),
                            chk.targets)
        rank0_print(comm, f"rom.online: cross-validation (each of {len(folds)} loadings left "
                          f"out of the bases in turn, docs/online.md): max e_u "
                          f"{np.max(cvc.err_u):.2e}, max e_p {np.max(cvc.err_p):.2e}, "
                          f"{int(np.sum(cvc.score() > 1))} above the targets; indicator "
                          f"{np.min(cvc.indicator):.2e} .. {np.max(cvc.indicator):.2e}; "
                          "largest errors: " + cvc.worst())
    tols = []
    if cfg.indicator_factor is not None:
        if not finite.all():
            bad = [n for n, ok in zip(chk.names, finite) if not ok]
            raise UserError(f"{case.source_file}: online.indicator_factor: the reduced model "
                            f"diverges on training loading(s) {', '.join(bad)}; no tolerance "
                            "can be calibrated")
        tols.append((float(cfg.indicator_factor * np.max(chk.indicator)),
                     f"online.indicator_factor {cfg.indicator_factor:g} x largest training "
                     f"indicator {np.max(chk.indicator):.3g}"))
    if cfg.indicator_crossval is not None:
        if cv is None:
            raise UserError(f"{case.source_file}: online.indicator_crossval: needs at least two "
                            f"training loadings described in fom.loadings, found {len(folds)}")
        tols.append(crossval_tolerance(cvc.indicator, cvc.score(), cfg.indicator_crossval,
                                       cvc.names, cfg.indicator_crossval_margin))
    if tols:
        tol, source = min(tols)
        model.meta["indicator_tol"], model.meta["indicator_tol_source"] = tol, source
        rank0_print(comm, f"rom.online: indicator_tol = {tol:.3g} ({source}"
                          f"{'; the smaller of the two' if len(tols) > 1 else ''})")
    else:
        low = tolerance_below_training(model.meta["indicator_tol"], chk)
        if low:
            rank0_print(comm, f"rom.online: WARNING: {low}")
    if cv is not None:
        tol = model.meta["indicator_tol"]
        hi, flag = cvc.score() > 1.0, cvc.indicator > tol
        rank0_print(comm, f"rom.online: at indicator_tol {tol:.3g} the indicator flags "
                          f"{int(np.sum(hi & flag))} of the {int(hi.sum())} cross-validated "
                          f"loading(s) above the targets (missed: "
                          f"{', '.join(np.asarray(cvc.names)[hi & ~flag]) or 'none'}) and "
                          f"{int(np.sum(~hi & flag))} of the {int(np.sum(~hi))} within them")
    model.save(path, comm=comm)
    return chk


def main(argv: list[str] | None = None) -> int:
    """``[mpirun -n N] python -m rom.online.training case.yaml``: the training check (and,
    with ``online.indicator_factor`` / ``indicator_crossval``, the calibrated tolerance) of
    an existing model."""
    import argparse
    import sys

    from ..config import load_case
    from ..parallel import abort_on_error, world
    parser = argparse.ArgumentParser(
        prog="python -m rom.online.training",
        description="Solve the case's reduced model on its training loadings, store the "
                    "errors and indicator in the model, cross-validate it, and with "
                    "online.indicator_factor or online.indicator_crossval "
                    "calibrate its indicator_tol (docs/online.md).")
    parser.add_argument("case", help="case file with online:, fom: and snapshots:")
    from ..fom.cli import parse_and_init_petsc
    args = parse_and_init_petsc(parser, sys.argv[1:] if argv is None else argv)
    comm = world()
    with abort_on_error(comm, prog="rom.online.training"):
        case = load_case(args.case)
        if case.online is None or case.fom is None:
            raise UserError(f"{args.case}: needs online: and fom: sections")
        from .model import case_model_path
        check_and_calibrate(case, case_model_path(case, args.case, "the model to check"), comm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
