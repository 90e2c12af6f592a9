"""Adaptive reduced model: offline builder, reduced Newton with ECM, error indicator,
high-fidelity enrichment (docs/online.md).

>>> model = rom.online.load("out/plate_creep.rom.h5")            # doctest: +SKIP
>>> result = model.solve(temperature="900 + 50 * t", times=t)     # doctest: +SKIP
>>> models = rom.online.load_local("out/plate_creep.local.rom.h5")  # doctest: +SKIP
"""
from __future__ import annotations

from .build import build_from_arrays, build_reduced_model
from .config import OnlineConfig
from .local import LocalOnlineResult, LocalReducedModels, build_local_models, load, load_local
from .model import FullBases, ReducedModel
from .operator import ReducedOperator
from .result import OnlineResult
from .solve import ReducedDivergence

__all__ = ["FullBases", "LocalOnlineResult", "LocalReducedModels", "OnlineConfig",
           "OnlineResult", "ReducedDivergence", "ReducedModel", "ReducedOperator",
           "build_from_arrays", "build_local_models", "build_reduced_model", "load",
           "load_local"]
