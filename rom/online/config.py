"""Case-file section ``online:`` of the adaptive reduced model (docs/online.md).

Written in the style of :mod:`rom.config` (same ``_f`` helper); to be wired into
:class:`rom.config.Case` as the optional field ``online``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import _f

__all__ = ["OnlineConfig"]


@dataclass(frozen=True)
class OnlineConfig:
    model: Path | None = _f(None, doc="reduced-model file to write (default "  # noqa: RUF009
                                      "<output.directory>/<name>.rom.h5)", path=True)
    displacement_rtol: float = _f(1e-4, doc="POD energy tolerance of the displacement basis",
                                  range=(0.0, 1.0, True, True))
    dual_rtol: float = _f(1e-4, doc="POD energy tolerance of the dual basis (p) and of the "
                                    "internal-variable basis", range=(0.0, 1.0, True, True))
    stress_rtol: float = _f(1e-6, doc="POD energy tolerance of the stress basis kept for "
                                      "ECM updates", range=(0.0, 1.0, True, True))
    ecm_tol: float = _f(1e-4, doc="relative tolerance of the reduced quadrature (ECM)",
                        range=(0.0, 1.0, True, True))
    ecm_batch: int = _f(64, doc="ECM points tried per correlation scan (generalized OMP, "
                                "then point elimination); 1 is plain NNOMP. Larger: fewer "
                                "passes over the points (docs/hyper.md)",
                        range=(1, None, False, False))
    indicator_tol: float = _f(1e-3, doc="enrichment threshold on the error indicator",
                              range=(0.0, None, True, False))
    indicator: Literal["p", "accumulated"] = _f(
        "p", doc="error indicator: p (Gappy-POD residual of p at the reduced points, each "
                 "step) or accumulated (sum over the steps of the residual of the p "
                 "increments, restarted by an enrichment; docs/online.md)")
    stress_indicator_tol: float | None = _f(
        None, doc="if given, also enrich when the stresses at the reduced points leave the "
                  "span of the stress basis by more than this (relative Gappy-POD residual): "
                  "sees the steps a residual of p cannot (elastic steps of a law with a yield "
                  "threshold, p = 0; docs/online.md)", range=(0.0, None, True, False))
    check_training: bool = _f(True, doc="after the build, solve the reduced model on every "
                                        "training loading of fom.loadings and store its "
                                        "errors and indicator in the model (needs fom:)")
    indicator_factor: float | None = _f(None, doc="if given, indicator_tol becomes this "
                                                  "factor times the largest indicator over "
                                                  "the training loadings (needs "
                                                  "check_training)",
                                        range=(1.0, None, False, False))
    indicator_crossval: float | None = _f(None, doc="if given, indicator_tol becomes this "
                                                    "fraction of the indicator at which the "
                                                    "first training loading left out of the "
                                                    "bases (cross-validation) and above the "
                                                    "error targets would have reached them, "
                                                    "errors in proportion to indicators; "
                                                    "with indicator_factor the smaller "
                                                    "tolerance (needs check_training)",
                                          range=(0.0, 1.0, True, False))
    indicator_crossval_margin: float = _f(
        0.0, doc="with indicator_crossval: the left-out loadings above the error targets by "
                 "at most this fraction of them do not set the tolerance (the study still "
                 "counts them above target); 0: every one above target does",
        range=(0.0, None, False, False))
    newton_rtol: float = _f(1e-9, doc="relative tolerance of the reduced Newton",
                            range=(0.0, 1.0, True, True))
    newton_max_iter: int = _f(20, doc="reduced Newton iterations per step",
                              range=(1, None, False, False))
    local: bool = _f(False, doc="also build one reduced model per cluster of the "
                                "'clustering:' section, with a selector and switching "
                                "(docs/local-bases.md)")
    local_model: Path | None = _f(None, doc="local reduced-models file to write (default "  # noqa: RUF009
                                            "<output.directory>/<name>.local.rom.h5)",
                                  path=True)
    sensors: int = _f(16, doc="at most this many temperature sensors (nodes chosen by EIM "
                              "on the temperature snapshots) for the selection of a local "
                              "model", range=(1, None, False, False))
