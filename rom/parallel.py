"""Communicator helpers.

This is the only module where ``MPI.COMM_WORLD`` is used as a default, and only
by :func:`world` for the command-line entry points. Algorithms receive their
communicator as an argument; ``comm=None`` means serial (``MPI.COMM_SELF``).
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
from typing import Any, Iterator

import numpy as np
from mpi4py import MPI

#: seconds between the error message and ``Abort`` (lets mpiexec forward the message)
ABORT_GRACE = 1.0
#: seconds a rank that failed inside a collective region waits at its exit for the other
#: ranks (:func:`failures` with ``bounded``): longer, they are blocked elsewhere (e.g. in
#: PETSc), and the rank goes on to :func:`abort_on_error`, which aborts them
AGREE_WAIT = 4.0
#: bytes of a rank's message in a bounded agreement (longer messages are cut)
_AGREE_BYTES = 1024

__all__ = [
    "as_comm", "world", "rank0_print", "Progress", "abort_on_error", "StopRequest",
    "row_offsets", "even_split", "allreduce_sum", "bcast_arrays", "check_same", "UserError",
    "AGREE_WAIT", "failures", "raise_if_failed",
]


class UserError(Exception):
    """A mistake of the user (bad input, missing file, ...): printed without traceback by the CLIs."""


def _message(error: BaseException | str | None) -> str | None:
    """The text a rank reports for ``error`` (an exception: ``'Type: text'``)."""
    if error is None or isinstance(error, str):
        return error
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


def failures(error: BaseException | str | None, comm: MPI.Comm | None, *,
             bounded: float | None = None) -> dict[int, str] | None:
    """Collective: what failed on which rank, ``{rank: message}`` (empty: nothing failed).

    The one agreement on failure of the code base: every rank passes what it caught (an
    exception, a message, or ``None``) at the same point, and every rank learns about all
    (one allgather). :func:`raise_if_failed` raises on every rank from it.

    Parameters
    ----------
    error : this rank's failure, or ``None``
    comm : communicator (``None``: serial, no communication)
    bounded : for the exit of a collective region with an exception that the other ranks
        may not share (e.g. ``AtomicH5.close(success=False)``): a rank that failed waits at
        most ``bounded`` seconds for the others (a non-blocking allgather; ranks that did not
        fail wait as long as it takes), then returns ``None``: the others are blocked in
        another collective, and only ``comm.Abort`` (:func:`abort_on_error`) stops them. Every
        rank of one agreement must pass ``bounded`` or none. Messages are cut to 1 kB.
    """
    found = _agree(error, comm, bounded)
    return None if found is None else {r: m for r, (m, _) in found.items()}


def _agree(error: BaseException | str | None, comm: MPI.Comm | None,
           bounded: float | None) -> dict[int, tuple[str, bool]] | None:
    """:func:`failures` with, per failed rank, whether it failed with an exception object."""
    comm = as_comm(comm)
    text, own = _message(error), isinstance(error, BaseException)
    if comm.size == 1:
        return {} if text is None else {0: (text, own)}
    if bounded is None:
        every = comm.allgather(None if text is None else (text, own))
        return {r: item for r, item in enumerate(every) if item is not None}
    local = np.zeros(_AGREE_BYTES + 1, np.uint8)
    if text is not None:
        raw = text.encode("utf-8", "replace")[:_AGREE_BYTES]
        local[0], local[1:1 + len(raw)] = 1 + own, np.frombuffer(raw, np.uint8)
    rows = np.empty((comm.size, _AGREE_BYTES + 1), np.uint8)
    request = comm.Iallgather(local, rows)
    if text is None:
        request.Wait()
    else:
        deadline = time.monotonic() + bounded
        while not request.Test():  # poll until the others arrive or the time is up
            if time.monotonic() > deadline:
                return None          # the request is left pending: the caller aborts
            time.sleep(0.002)
    return {r: (bytes(row[1:]).rstrip(b"\0").decode("utf-8", "replace"), bool(row[0] == 2))
            for r, row in enumerate(rows) if row[0]}


def raise_if_failed(error: BaseException | str | None, comm: MPI.Comm | None,
                    exc: type[BaseException] = RuntimeError, *, what: str = "",
                    bounded: float | None = None) -> None:
    """Collective: raise on every rank if any rank failed (:func:`failures`).

    A rank that passed an exception re-raises it (its own traceback); the others raise
    ``exc`` with ``what`` and the failing ranks' messages (``[rank r] ...`` when they
    differ between ranks). When no rank passed an exception object, the error is the same
    on every rank and has ``collective = True`` (:func:`abort_on_error` prints it once).
    With ``bounded``, a failing rank that waited in vain raises its error alone.
    """
    comm = as_comm(comm)
    found = _agree(error, comm, bounded)
    if found == {}:
        return
    if isinstance(error, BaseException):
        raise error
    if found is None:
        found = {comm.rank: (_message(error), False)}
    texts = {m for m, _ in found.values()}
    if comm.size == 1 or (len(found) == comm.size and len(texts) == 1):
        text = "; ".join(texts)                   # serial, or the same on every rank
    else:
        text = "; ".join(f"[rank {r}] {m}" for r, (m, _) in found.items())
    err = exc(f"{what}: {text}" if what else text)
    err.collective = not any(own for _, own in found.values())
    raise err


def as_comm(comm: MPI.Comm | None) -> MPI.Comm:
    """Return ``comm``, or ``MPI.COMM_SELF`` when it is ``None`` (serial)."""
    return MPI.COMM_SELF if comm is None else comm


def world() -> MPI.Comm:
    """The communicator of a command-line run (``MPI.COMM_WORLD``). Only CLIs call this."""
    return MPI.COMM_WORLD


def rank0_print(comm: MPI.Comm | None, *args: Any, file=None, **kwargs: Any) -> None:
    """``print`` on rank 0 of ``comm`` only, flushed at once."""
    if as_comm(comm).rank == 0:
        print(*args, file=file if file is not None else sys.stdout, flush=True, **kwargs)


class Progress:
    """A minimal progress report on rank 0 (a line per step, or a bar on a terminal).

    Parameters
    ----------
    comm : communicator (only rank 0 prints)
    total : number of steps
    label : what is being done
    enabled : set False to silence
    """

    def __init__(self, comm: MPI.Comm | None, total: int, label: str, *, enabled: bool = True,
                 stream=None):
        self.comm = as_comm(comm)
        self.total = max(int(total), 1)
        self.label = label
        self.count = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.comm.rank == 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1

    def update(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        pct = int(100 * self.count / self.total)
        if self._tty:
            width = 30
            filled = int(width * self.count / self.total)
            self.stream.write(f"\r{self.label:<28s} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.count}/{self.total}")
            if self.count >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 10 != self._last // 10 or self.count >= self.total:
            # non-interactive: one line per 10 %
            self.stream.write(f"{self.label}: {self.count}/{self.total} ({pct}%)\n")
            self.stream.flush()
        self._last = pct

    def close(self) -> None:
        if self.enabled and self._tty and self.count < self.total:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def abort_on_error(comm: MPI.Comm | None = None, *, prog: str = "rom") -> Iterator[None]:
    """Run a command-line stage so that an error on any rank stops every rank at once.

    A :class:`UserError` (or ``FileNotFoundError``, ``KeyboardInterrupt``) is
    printed as one line ``prog: error: ...``; an exception with a true
    ``collective`` attribute (raised identically on every rank) is printed once; any other exception with its
    traceback, prefixed by the rank. With more than one rank, ``comm.Abort``
    then terminates all ranks (the others may be blocked in a collective and
    would otherwise hang). Serially the process exits with status 1 (2 for
    user errors).
    """
    comm = as_comm(comm)
    try:
        yield
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - we report and stop
        prefix = f"[rank {comm.rank}] " if comm.size > 1 else ""
        user = isinstance(exc, (UserError, FileNotFoundError, KeyboardInterrupt))
        if getattr(exc, "collective", False):
            # raised identically on every rank (e.g. a case error broadcast from rank 0)
            if comm.rank == 0:
                sys.stderr.write(f"{prog}: error: {exc}\n")
                sys.stderr.flush()
            raise SystemExit(2) from None
        if user:
            msg = str(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted"
            sys.stderr.write(f"{prefix}{prog}: error: {msg}\n")
        else:
            sys.stderr.write(f"{prefix}{prog}: internal error ({type(exc).__name__}): {exc}\n")
            traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        if comm.size > 1:
            # give the launcher's I/O forwarding time to pass the message on: an immediate
            # Abort can kill the forwarding proxy first (seen under load: empty stderr)
            time.sleep(ABORT_GRACE)
            comm.Abort(2 if user else 1)
        raise SystemExit(2 if user else 1) from None


class StopRequest:
    """Turn SIGTERM / SIGINT into a request to stop at the next safe point (collective).

    A context manager: inside it the first SIGTERM or SIGINT only sets a flag (the
    handler that was there before is put back, so a second one acts as usual: interrupt,
    or terminate); :meth:`requested` tells every rank of ``comm`` whether any rank got
    one (an ``allreduce``: call it at the same points on every rank). A long stage polls
    it between units of work and then ends normally, keeping what it finished (e.g. a batch
    system's SIGTERM before the wall-time limit). Outside the main thread it does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        for sig, old in self._old.items():      # a second signal acts as before
            signal.signal(sig, old)

    def requested(self, comm: MPI.Comm | None) -> bool:
        """True on every rank if any rank of ``comm`` got a signal (collective)."""
        return bool(as_comm(comm).allreduce(self.signum is not None, op=MPI.LOR))


def check_same(comm: MPI.Comm | None, what: str, **values: Any) -> None:
    """Check that collective arguments are the same on every rank (collective: one
    ``allgather`` of their reprs; nothing when serial).

    A collective call with different arguments on different ranks (``rtol``, ``method``,
    ...) takes different code paths and ends in a deadlock or a ``MPI_Abort`` ("Message
    truncated"); this turns it into a clear error.

    Parameters
    ----------
    comm : communicator of the collective call
    what : the call, for the message (e.g. ``"pod"``)
    values : the arguments that must agree, by name (compared by ``repr``, numpy scalars
        as Python numbers, so that NaN equals NaN and ``np.float64(0.1)`` equals ``0.1``)

    Raises
    ------
    UserError : on every rank, naming the first differing argument and its value on
        each rank (``collective`` attribute true: the same message everywhere).
    """
    comm = as_comm(comm)
    if comm.size == 1:
        return
    mine = [(name, repr(v.item() if isinstance(v, np.generic) else v))
            for name, v in values.items()]
    every = comm.allgather(mine)
    for i, (name, _) in enumerate(mine):  # loop over the arguments
        seen = [ranks[i][1] if i < len(ranks) else "<missing>" for ranks in every]
        if len(set(seen)) > 1:
            per_rank = ", ".join(f"rank {r}: {v}" for r, v in enumerate(seen))
            err = UserError(f"{what}: argument {name!r} differs between ranks ({per_rank}); "
                            "a collective call needs the same value on every rank")
            err.collective = True
            raise err
    if len({len(ranks) for ranks in every}) > 1:
        err = UserError(f"{what}: called with different arguments on different ranks")
        err.collective = True
        raise err


def even_split(n_global: int, size: int) -> np.ndarray:
    """Offsets (size + 1,) of an even contiguous split of ``n_global`` rows over ``size`` ranks."""
    base, extra = divmod(int(n_global), int(size))
    counts = np.full(size, base, dtype=np.int64)
    counts[:extra] += 1
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def row_offsets(n_local: int, comm: MPI.Comm | None) -> np.ndarray:
    """Global row offsets (size + 1,) of contiguous row blocks, from each rank's local count."""
    comm = as_comm(comm)
    counts = np.array(comm.allgather(int(n_local)), dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def allreduce_sum(a: np.ndarray, comm: MPI.Comm | None) -> np.ndarray:
    """Sum of a numpy array over all ranks (returns a new array; no copy when serial)."""
    comm = as_comm(comm)
    a = np.ascontiguousarray(a)
    if comm.size == 1:
        return a
    out = np.empty_like(a)
    comm.Allreduce(a, out, op=MPI.SUM)
    return out


def bcast_arrays(arrays: tuple | None, comm: MPI.Comm | None, root: int = 0) -> tuple:
    """Broadcast a tuple of numpy arrays from ``root`` without pickling their data.

    Shapes and dtypes go first (small), then each array as one buffer: every rank holds one
    copy, where ``comm.bcast`` of large arrays would hold the pickle as well (twice the
    memory of a multi-GB basis). Non-root ranks pass anything (ignored).
    """
    comm = as_comm(comm)
    if comm.size == 1:
        return tuple(arrays)
    if comm.rank == root:
        arrays = tuple(np.ascontiguousarray(a) for a in arrays)
        meta = [(a.shape, a.dtype.str) for a in arrays]
    else:
        meta = None
    meta = comm.bcast(meta, root=root)
    out = arrays if comm.rank == root else tuple(np.empty(sh, dtype=dt) for sh, dt in meta)
    for a in out:
        comm.Bcast(a, root=root)
    return out
