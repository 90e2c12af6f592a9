"""``[mpirun -n N] python -m rom.study case.yaml``: answer the held-out queries of the case's
``study:`` section with the reduced model and the full-order solver; write the report.

PETSc options may follow on the command line; they override ``fom.petsc_options``.
"""
from __future__ import annotations

import argparse
import sys

from ..fom.cli import parse_and_init_petsc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m rom.study",
        description="Held-out queries: reduced model (with and without enrichment) against "
                    "the full-order solver; writes <output>/<study.report>/report.md with plots "
                    "and ParaView files. Run python -m rom.fom and python -m rom.offline first.")
    parser.add_argument("case", help="case file (YAML) with fom:, online: and study:")
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-enrich", action="store_true",
                        help="skip the enriched solves (study.enrich: false)")
    parser.add_argument("--recompute", action="store_true",
                        help="run the full-order solver for every query even where a stored "
                             "answer matches (and replace it)")
    args = parse_and_init_petsc(parser, argv)
    from ..parallel import abort_on_error, world
    from .run import run_study
    comm = world()
    with abort_on_error(comm, prog="rom.study"):
        run_study(args.case, comm, progress=not args.quiet, limit=args.limit,
                  enrich=False if args.no_enrich else None, recompute=args.recompute)
    return 0


if __name__ == "__main__":
    sys.exit(main())
