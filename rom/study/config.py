"""Case-file section ``study:``: held-out queries of a case study (docs/study.md).

Each query is a temperature loading (same syntax as ``fom.loadings``) that the
reduced model answers and the full-order solver checks. Queries are listed one by
one and/or sampled from parameter ranges of a template loading.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import TimeGrid, _f
from ..fom.config import TemperatureSpec

__all__ = ["QuerySpec", "SampleSpec", "StudyConfig"]

Family = Literal["inside", "outside", "random"]


@dataclass(frozen=True)
class QuerySpec:
    name: str = _f(doc="query name (file names, report rows)")
    family: Family = _f("inside", doc="inside or outside the training family, or a random "
                                      "field the training never saw (report grouping)")
    temperature: TemperatureSpec = _f(doc="temperature field, as in fom.loadings",
                                      factory=TemperatureSpec)
    scale: float = _f(1.0, doc="extra factor on the mechanical loads")


@dataclass(frozen=True)
class SampleSpec:
    n: int = _f(doc="number of sampled queries", range=(1, None, False, False))
    seed: int = _f(0, doc="random seed (uniform sampling)", range=(0, None, False, False))
    family: Family = _f("inside", doc="family of the sampled queries")
    prefix: str = _f("q", doc="query names are <prefix><index>")
    temperature: TemperatureSpec = _f(doc="template temperature field; the sampled "
                                          "parameters override temperature.parameters",
                                      factory=TemperatureSpec)
    parameters: dict[str, list[float]] = _f(doc="name: [low, high] uniform ranges",
                                            factory=dict)

    def _validate(self) -> tuple[str, str] | None:
        """(key, message) of a range that is not [low, high] with low <= high, or None."""
        for name, rng in self.parameters.items():  # loop over the sampled parameters
            if len(rng) != 2 or not rng[0] <= rng[1]:
                return f"parameters.{name}", f"expected a range [low, high] with low <= high, " \
                                            f"got {rng}"
        return None


@dataclass(frozen=True)
class StudyConfig:
    queries: list[QuerySpec] = _f(doc="explicit queries", factory=list)
    sample: list[SampleSpec] = _f(doc="sampled queries", factory=list)
    times: TimeGrid | None = _f(None, doc="time grid of the queries (default: "
                                         "loading.times), e.g. more cycles than the "
                                         "training loadings ran")
    enrich: bool = _f(True, doc="also solve every query with enrichment on (a fresh copy of "
                                "the model per query)")
    indicator_tol: float | None = _f(None, doc="indicator tolerance (default: the "
                                               "model's, online.indicator_tol or calibrated)",
                                     range=(0.0, None, True, False))
    error_tol_displacement: float = _f(0.01, doc="target relative error of the displacement",
                                       range=(0.0, None, True, False))
    error_tol_p: float = _f(0.02, doc="target relative error of p",
                            range=(0.0, None, True, False))
    fields: int = _f(1, doc="queries per family written for ParaView (ROM and HF side by "
                            "side)", range=(0, None, False, False))
    report: str = _f("report", doc="report directory name under output.directory")
    keep_references: bool = _f(True, doc="store the full-order answer of every query under "
                                         "<report>/references/ and reuse it while the query, "
                                         "mesh, material, loading and fom settings are "
                                         "unchanged (a rebuilt reduced model or a stopped "
                                         "study then costs no full-order run)")
