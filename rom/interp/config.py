"""Case-file section ``interp:`` (operator interpolation) and the offline call it drives.

Proposed YAML (every key optional; the defaults are the values shown)::

    interp:
      problem: gaussian_heat      # gaussian_heat | thermal_block  (rom.interp.problems)
      dim: 2                      # gaussian_heat: 2 (P1 triangles) or 3 (Q1 hexahedra)
      cells: 32                   # cells per direction
      width: 0.2                  # gaussian_heat: w in k = 1 + exp(-|x - mu|^2 / w)
      blocks: [2, 2]              # thermal_block: blocks per direction
      training_samples: 100       # scrambled Halton points in the parameter box
      seed: 0
      matrix_tol: 1.0e-10         # relative max-entry EIM tolerance of A(mu)
      rhs_tol: 1.0e-10
      max_matrix_terms: null
      max_rhs_terms: null
      rb_tol: 1.0e-6              # greedy: max relative error bound on the training set
      max_basis: 30
      estimator: stable           # stable | classical
      residual_tol: 1.0e-13       # EIM tolerance of the Riesz representatives
      coercivity: null            # null: the problem's rigorous bound (1, or min-theta)
      validation_samples: 10      # held-out parameters: true error and effectivity

The offline CLI calls :func:`interp_config_from_dict` (or builds the section through
``rom.config``) and then :func:`run_offline`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..config import _f  # only _f: rom.config may import this module while loading

if TYPE_CHECKING:
    from mpi4py import MPI

    from .problems import HeatProblem
    from .rb import RBModel

__all__ = ["InterpConfig", "build_problem", "interp_config_from_dict", "run_offline"]


@dataclass(frozen=True)
class InterpConfig:
    problem: Literal["gaussian_heat", "thermal_block"] = _f(
        "gaussian_heat", doc="test problem of rom.interp.problems")
    dim: int = _f(2, doc="gaussian_heat: space dimension (2: P1, 3: Q1)", range=(2, 3, False, False))
    cells: int = _f(32, doc="cells per direction", range=(2, None, False, False))
    width: float = _f(0.2, doc="gaussian_heat: width w of the conductivity bump",
                      range=(0.0, None, True, False))
    blocks: list[int] = _f(doc="thermal_block: blocks per direction", factory=lambda: [2, 2])
    training_samples: int = _f(100, doc="training parameters (scrambled Halton)",
                               range=(1, None, False, False))
    seed: int = _f(0, doc="Halton scrambling seed", range=(0, None, False, False))
    matrix_tol: float = _f(1e-10, doc="relative max-entry EIM tolerance of A(mu)",
                           range=(0.0, 1.0, False, True))
    rhs_tol: float = _f(1e-10, doc="relative max-entry EIM tolerance of f(mu)",
                        range=(0.0, 1.0, False, True))
    max_matrix_terms: int | None = _f(None, doc="cap on matrix EIM terms",
                                      range=(1, None, False, False))
    max_rhs_terms: int | None = _f(None, doc="cap on rhs EIM terms", range=(1, None, False, False))
    rb_tol: float = _f(1e-6, doc="greedy stops at this max relative error bound",
                       range=(0.0, 1.0, True, True))
    max_basis: int = _f(30, doc="maximum reduced-basis size", range=(1, None, False, False))
    estimator: Literal["stable", "classical"] = _f("stable", doc="residual norm evaluation")
    residual_tol: float = _f(1e-13, doc="EIM tolerance of the residual Riesz representatives",
                             range=(0.0, 1.0, False, True))
    coercivity: float | None = _f(None, doc="coercivity lower bound (null: the problem's own)",
                                  range=(0.0, None, True, False))
    validation_samples: int = _f(10, doc="held-out parameters checked after the greedy",
                                 range=(0, None, False, False))


def interp_config_from_dict(data: Any, *, source: str | Path = "<dict>",
                            key: str = "interp") -> InterpConfig:
    """Validate the ``interp:`` mapping (errors name the file and the key, as rom.config)."""
    from ..config import _Ctx

    base = Path(source).resolve().parent if source != "<dict>" else Path.cwd()
    return _Ctx(str(source), base).build(InterpConfig, data, key)


def build_problem(cfg: InterpConfig) -> HeatProblem:
    """The test problem described by ``cfg``."""
    from .problems import gaussian_heat, thermal_block

    if cfg.problem == "gaussian_heat":
        return gaussian_heat(cfg.cells, dim=cfg.dim, width=cfg.width)
    if len(cfg.blocks) != 2:
        raise ValueError(f"interp.blocks: expected two integers, got {cfg.blocks}")
    return thermal_block(cfg.cells, tuple(cfg.blocks))


def run_offline(cfg: InterpConfig, path: str | Path, *, comm: MPI.Comm | None = None,
                log: Callable[[str], None] | None = None, **provenance: Any) -> RBModel:
    """Build the operator-interpolation reduced model of ``cfg`` and write it to ``path``.

    Collective. Every rank builds the (small) test problem and owns an even block of rows.
    After the greedy, ``validation_samples`` held-out parameters are solved both ways;
    their true errors and effectivities go into ``model.history`` (and the file).
    """
    from ..parallel import as_comm
    from .artifact import save
    from .problems import halton
    from .rb import build_rb

    comm = as_comm(comm)
    prob = build_problem(cfg)
    lp = prob.linear_problem(comm)
    training = halton(cfg.training_samples, prob.bounds, cfg.seed)
    X = prob.local(comm)["product"]
    coer = cfg.coercivity if cfg.coercivity is not None else prob.coercivity_lb
    model = build_rb(lp, training, product=X, coercivity=coer, comm=comm,
                     matrix_tol=cfg.matrix_tol, rhs_tol=cfg.rhs_tol,
                     max_matrix_terms=cfg.max_matrix_terms, max_rhs_terms=cfg.max_rhs_terms,
                     rb_tol=cfg.rb_tol, max_basis=cfg.max_basis, estimator=cfg.estimator,
                     residual_tol=cfg.residual_tol, log=log)
    if cfg.validation_samples:
        model.history.update(validate(model, prob, halton(cfg.validation_samples, prob.bounds,
                                                          cfg.seed + 1), comm))
    if cfg.coercivity is None and cfg.problem == "gaussian_heat":
        model.coercivity = 1.0                      # a constant: storable in the file
    save(model, path, comm=comm, problem=cfg.problem, **provenance)
    return model


def validate(model: RBModel, prob: HeatProblem, params: np.ndarray,
             comm: MPI.Comm | None = None) -> dict[str, np.ndarray]:
    """True X-norm errors, bounds, effectivities and timings on held-out parameters."""
    from ..parallel import as_comm
    from ._dist import allsum, gather_rows

    comm = as_comm(comm)
    X = prob.local(comm)["product"]

    out = {k: [] for k in ("error", "bound", "effectivity", "online_s", "fom_s")}
    for mu in params:
        t0 = time.perf_counter()
        u = model.problem.solve(mu)
        t1 = time.perf_counter()
        r = model.solve(mu)
        e = u - r.field
        err = float(np.sqrt(allsum([e @ (X @ gather_rows(e, comm))], comm)[0]))
        out["error"].append(err)
        out["bound"].append(r.error_bound)
        out["effectivity"].append(r.error_bound / err if err > 0 else np.inf)
        out["online_s"].append(r.seconds)
        out["fom_s"].append(t1 - t0)
    res = {f"validation_{k}": np.array(v) for k, v in out.items()}
    res["validation_parameters"] = np.asarray(params)
    return res
