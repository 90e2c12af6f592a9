"""``python -m rom.fom case.yaml``: high-fidelity snapshots of every loading of a case.

PETSc options may follow on the command line (``-ksp_monitor``, ``-<prefix>ksp_rtol 1e-9``);
they override the case file's ``fom.petsc_options``.
"""
from __future__ import annotations

import argparse
import sys

from .cli import parse_and_init_petsc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m rom.fom",
        description="Run the full-order (PETSc) solver on every loading of a case and write "
                    "the snapshot store and XDMF files. Extra -options go to PETSc.")
    parser.add_argument("case", help="case file (YAML) with fom:, material: and loading:")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--resume", action="store_true",
                        help="add to an existing store only the loadings it lacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parse_and_init_petsc(parser, argv)
    from ..parallel import abort_on_error, world
    from .run import load_fom_case, run_case
    comm = world()
    with abort_on_error(comm, prog="rom.fom"):
        fc = load_fom_case(args.case)
        run_case(fc, comm, overwrite=args.overwrite, resume=args.resume,
                 progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
