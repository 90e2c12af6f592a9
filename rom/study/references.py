"""Full-order reference solutions of the study queries, kept on disk and reused.

The full-order solve of a query is by far the most expensive part of a study (minutes per
query on a large mesh) and does not depend on the reduced model. Each answered query is
written to ``<directory>/<case>.<query>.h5`` (atomically; the ranks' rows gathered on rank 0
in bounded blocks, in global order) with a *key*: the JSON
of everything its solution depends on (the query's temperature and scale as
``python -m rom.fom`` stores them, the time grid, the material, the ``fom:`` and
``loading:`` sections without the training loadings, and a digest of the mesh). A later
study finds the file, compares the key, and reuses the fields and the per-step timings;
any difference recomputes the query. Rebuilding the reduced model (other tolerances, more
training) then costs only the reduced solves, and a study stopped at a time limit resumes
where it stopped. In memory a reference holds this rank's rows of the reduced model's
partition (:class:`rom.online.model.Partition`): a block of nodes and one of points.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from ..io.atomic import atomic_h5, check_schema, stamp_provenance
from ..parallel import UserError

__all__ = ["Reference", "ReferenceStore", "reference_key"]

SCHEMA = "rom.study.reference"
SCHEMA_VERSION = 1


@dataclasses.dataclass
class Reference:
    """The full-order answer of one query: this rank's rows of the fields per time step 1..
    (all of them on one process)."""

    u: list                 # (3 n_local_nodes,) per step [m]
    p: list                 # (n_local_qp,) per step [-]
    von_mises: list         # (n_local_qp,) per step [Pa]
    seconds: np.ndarray     # wall time per step (slowest rank) when it was computed
    cuts: list              # end times of halved steps [s]
    ranks: int = 1          # ranks it was computed on
    created: str = ""       # UTC time it was computed (reused references)
    reused: bool = False
    #: histories at one integration point, the same on every rank (the cycles of a periodic
    #: loading): {"point": global point, "stress": (m, 6) [Pa], "strain": (m, 6)}, steps 1..
    monitor: dict | None = None


def mesh_digest(mesh) -> str:
    """SHA-256 of the node coordinates and the connectivity of every volume block."""
    h = hashlib.sha256(np.ascontiguousarray(mesh.points, dtype=np.float64).tobytes())
    for b in mesh.blocks:  # loop over element blocks
        h.update(b.etype.name.encode())
        h.update(np.ascontiguousarray(b.cells, dtype=np.int64).tobytes())
    return h.hexdigest()


def reference_key(fc, query, times: np.ndarray, mesh_sha: str) -> str:
    """The JSON text a stored reference must match to be reused for ``query``."""
    from ..fom.setup import _plain, loading_parameters
    fom = _plain(fc.fom)
    fom.pop("loadings", None)        # the training loadings do not change a query's answer
    fom.pop("checkpoint", None)      # nor does how often rom.fom publishes its store
    key = {"query": loading_parameters(query, fc), "times": np.asarray(times, float),
           "material": _plain(fc.material), "fom": fom, "loading": _plain(fc.loading),
           "mesh": mesh_sha}
    return json.dumps(key, sort_keys=True,
                      default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


class ReferenceStore:
    """One HDF5 file per query in ``directory``; collective methods on ``comm``, whose
    ranks hold the rows of ``partition`` (:class:`rom.online.model.Partition`)."""

    def __init__(self, directory: str | Path, case_name: str, comm, partition):
        self.directory, self.case_name, self.comm = Path(directory), case_name, comm
        self.partition = partition

    def _columns(self, field: str) -> slice:
        n0, n1 = self.partition.node_range
        return slice(3 * n0, 3 * n1) if field == "u" else slice(*self.partition.point_range)

    def path(self, name: str) -> Path:
        return self.directory / f"{self.case_name}.{name}.h5"

    def load(self, name: str, key: str) -> tuple[Reference | None, str]:
        """The stored reference of query ``name`` if its key is ``key`` (else ``None``), and
        why it was not reused ('' if it was, or if there is none)."""
        path = self.path(name)
        why = ""
        if self.comm.rank == 0 and path.is_file():
            try:
                with h5py.File(path, "r") as f:
                    check_schema(f, path, SCHEMA, SCHEMA_VERSION, "a study reference")
                    if f.attrs["key"] != key:
                        why = f"{path}: stored for other settings; recomputed"
            except (OSError, KeyError, UserError) as exc:
                why = f"{path}: unreadable ({exc}); recomputed"
        why, found = self.comm.bcast((why, path.is_file()) if self.comm.rank == 0 else None)
        if why or not found:
            return None, why
        with h5py.File(path, "r") as f:     # every rank its rows
            rows = {k: list(f[k][:, self._columns(k)]) for k in ("u", "p", "von_mises")}
            monitor = None
            if "monitor_stress" in f:
                monitor = {"point": int(f.attrs["monitor_point"]),
                           "stress": f["monitor_stress"][...], "strain": f["monitor_strain"][...]}
            ref = Reference(rows["u"], rows["p"], rows["von_mises"],
                            f["seconds"][...], [float(t) for t in f["cuts"][...]],
                            int(f.attrs["ranks"]), str(f.attrs["created_utc"]), reused=True,
                            monitor=monitor)
        return ref, ""

    def save(self, name: str, key: str, ref: Reference) -> Path:
        """Write (replace) the reference of query ``name``; collective."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..linalg.rowblocks import gather_blocks
        fields = {"u": (ref.u, "m"), "p": (ref.p, "1"), "von_mises": (ref.von_mises, "Pa")}
        with atomic_h5(path, comm=self.comm) as f:
            if f is not None:
                stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                                 query=name, ranks=ref.ranks)
                f.attrs["key"] = key
                f["seconds"] = np.asarray(ref.seconds, float)
                f["seconds"].attrs["units"] = "s"
                f["cuts"] = np.asarray(ref.cuts, float)
                if ref.monitor is not None:
                    f.attrs["monitor_point"] = int(ref.monitor["point"])
                    f["monitor_stress"] = ref.monitor["stress"]
                    f["monitor_stress"].attrs["units"] = "Pa"
                    f["monitor_strain"] = ref.monitor["strain"]
            opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            for k, (steps, unit) in fields.items():  # loop over fields (collective)
                local = np.column_stack([np.ravel(x) for x in steps])     # (rows, steps)
                n = self.comm.allreduce(local.shape[0])
                if f is not None:
                    d = f.create_dataset(k, shape=(len(steps), n), dtype=np.float64, **opts)
                    d.attrs["units"] = unit
                for a, b, block in gather_blocks(local, self.comm):  # bounded row blocks
                    if f is not None:
                        d[:, a:b] = block.T
        return path
