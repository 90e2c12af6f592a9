"""Command lines that drive PETSc: our options first, every other ``-option`` to PETSc."""
from __future__ import annotations

import argparse
import sys

__all__ = ["parse_and_init_petsc"]


def parse_and_init_petsc(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with ``parser``; hand the unknown single-dash options (``-ksp_monitor``,
    ``-<prefix>ksp_rtol 1e-9``) to ``petsc4py.init``, before anything imports
    ``petsc4py.PETSc``. An unknown ``--option`` is a usage error (exit 2)."""
    args, petsc_args = parser.parse_known_args(argv)
    bad = [a for a in petsc_args if a.startswith("--")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    import petsc4py
    petsc4py.init([sys.argv[0]] + petsc_args)
    return args
