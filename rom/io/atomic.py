"""Atomic, collective creation of HDF5 files, and provenance attributes.

Readers never see a half-written file: rank 0 writes into a temporary file in
the destination directory (``.{name}.tmp-{pid}``) and ``os.replace``\\ s it onto
the destination only when every rank finished without error. A killed writer
leaves at most that hidden temporary file; an existing file at the destination
is replaced only on success.

h5py from pip is not built with parallel HDF5, so only rank 0 holds the file;
the other ranks take part in the agreement on success or failure.

A writer killed outright also leaves its temporary (and, killed during
:meth:`AtomicH5.commit`, a ``.commit`` copy of it): :func:`remove_stale_temps`
removes those of processes that are no longer alive.

A stage with several outputs writes them under temporary names and publishes them
together at its end (:class:`StagedOutputs`): a stage that fails, or is killed, replaces
none of the files of a previous run.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import getpass
import json
import os
import platform
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from mpi4py import MPI

from ..parallel import AGREE_WAIT, as_comm, failures, raise_if_failed

__all__ = ["AtomicH5", "StagedOutputs", "atomic_h5", "fsync_path", "remove_stale_stages",
           "remove_stale_temps", "stamp_provenance", "temp_path_for"]

#: name of the directory where a stage writes its outputs (+ rank 0's pid), next to them
STAGE_PREFIX = ".rom-stage.tmp-"


def temp_path_for(path: str | os.PathLike, pid: int | None = None) -> Path:
    """The temporary file used while writing ``path``: ``<dir>/.{name}.tmp-{pid}``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``os.kill(pid, 0)``; another user's
    process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # PermissionError: it exists but is not ours
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove the temporaries of ``path`` left by writers that are no longer alive.

    Not collective (call it on the rank that writes, before writing). A writer
    killed outright (``SIGKILL``, out of memory, node failure) leaves
    ``.{name}.tmp-{pid}`` (:func:`temp_path_for`) and maybe
    ``.{name}.tmp-{pid}.commit`` (:meth:`AtomicH5.commit`) next to ``path``. Exactly
    these names, for this ``path``'s name, are considered; those whose ``pid`` is
    alive on this host are kept. The pid check cannot see other hosts: a file being
    written from another host at the same time under a pid that is free here would
    be removed (two writers of one file clobber each other anyway).

    Parameters
    ----------
    path : the destination file whose leftovers are looked for

    Returns
    -------
    list of (file, size in bytes) : the files removed, sorted by name
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp-([1-9][0-9]*)(\.commit)?")
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:          # no directory (yet), or not readable: nothing to clean
        return []
    removed = []
    for name in names:  # loop over the directory's entries
        match = pattern.fullmatch(name)
        leftover = path.parent / name
        if match is None or not leftover.is_file() or _pid_alive(int(match.group(1))):
            continue
        try:
            size = leftover.stat().st_size
            leftover.unlink()
        except OSError:      # removed meanwhile, or not ours to remove: leave it
            continue
        removed.append((leftover, size))
    return removed


def remove_stale_stages(directory: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove the staging directories (:class:`StagedOutputs`) of dead processes in
    ``directory``; not collective. Returns (directory, bytes of its files) removed."""
    pattern = re.compile(rf"{re.escape(STAGE_PREFIX)}([1-9][0-9]*)")
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    removed = []
    for name in names:  # loop over the directory's entries
        match = pattern.fullmatch(name)
        stage = Path(directory) / name
        if match is None or not stage.is_dir() or _pid_alive(int(match.group(1))):
            continue
        size = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
        shutil.rmtree(stage, ignore_errors=True)
        if not stage.exists():
            removed.append((stage, size))
    return removed


class StagedOutputs:
    """The output files of one stage, written under temporary names and published together.

    Collective over ``comm`` (construct it, and :meth:`publish`, on every rank). Instead of
    a destination ``dest``, the stage writes :meth:`path` ``(dest)``:
    ``<dest's directory>/.rom-stage.tmp-<pid>/<dest's name>`` (``pid`` of rank 0), with any
    writer (:func:`atomic_h5`, meshio, matplotlib), and may read it back and rewrite it.
    :meth:`publish`, at the end of the stage, renames every staged file onto its
    destination (rank 0; one ``os.replace`` each, then the directories are fsynced and the
    staging directories removed). :meth:`discard` (no communication: a failing rank may be
    alone) removes the staging directories. A stage killed outright leaves its staging
    directory, which :func:`remove_stale_stages` removes later; the destinations keep the
    files of the last run that finished.

    Parameters
    ----------
    comm : communicator (``None``: serial)
    """

    def __init__(self, comm: MPI.Comm | None = None):
        self.comm = as_comm(comm)
        pid = os.getpid() if self.comm.rank == 0 else None
        self.pid = self.comm.bcast(pid, root=0) if self.comm.size > 1 else pid
        self.files: dict[Path, Path] = {}          # destination -> staged file

    def path(self, dest: str | os.PathLike) -> Path:
        """The file to write instead of ``dest`` (the same on every rank); rank 0 creates
        its staging directory."""
        dest = Path(dest).absolute()
        staged = dest.parent / f"{STAGE_PREFIX}{self.pid}" / dest.name
        if self.comm.rank == 0:
            staged.parent.mkdir(parents=True, exist_ok=True)
        self.files[dest] = staged
        return staged

    def publish(self) -> list[Path]:
        """Collective: move every staged file that was written onto its destination;
        returns the destinations written. An error (on rank 0) is raised on every rank and
        leaves the destinations not yet renamed as they were."""
        error, done = None, []
        if self.comm.rank == 0:
            try:
                for dest, staged in self.files.items():  # loop over the outputs
                    if staged.is_file():
                        fsync_path(staged)
                        os.replace(staged, dest)
                        done.append(dest)
                for directory in {d.parent for d in done}:
                    fsync_path(directory, directory=True)
            except BaseException as exc:  # noqa: BLE001 - agreed below
                error = exc
            self.discard()
        raise_if_failed(error, self.comm, RuntimeError, what="publishing the stage's outputs")
        return self.comm.bcast(done, root=0) if self.comm.size > 1 else done

    def discard(self) -> None:
        """Remove the staging directories and what they hold (rank 0; not collective)."""
        if self.comm.rank != 0:
            return
        for directory in {staged.parent for staged in self.files.values()}:
            shutil.rmtree(directory, ignore_errors=True)


def fsync_path(path: str | os.PathLike, *, directory: bool = False) -> None:
    """``fsync`` a file (or, with ``directory=True``, a directory entry list); best effort."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some platforms cannot open directories
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _publish(src: Path, dst: Path) -> None:
    """fsync ``src``, rename it onto ``dst`` atomically, fsync the directory."""
    fsync_path(src)
    os.replace(src, dst)
    fsync_path(dst.parent, directory=True)


def _raise_agreed(comm: MPI.Comm, error: BaseException | None, what: str) -> None:
    """Collective: if any rank has an error, raise on every rank
    (:func:`rom.parallel.raise_if_failed`: the rank that failed re-raises its own
    exception; the others raise a ``RuntimeError`` naming the failed ranks)."""
    raise_if_failed(error, comm, RuntimeError, what=f"{what} failed")


class AtomicH5:
    """An HDF5 file written by rank 0 into a temporary, published on success.

    Collective over ``comm``: construct, write through :attr:`file` (rank 0
    only; ``None`` elsewhere), then :meth:`close` with ``success=True`` on every
    rank. Prefer :func:`atomic_h5`, which does this in a ``with`` block.

    Parameters
    ----------
    path : destination file
    comm : communicator (``None``: serial)
    mode : ``"w"`` (new content) or ``"a"`` (copy an existing ``path`` to the
        temporary first, so that appending is atomic too)
    **h5_kwargs : passed to ``h5py.File`` (e.g. ``rdcc_nbytes``)
    """

    def __init__(self, path: str | os.PathLike, *, comm: MPI.Comm | None = None,
                 mode: str = "w", **h5_kwargs: Any):
        if mode not in ("w", "a"):
            raise ValueError(f"atomic_h5: mode must be 'w' or 'a', not {mode!r}")
        self.comm = as_comm(comm)
        self.path = Path(path).absolute()
        self.file: h5py.File | None = None
        self.tmp: Path | None = None
        self.closed = False
        error: BaseException | None = None
        if self.comm.rank == 0:
            try:
                self.tmp = temp_path_for(self.path)
                if not self.path.parent.is_dir():
                    raise FileNotFoundError(
                        f"cannot write {self.path}: directory {self.path.parent} does not exist")
                if mode == "a" and self.path.exists():
                    shutil.copyfile(self.path, self.tmp)
                    self.file = h5py.File(self.tmp, "a", **h5_kwargs)
                else:
                    self.file = h5py.File(self.tmp, "w", **h5_kwargs)
            except BaseException as exc:  # noqa: BLE001 - agreed below
                error = exc
                self._discard()
        _raise_agreed(self.comm, error, f"opening {self.path} for writing")

    def commit(self) -> None:
        """Collective: publish the current content at :attr:`path` and keep writing.

        Rank 0 flushes the temporary file and atomically replaces ``path`` with
        a copy of it (the cost is one copy of the file). Use it as a checkpoint
        in long runs: a later crash leaves the last committed state. On failure
        (e.g. no room for the copy) the partial copy is removed, ``path`` is left
        as it was, and every rank raises; the file stays open for writing.
        """
        error: BaseException | None = None
        if self.comm.rank == 0:
            copy = None
            try:
                assert self.file is not None and self.tmp is not None
                self.file.flush()
                copy = self.tmp.with_name(self.tmp.name + ".commit")
                shutil.copyfile(self.tmp, copy)
                _publish(copy, self.path)
            except BaseException as exc:  # noqa: BLE001
                error = exc
                if copy is not None:          # a partial copy (gone if it was published)
                    with contextlib.suppress(OSError):
                        copy.unlink()
        _raise_agreed(self.comm, error, f"committing {self.path}")

    def close(self, success: bool = True) -> None:
        """Collective: publish (if every rank has ``success``) or discard the file.

        Raises ``RuntimeError`` on the ranks that succeeded when another rank
        did not (the failing rank raises its own exception in :func:`atomic_h5`).
        A rank closing without ``success`` waits at most
        :data:`rom.parallel.AGREE_WAIT` seconds for the others (they may be blocked in
        another collective, e.g. PETSc's, when only this rank failed): then it returns
        without them (rank 0 discards the temporary), and its caller's error reaches
        :func:`rom.parallel.abort_on_error`, which aborts every rank.
        """
        if self.closed:
            return
        self.closed = True
        failed = failures(None if success else "failed", self.comm, bounded=AGREE_WAIT)
        if failed is None or failed:
            if self.comm.rank == 0:
                self._discard()
            if success:
                raise RuntimeError(f"writing {self.path} aborted: rank(s) {sorted(failed)} "
                                   "failed; the file was not written")
            return
        error: BaseException | None = None
        if self.comm.rank == 0:
            try:
                assert self.file is not None and self.tmp is not None
                self.file.flush()
                self.file.close()
                self.file = None
                _publish(self.tmp, self.path)
            except BaseException as exc:  # noqa: BLE001
                error = exc
                self._discard()
        _raise_agreed(self.comm, error, f"publishing {self.path}")

    def _discard(self) -> None:
        """Close and remove the temporary file (rank 0), ignoring errors."""
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
            self.file = None
        if self.tmp is not None:
            for p in (self.tmp, self.tmp.with_name(self.tmp.name + ".commit")):
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, *, comm: MPI.Comm | None = None,
              mode: str = "w") -> Iterator[h5py.File | None]:
    """Write an HDF5 file atomically; collective over ``comm``.

    Rank 0 gets an ``h5py.File`` open on a temporary file next to ``path``
    (the other ranks get ``None``). When the block exits normally on every
    rank, the file is flushed, fsynced, closed and renamed onto ``path``. If
    the block raises on any rank, the temporary is removed, ``path`` is left as
    it was, and every rank raises (the failing rank its own exception).

    Parameters
    ----------
    path : destination file
    comm : communicator (``None``: serial)
    mode : ``"w"`` or ``"a"`` (start from a copy of the existing ``path``)

    Examples
    --------
    >>> with atomic_h5("out.h5", comm=comm) as f:       # doctest: +SKIP
    ...     if f is not None:
    ...         f["x"] = x_global
    """
    handle = AtomicH5(path, comm=comm, mode=mode)
    try:
        yield handle.file
    except BaseException:
        handle.close(success=False)
        raise
    handle.close(success=True)


def _attr_value(value: Any) -> Any:
    """An HDF5-storable attribute value: dicts/lists of non-numbers become JSON strings."""
    if isinstance(value, (str, bytes, bool, int, float, np.generic)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return json.dumps(value, sort_keys=True, default=str)


def stamp_provenance(h5obj: h5py.File | h5py.Group, *, schema: str, schema_version: int,
                     **extra: Any) -> None:
    """Write the standard provenance attributes on an HDF5 file or group.

    Attributes written: ``schema``, ``schema_version``, ``rom_version``,
    ``created_utc`` (ISO 8601), ``hostname``, ``user``, ``python_version``,
    ``numpy_version``, ``h5py_version``, ``hdf5_version``, plus every ``extra``
    keyword (e.g. ``case_hash=...``, ``writer_ranks=...``; dicts and lists are
    stored as JSON strings, ``None`` values are skipped). Provenance is
    informational only: nothing that changes the data may depend on it.
    """
    try:
        from .. import __version__ as rom_version
    except ImportError:  # pragma: no cover - partial package
        rom_version = "unknown"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    attrs = {
        "schema": schema,
        "schema_version": int(schema_version),
        "rom_version": str(rom_version),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "user": user,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "hdf5_version": h5py.version.hdf5_version,
        "command": " ".join(sys.argv)[:1000],
    }
    for key, value in extra.items():
        if value is not None:
            attrs[key] = _attr_value(value)
    for key, value in attrs.items():
        h5obj.attrs[key] = value


def check_schema(f: h5py.File, path: str | os.PathLike, schema: str, version: int,
                 what: str) -> None:
    """Raise :class:`rom.parallel.UserError` unless ``f`` was stamped by
    :func:`stamp_provenance` with ``schema`` at a version this code reads (<= ``version``);
    ``what`` names the expected content ("a reduced model")."""
    from ..parallel import UserError
    found = f.attrs.get("schema")
    if found != schema:
        raise UserError(f"{path}: not {what} (schema {found!r}, expected {schema!r})")
    if int(f.attrs["schema_version"]) > version:
        raise UserError(f"{path}: schema version {f.attrs['schema_version']} is newer than "
                        f"this code ({version})")
