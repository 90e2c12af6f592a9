"""Snapshot store: round trips, any writer/reader rank count, atomicity, clear errors."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI

import rom
from rom.io.atomic import temp_path_for
from rom.io.snapshots import SnapshotError, SnapshotStore
from rom.parallel import even_split


def reference(n_rows: int, m: int, seed: int = 7) -> np.ndarray:
    """The same (n_rows, m) matrix on every rank."""
    return np.random.default_rng(seed).standard_normal((n_rows, m))


def gather_rows(local: np.ndarray, rows: np.ndarray, n_rows: int, comm) -> np.ndarray:
    """Assemble the global matrix from every rank's (rows, local block)."""
    full = np.full((n_rows, local.shape[1]), np.nan)
    for r, block in comm.allgather((rows, local)):
        full[r] = block
    return full


def uneven_offsets(n: int, size: int) -> np.ndarray:
    """Contiguous offsets where rank 1 (if any) has no rows and the others share n."""
    if size == 1:
        return np.array([0, n])
    counts = np.diff(even_split(n, size - 1))
    return np.concatenate([[0], np.cumsum(np.insert(counts, 1, 0))])


def write_serial(path, U, Q, *, overwrite=False):
    """Write a two-field, two-loading store from one process; returns nothing."""
    with SnapshotStore.create(path, overwrite=overwrite, provenance={"case_hash": "c0ffee"}) as st:
        st.add_field("u", kind="nodal", n_entities=U.shape[0] // 3, n_components=3, units="m")
        st.add_field("sig", kind="quadrature", n_entities=Q.shape[0], units="Pa")
        a = st.add_loading("cold", {"T_max": 300.0, "profile": np.linspace(0, 1, 4),
                                    "law": {"name": "norton", "n": [3, 5]}})
        b = st.add_loading("hot", {"T_max": 1300.0})
        st.set_mesh(path="mesh.vtu")
        st.append({"u": U[:, 0], "sig": Q[:, 0]}, loading=a, time=0.0, step=0)
        st.append({"u": U[:, 1:3], "sig": Q[:, 1:3]}, loading="cold", time=[0.5, 1.0],
                  step=[1, 2])
        perm = np.random.default_rng(3).permutation(U.shape[0])
        st.append({"u": U[perm, 3:], "sig": Q[:, 3:]}, loading=b, time=[0.5, 1.0], step=[1, 2],
                  rows={"u": perm})


def test_round_trip_serial(tmp_path):
    U, Q = reference(30, 5), reference(8, 5, seed=8)
    path = tmp_path / "s.h5"
    write_serial(path, U, Q)
    st = SnapshotStore.open(path)
    assert set(st.fields) == {"u", "sig"}
    u = st.fields["u"]
    assert (u.kind, u.n_entities, u.n_components, u.units, u.n_rows) == ("nodal", 10, 3, "m", 30)
    assert u["n_entities"] == 10 and st.fields["sig"].units == "Pa"
    assert [ld.name for ld in st.loadings] == ["cold", "hot"]
    p = st.loadings[0].parameters
    assert p["T_max"] == 300.0 and np.array_equal(p["profile"], np.linspace(0, 1, 4))
    assert p["law"] == {"name": "norton", "n": [3, 5]}
    table = st.snapshot_table()
    assert table["loading"].tolist() == [0, 0, 0, 1, 1]
    assert table["time"].tolist() == [0.0, 0.5, 1.0, 0.5, 1.0]
    assert table["step"].tolist() == [0, 1, 2, 1, 2]
    assert np.array_equal(st.read("u"), U) and np.array_equal(st.read_global("sig"), Q)
    assert st.mesh_path == "mesh.vtu"
    attrs = st.attrs
    assert attrs["schema"] == "rom.snapshots" and attrs["schema_version"] == 1
    assert attrs["case_hash"] == "c0ffee" and attrs["writer_ranks"] == 1
    st.close()
    with h5py.File(path, "r") as f:   # documented layout
        assert f["fields/u/values"].shape == (30, 5)
        assert f["fields/u/values"].attrs["row_order"] == "entity-major"
        assert f["snapshots/time"].shape == (5,)
        assert f["loadings/0"].attrs["name"] == "cold"
        assert f["loadings/1/parameters"].attrs["T_max"] == 1300.0


def test_read_selections(tmp_path):
    U, Q = reference(30, 5), reference(8, 5, seed=8)
    path = tmp_path / "s.h5"
    write_serial(path, U, Q)
    st = SnapshotStore.open(path)
    assert np.array_equal(st.read("u", columns=2), U[:, [2]])
    assert np.array_equal(st.read("u", columns=slice(None, None, 2)), U[:, ::2])
    assert np.array_equal(st.read("u", columns=slice(None, None, -1)), U[:, ::-1])
    assert np.array_equal(st.read("u", columns=[4, 0, 0, -1]), U[:, [4, 0, 0, -1]])
    mask = np.array([True, False, True, False, True])
    assert np.array_equal(st.read("u", columns=mask), U[:, mask])
    assert np.array_equal(st.read("u", loading="hot"), U[:, 3:])
    assert np.array_equal(st.read("u", loading=["hot", 0]), U)
    assert np.array_equal(st.read("u", rows=(4, 17)), U[4:17])
    rows = np.array([29, 3, 3, 0, 17])
    assert np.array_equal(st.read("u", rows=rows, columns=[1, 3]), U[rows][:, [1, 3]])
    assert st.read("u", rows=np.array([], dtype=int)).shape == (0, 5)
    assert st.read("u", columns=[]).shape == (30, 0)
    with pytest.raises(ValueError, match="columns or loading"):
        st.read("u", columns=[0], loading="hot")
    with pytest.raises(ValueError, match="out of range"):
        st.read("u", columns=[5])
    with pytest.raises(ValueError, match=r"outside \[0, 30\)"):
        st.read("u", rows=np.array([30]))
    with pytest.raises(ValueError, match="unknown loading 'warm'"):
        st.read("u", loading="warm")


def test_small_chunks_and_bounded_memory(tmp_path, monkeypatch):
    """Many HDF5 chunks, column batches and read pieces: same values."""
    from rom.io import snapshots
    monkeypatch.setattr(snapshots, "_CHUNK_ROWS", 4)
    monkeypatch.setattr(snapshots, "_GATHER_BYTES", 8 * 30 * 2)   # 2 columns of 30 rows
    U = reference(30, 7)
    with SnapshotStore.create(tmp_path / "s.h5") as st:
        st.add_field("u", kind="nodal", n_entities=30)
        st.append({"u": U}, loading=st.add_loading("a"), time=np.arange(7.0), step=np.arange(7))
    st = SnapshotStore.open(tmp_path / "s.h5")
    assert st.read("u").shape == (30, 7)
    rows = np.array([29, 0, 1, 2, 13, 14, 27, 5])
    assert np.array_equal(st.read("u", rows=rows), U[rows])
    assert np.array_equal(st.read("u", rows=rows, columns=[6, 0]), U[rows][:, [6, 0]])


def test_store_mesh_and_update(tmp_path):
    import meshio
    mesh = meshio.Mesh(np.eye(3), [("triangle", np.array([[0, 1, 2]]))])
    path = tmp_path / "s.h5"
    with SnapshotStore.create(path) as st:
        st.add_field("T", kind="nodal", n_entities=3, units="K")
        st.set_mesh(mesh=mesh)
        st.append({"T": np.ones(3)}, loading=st.add_loading("a"), time=0.0, step=0)
    with SnapshotStore.update(path) as st:
        assert st.n_snapshots == 1
        st.append({"T": 2 * np.ones(3)}, loading=st.add_loading("b", {"x": 1}), time=1, step=1)
    st = SnapshotStore.open(path)
    assert np.array_equal(st.read("T"), [[1, 2]] * 3)
    assert [ld.name for ld in st.loadings] == ["a", "b"]
    back = st.read_mesh()
    assert np.array_equal(back.points, mesh.points)
    assert back.cells[0].type == "triangle" and np.array_equal(back.cells[0].data, [[0, 1, 2]])


def test_single_precision_fields(tmp_path):
    """dtype="float32": the file's dataset is float32 (self-describing), reads return
    float64 equal to the float32-rounded values, on every read path; update keeps it."""
    U, Q = reference(30, 5), reference(8, 5, seed=8) * 1e8
    path = tmp_path / "s.h5"
    with SnapshotStore.create(path) as st:
        st.add_field("u", kind="nodal", n_entities=10, n_components=3, units="m")
        info = st.add_field("sig", kind="quadrature", n_entities=8, units="Pa", dtype="float32")
        assert info.dtype == "float32" and info["dtype"] == "float32"
        a = st.add_loading("a")
        st.append({"u": U[:, :3], "sig": Q[:, :3]}, loading=a, time=[1, 2, 3], step=[1, 2, 3])
        perm = np.random.default_rng(3).permutation(8)
        st.append({"u": U[:, 3], "sig": Q[perm, 3]}, loading=a, time=4, step=4,
                  rows={"sig": perm})
    with h5py.File(path, "r") as f:
        assert f["fields/sig/values"].dtype == np.float32
        assert f["fields/u/values"].dtype == np.float64
    with SnapshotStore.update(path) as st:
        assert st.fields["sig"].dtype == "float32" and st.fields["u"].dtype == "float64"
        st.append({"u": U[:, 4], "sig": Q[:, 4]}, loading=st.add_loading("b"), time=5, step=5)
    rounded = Q.astype(np.float32).astype(np.float64)
    assert not np.array_equal(rounded, Q)
    st = SnapshotStore.open(path)
    assert (st.fields["sig"].dtype, st.fields["u"].dtype) == ("float32", "float64")
    for got, want in ((st.read("sig"), rounded), (st.read("u"), U),
                      (st.read("sig", columns=[4, 0]), rounded[:, [4, 0]]),
                      (st.read("sig", rows=(2, 7)), rounded[2:7]),
                      (st.read("sig", rows=np.array([7, 0, 0])), rounded[[7, 0, 0]]),
                      (st.read("sig", columns=[]), rounded[:, :0])):
        assert got.dtype == np.float64 and np.array_equal(got, want)
    st.close()


def test_single_precision_errors(tmp_path):
    with SnapshotStore.create(tmp_path / "s.h5") as st:
        with pytest.raises(SnapshotError, match=r"dtype must be one of \('float64', 'float32'\)"):
            st.add_field("h", kind="nodal", n_entities=3, dtype="float16")
        st.add_field("sig", kind="quadrature", n_entities=3, dtype=np.float32)
        lid = st.add_loading("a")
        with pytest.raises(SnapshotError, match=r"field 'sig', snapshot \(loading 'a', step 0.*"
                                                 r"do not fit the field's float32 storage"):
            st.append({"sig": np.array([1.0, 1e39, 0.0])}, loading=lid, time=0.0, step=0)
        st.append({"sig": np.array([1.0, 3e38, 0.0])}, loading=lid, time=0.0, step=0)
        assert st.n_snapshots == 1


def test_commit_and_keep_after_failure(tmp_path):
    path = tmp_path / "s.h5"
    # an exception that escapes the block: nothing written
    with pytest.raises(RuntimeError, match="diverged"), SnapshotStore.create(path) as st:
        st.add_field("u", kind="nodal", n_entities=4)
        st.append({"u": np.zeros(4)}, loading=st.add_loading("a"), time=0, step=0)
        raise RuntimeError("diverged")
    assert not path.exists()
    # commit() publishes a checkpoint that survives a later failure
    with pytest.raises(RuntimeError, match="diverged"), SnapshotStore.create(path) as st:
        st.add_field("u", kind="nodal", n_entities=4)
        lid = st.add_loading("a")
        st.append({"u": np.zeros(4)}, loading=lid, time=0, step=0)
        st.commit()
        st.append({"u": np.ones(4)}, loading=lid, time=1, step=1)
        raise RuntimeError("diverged")
    assert SnapshotStore.open(path).n_snapshots == 1
    # a failure caught inside the block keeps what was written
    with SnapshotStore.create(path, overwrite=True) as st:
        st.add_field("u", kind="nodal", n_entities=4)
        lid = st.add_loading("a")
        try:
            for k in range(5):
                if k == 3:
                    raise RuntimeError("Newton did not converge")
                st.append({"u": np.full(4, k)}, loading=lid, time=k, step=k)
        except RuntimeError:
            pass
    assert np.array_equal(SnapshotStore.open(path).read("u"), [[0, 1, 2]] * 4)


def test_existing_file_needs_overwrite(tmp_path):
    path = tmp_path / "s.h5"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match=str(path)):
        SnapshotStore.create(path)
    with pytest.raises(RuntimeError), SnapshotStore.create(path, overwrite=True) as st:
        st.add_field("u", kind="nodal", n_entities=4)
        raise RuntimeError("fail")
    assert path.read_bytes() == b"old"


@pytest.mark.parametrize("bad, what", [(np.nan, "1 NaN and 0 Inf"), (np.inf, "0 NaN and 1 Inf")])
def test_nan_and_inf_are_rejected(tmp_path, bad, what):
    with SnapshotStore.create(tmp_path / "s.h5") as st:
        st.add_field("u", kind="nodal", n_entities=4, n_components=2)
        lid = st.add_loading("hot")
        x = np.zeros((8, 3))
        x[5, 1] = bad
        with pytest.raises(ValueError) as info:
            st.append({"u": x}, loading=lid, time=[0.1, 0.2, 0.3], step=[1, 2, 3])
        msg = str(info.value)
        for part in ("field 'u'", "loading 'hot'", "step 2", "time 0.2", what, "rank 0"):
            assert part in msg, (part, msg)
        assert st.n_snapshots == 0


def test_shape_and_field_errors(tmp_path):
    with SnapshotStore.create(tmp_path / "s.h5") as st:
        st.add_field("u", kind="nodal", n_entities=4, n_components=2)
        st.add_field("T", kind="cell", n_entities=3)
        lid = st.add_loading("a")
        ok = {"u": np.zeros(8), "T": np.zeros(3)}
        with pytest.raises(ValueError, match=r"field 'u'.*step 7.*7 rows, expected 8"):
            st.append({**ok, "u": np.zeros(7)}, loading=lid, time=0, step=7)
        with pytest.raises(ValueError, match=r"missing field\(s\) \['T'\].*unknown field\(s\) "
                                             r"\['v'\].*declared fields: \['T', 'u'\]"):
            st.append({"u": np.zeros(8), "v": np.zeros(3)}, loading=lid, time=0, step=0)
        with pytest.raises(ValueError, match="field 'u'.*1 columns but other fields have 2"):
            st.append({**ok, "T": np.zeros((3, 2))}, loading=lid, time=0, step=0)
        with pytest.raises(ValueError, match="field 'u'.*got dtype object"):
            st.append({**ok, "u": np.array(["x"] * 8, dtype=object)}, loading=lid, time=0, step=0)
        with pytest.raises(ValueError, match="2 time values for 1 columns"):
            st.append(ok, loading=lid, time=[0, 1], step=0)
        with pytest.raises(ValueError, match="not a permutation"):
            st.append(ok, loading=lid, time=0, step=0, rows={"u": np.zeros(8, dtype=int)})
        with pytest.raises(ValueError, match="unknown loading 'b'"):
            st.append(ok, loading="b", time=0, step=0)
        with pytest.raises(ValueError, match="kind must be one of"):
            st.add_field("w", kind="edge", n_entities=3)
        with pytest.raises(ValueError, match="already exists"):
            st.add_loading("a")
        st.append(ok, loading=lid, time=0, step=0)
        with pytest.raises(ValueError, match="before the first append"):
            st.add_field("w", kind="nodal", n_entities=3)
    st = SnapshotStore.open(tmp_path / "s.h5")
    assert st.n_snapshots == 1
    with pytest.raises(ValueError, match=r"unknown field 'v'; available fields: \['T', 'u'\]"):
        st.read("v")


def test_file_errors(tmp_path):
    missing = tmp_path / "nothere.h5"
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        SnapshotStore.open(missing)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"text.h5 is not a rom snapshot store \(not an HDF5"):
        SnapshotStore.open(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match=r"other.h5 is not a rom snapshot store \(no 'schema'"):
        SnapshotStore.open(other)
    with h5py.File(other, "a") as f:
        f.attrs["schema"] = "rom.reduced_basis"
        f.attrs["schema_version"] = 1
    with pytest.raises(ValueError, match="schema 'rom.reduced_basis'"):
        SnapshotStore.open(other)
    with h5py.File(other, "a") as f:
        f.attrs["schema"] = "rom.snapshots"
        f.attrs["schema_version"] = 99
    with pytest.raises(ValueError, match="other.h5: snapshot store schema version 99"):
        SnapshotStore.open(other)


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """SIGKILL in the middle of writing: the path is absent, or still the older file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPIR_", "HYDRA_", "OMPI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(rom.__file__).parents[1]),
                                         env.get("PYTHONPATH", "")])

    def kill_writer(path: Path) -> None:
        code = (
            "import time, numpy as np\n"
            "from rom.io.snapshots import SnapshotStore\n"
            f"with SnapshotStore.create({str(path)!r}, overwrite=True) as st:\n"
            "    st.add_field('u', kind='nodal', n_entities=2000)\n"
            "    lid = st.add_loading('slow')\n"
            "    for k in range(100000):\n"
            "        st.append({'u': np.full(2000, float(k))}, loading=lid, time=k, step=k)\n"
            "        if k == 5:\n"
            "            print('writing', flush=True)\n"
            "        time.sleep(0.005)\n")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                                text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready and proc.stdout.readline().strip() == "writing", "writer did not start"
            time.sleep(0.2)
            assert proc.poll() is None
            assert temp_path_for(path, proc.pid).exists()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        temp_path_for(path, proc.pid).unlink()      # a killed writer leaves its hidden temporary

    new = tmp_path / "new.h5"
    kill_writer(new)
    assert not new.exists()
    old = tmp_path / "old.h5"
    U, Q = reference(30, 5), reference(8, 5, seed=8)
    write_serial(old, U, Q)
    kill_writer(old)
    st = SnapshotStore.open(old)
    assert np.array_equal(st.read("u"), U) and st.loadings[0].name == "cold"


# ------------------------------------------------------------------ MPI
@pytest.mark.mpi
def test_mpi_contiguous_uneven_blocks(comm, shared_tmp_path):
    n_ent, nc, m = 11, 2, 4
    U = reference(n_ent * nc, m)
    T = reference(5, m, seed=9)
    off_u = uneven_offsets(n_ent, comm.size) * nc
    off_t = even_split(5, comm.size)
    r = comm.rank
    a, b = off_u[r:r + 2]
    c, d = off_t[r:r + 2]
    if comm.size > 1:
        assert (r == 1) == (a == b)
    path = shared_tmp_path / "contig.h5"
    with SnapshotStore.create(path, comm=comm, overwrite=True) as st:
        st.add_field("u", kind="nodal", n_entities=n_ent, n_components=nc, units="m")
        st.add_field("T", kind="cell", n_entities=5, units="K")
        lid = st.add_loading("L", {"mu": np.arange(3.0)})
        st.append({"u": U[a:b, 0], "T": T[c:d, 0]}, loading=lid, time=0.0, step=0)
        st.append({"u": U[a:b, 1:], "T": T[c:d, 1:]}, loading=lid, time=[1, 2, 3],
                  step=[1, 2, 3])
    st = SnapshotStore.open(path, comm=comm)
    assert st.attrs["writer_ranks"] == comm.size
    for name, ref in (("u", U), ("T", T)):
        off = st.row_partition(name)
        assert np.array_equal(off, even_split(ref.shape[0], comm.size))
        local = st.read(name)
        assert local.shape == (off[r + 1] - off[r], m)
        full = gather_rows(local, np.arange(off[r], off[r + 1]), ref.shape[0], comm)
        assert np.array_equal(full, ref)
    rows = np.random.default_rng(r).choice(22, size=6)
    assert np.array_equal(st.read("u", rows=rows, columns=[3, 1]), U[rows][:, [3, 1]])


@pytest.mark.mpi
def test_mpi_explicit_permuted_rows(comm, shared_tmp_path):
    n_rows, m = 23, 3
    U, S = reference(n_rows, m), reference(7, m, seed=5)
    perm_u = np.random.default_rng(11).permutation(n_rows)
    perm_s = np.random.default_rng(12).permutation(7)
    ou, os_ = even_split(n_rows, comm.size), uneven_offsets(7, comm.size)
    ru = perm_u[ou[comm.rank]:ou[comm.rank + 1]]
    rs = perm_s[os_[comm.rank]:os_[comm.rank + 1]]
    path = shared_tmp_path / "perm.h5"
    with SnapshotStore.create(path, comm=comm, overwrite=True) as st:
        st.add_field("u", kind="nodal", n_entities=n_rows)
        st.add_field("s", kind="quadrature", n_entities=7)
        lid = st.add_loading("L")
        for j in range(m):
            if j == m - 1:          # a new partition for the last snapshot (cached rows reset)
                ru = np.random.default_rng(13).permutation(n_rows)[ou[comm.rank]:ou[comm.rank + 1]]
            st.append({"u": U[ru, j], "s": S[rs, j]}, loading=lid, time=j, step=j,
                      rows={"u": ru, "s": rs})
    st = SnapshotStore.open(path, comm=comm)
    off = st.row_partition("u")
    full = gather_rows(st.read("u"), np.arange(off[comm.rank], off[comm.rank + 1]), n_rows, comm)
    assert np.array_equal(full, U)
    assert np.array_equal(gather_rows(st.read("s", rows=rs), rs, 7, comm), S)


@pytest.mark.mpi
def test_mpi_read_independent_of_writer_rank_count(comm, shared_tmp_path):
    U, Q = reference(30, 5), reference(8, 5, seed=8)
    path = shared_tmp_path / "serial.h5"
    error = None
    if comm.rank == 0:          # written by ONE rank, read by all
        try:
            write_serial(path, U, Q, overwrite=True)
        except Exception as exc:  # noqa: BLE001 - do not leave the other ranks waiting
            error = exc
    assert comm.bcast(error is None, root=0), error
    st = SnapshotStore.open(path, comm=comm)
    off = even_split(30, comm.size)
    full = gather_rows(st.read("u"), np.arange(off[comm.rank], off[comm.rank + 1]), 30, comm)
    assert np.array_equal(full, U)
    st.close()
    # written by all ranks, read by each rank alone
    path2 = shared_tmp_path / "all.h5"
    with SnapshotStore.create(path2, comm=comm, overwrite=True) as st:
        st.add_field("u", kind="nodal", n_entities=10, n_components=3)
        lid = st.add_loading("L")
        st.append({"u": U[off[comm.rank]:off[comm.rank + 1]]}, loading=lid, time=np.arange(5.0),
                  step=np.arange(5))
    comm.Barrier()
    alone = SnapshotStore.open(path2, comm=MPI.COMM_SELF)
    assert np.array_equal(alone.read("u"), U) and np.array_equal(alone.read_global("u"), U)


@pytest.mark.mpi
def test_mpi_single_precision_fields(comm, shared_tmp_path):
    """float32 fields written from uneven blocks and permuted rows read back at any rank
    count as the float32 rounding of the values, in float64."""
    n_ent, m = 13, 3
    Q = reference(6 * n_ent, m) * 1e8
    off = uneven_offsets(n_ent, comm.size) * 6
    a, b = off[comm.rank:comm.rank + 2]
    rows = np.random.default_rng(5).permutation(6 * n_ent)[a:b]
    path = shared_tmp_path / "single.h5"
    with SnapshotStore.create(path, comm=comm, overwrite=True) as st:
        st.add_field("sig", kind="quadrature", n_entities=n_ent, n_components=6, units="Pa",
                     dtype="float32")
        st.add_field("s2", kind="quadrature", n_entities=n_ent, n_components=6, dtype="float32")
        st.append({"sig": Q[rows], "s2": Q[a:b]}, loading=st.add_loading("L"), time=[1, 2, 3],
                  step=[1, 2, 3], rows={"sig": rows})
    rounded = Q.astype(np.float32).astype(np.float64)
    st = SnapshotStore.open(path, comm=comm)
    r0, r1 = st.row_partition("sig")[comm.rank:comm.rank + 2]
    for name in ("sig", "s2"):
        local = st.read(name)
        assert local.dtype == np.float64 and np.array_equal(local, rounded[r0:r1])
        full = gather_rows(local, np.arange(r0, r1), 6 * n_ent, comm)
        assert np.array_equal(full, rounded)
    st.close()


@pytest.mark.mpi
def test_mpi_nan_on_one_rank_raises_everywhere(comm, shared_tmp_path):
    last = comm.size - 1
    path = shared_tmp_path / "nan.h5"
    off = even_split(6, comm.size)
    block = np.arange(off[comm.rank], off[comm.rank + 1], dtype=float)
    with SnapshotStore.create(path, comm=comm, overwrite=True) as st:
        st.add_field("p", kind="quadrature", n_entities=6, units="1")
        lid = st.add_loading("hot")
        st.append({"p": block}, loading=lid, time=0.5, step=1)
        bad = block.copy()
        if comm.rank == last:
            bad[-1] = np.nan
        with pytest.raises(SnapshotError) as info:   # every rank raises, the solver goes on
            st.append({"p": bad}, loading=lid, time=1.0, step=2)
        msg = str(info.value)
        assert f"rank {last}" in msg and "field 'p'" in msg and "step 2" in msg
    st = SnapshotStore.open(path, comm=comm)
    assert st.n_snapshots == 1
    assert np.array_equal(st.read_global("p")[:, 0], np.arange(6.0))


@pytest.mark.mpi
def test_mpi_inconsistent_arguments(comm, shared_tmp_path):
    if comm.size == 1:
        pytest.skip("needs several ranks")
    with SnapshotStore.create(shared_tmp_path / "inc.h5", comm=comm, overwrite=True) as st:
        with pytest.raises(ValueError, match="arguments differ between ranks"):
            st.add_field("u", kind="nodal", n_entities=4 + comm.rank)
        st.add_field("u", kind="nodal", n_entities=4)
        lid = st.add_loading("a")
        off = even_split(4, comm.size)
        x = np.zeros(off[comm.rank + 1] - off[comm.rank])
        with pytest.raises(ValueError, match="differ between ranks"):
            st.append({"u": x}, loading=lid, time=float(comm.rank), step=0)
        with pytest.raises(ValueError, match=r"rows= given on ranks \[0\] only"):
            st.append({"u": x}, loading=lid, time=0, step=0,
                      rows=np.arange(off[0], off[1]) if comm.rank == 0 else None)
