"""Adaptive reduced model: offline builder, reduced Newton with ECM, error indicator,
high-fidelity enrichment (docs/online.md).

>>> model = rom.online.load("out/plate_creep.rom.h5")            # doctest: +SKIP
>>> result = model.solve(temperature="900 + 50 * t", times=t)     # doctest: +SKIP
"""
from __future__ import annotations

from .build import build_from_arrays, build_reduced_model
from .config import OnlineConfig
from .model import ReducedModel, load
from .result import OnlineResult
from .solve import ReducedDivergence

__all__ = ["OnlineConfig", "OnlineResult", "ReducedDivergence", "ReducedModel",
           "build_from_arrays", "build_reduced_model", "load"]
