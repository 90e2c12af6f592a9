"""Case studies: held-out queries answered by the reduced model and checked against the
full-order solver, with a report (``python -m rom.study case.yaml``; docs/study.md)."""
from .config import QuerySpec, SampleSpec, StudyConfig

__all__ = ["QuerySpec", "SampleSpec", "StudyConfig", "run_study"]


def run_study(*args, **kwargs):
    """See :func:`rom.study.run.run_study` (imported lazily: it needs PETSc)."""
    from .run import run_study as _run
    return _run(*args, **kwargs)
