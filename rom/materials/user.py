"""A user's constitutive law: ``material.law: module:Class`` in a case file.

The class is imported from an importable module (on ``sys.path``: installed, or its
directory on ``PYTHONPATH``), built with the elastic tables and the case's
``material.parameters`` as keywords, and checked against the :class:`Material` protocol
(:func:`check_law`) before any solver uses it. docs/fom.md, "Your own law".
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np

from .base import MaterialError

__all__ = ["check_law", "load_law"]


def load_law(spec: str, **params):
    """The law ``spec`` = ``"module:Class"`` built as ``Class(**params)``, checked by
    :func:`check_law`. :class:`MaterialError` names the module, the class and what is wrong
    (not importable, no such class, a parameter refused, the protocol not met)."""
    module, _, name = spec.partition(":")
    where = f"material.law {spec!r}"
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise MaterialError(f"{where}: cannot import module {module!r} ({exc}); put its "
                            "directory on PYTHONPATH or install it") from None
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise MaterialError(f"{where}: module {module!r} ({getattr(mod, '__file__', '?')}) has "
                            f"no class {name!r}")
    try:
        law = cls(**params)
    except (TypeError, ValueError) as exc:
        raise MaterialError(f"{where}: {name}({', '.join(sorted(params))}) failed: {exc} "
                            "(material.parameters are its keyword arguments, with E, nu, "
                            "alpha and T_ref)") from None
    check_law(law, where)
    return law


def check_law(law, where: str = "material law") -> None:
    """Raise :class:`MaterialError` unless ``law`` meets the :class:`Material` protocol:
    ``n_state`` (int >= 0), ``state_names`` (name -> (slice within the state, unit)),
    ``initial_state(n)`` of shape (n, n_state), and ``integrate`` on two points (zero
    strain, its ``T_ref`` or 293.15 K, dt = 1 s) giving finite stress (2, 6), state
    (2, n_state) and tangent (2, 6, 6)."""
    ns = getattr(law, "n_state", None)
    if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)) or ns < 0:
        raise MaterialError(f"{where}: n_state must be an integer >= 0, got {ns!r}")
    names = getattr(law, "state_names", None)
    if not isinstance(names, Mapping):
        raise MaterialError(f"{where}: state_names must be a mapping name -> (slice, unit), "
                            f"got {type(names).__name__}")
    for key, value in names.items():          # the law's named internal variables
        ok = (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], slice)
              and isinstance(value[1], str))
        if not ok or not 0 <= (value[0].start or 0) < (value[0].stop or 0) <= ns:
            raise MaterialError(f"{where}: state_names[{key!r}] must be (slice within "
                                f"0..{ns}, unit), got {value!r}")
    for method in ("initial_state", "integrate"):
        if not callable(getattr(law, method, None)):
            raise MaterialError(f"{where}: has no method {method}() (the Material protocol, "
                                "docs/fom.md)")
    try:
        z0 = np.asarray(law.initial_state(2))
        if z0.shape != (2, ns):
            raise MaterialError(f"{where}: initial_state(2) has shape {z0.shape}, expected "
                                f"(2, {ns})")
        T = np.full(2, float(getattr(law, "T_ref", 293.15)))
        out = law.integrate(np.zeros((2, 6)), np.zeros((2, 6)), z0, T, 1.0)
    except MaterialError:
        raise
    except Exception as exc:          # noqa: BLE001 (a user's code may raise anything)
        raise MaterialError(f"{where}: calling it failed: {type(exc).__name__}: {exc}") from None
    if not (isinstance(out, tuple) and len(out) == 3):
        raise MaterialError(f"{where}: integrate() must return (stress, state, tangent)")
    for what, arr, shape in zip(("stress", "state", "tangent"), out, ((2, 6), (2, ns), (2, 6, 6)),
                                strict=True):
        arr = np.asarray(arr)
        if arr.shape != shape or not np.all(np.isfinite(arr)):
            raise MaterialError(f"{where}: integrate() returned a {what} of shape {arr.shape} "
                                f"(expected {shape}, finite) on two virgin points")
