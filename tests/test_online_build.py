"""Distributed offline build of the reduced model (rom.online.build): row blocks of the
snapshot store per rank, rank-count independent file (run under mpiexec -n 2 and -n 3)."""
from __future__ import annotations

import h5py
import meshio
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")
from test_online_common import plate_mesh, store_from_rank0

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.fom.discretization import ElementSet
from rom.fom.mesh import FEMesh
from rom.io.snapshots import SnapshotStore
from rom.linalg import rowblocks
from rom.linalg.rowblocks import fetch_rows, rows_at, send_to_owners
from rom.meshes import solid_block
from rom.online import OnlineConfig, build_reduced_model, load
from rom.online import build as B
from rom.parallel import UserError

CFG = OnlineConfig(indicator_tol=5e-4)


def _mixed_mesh() -> FEMesh:
    """Two disjoint blocks: hex8 (8 points per element) and tet10 (4 or 5 points)."""
    a, b = solid_block((3, 2, 1)), solid_block((2, 1, 1), cell="tetra10")
    pts = np.vstack([a.points, b.points + [2.0, 0.0, 0.0]])
    cells = [("hexahedron", a.cells_dict["hexahedron"]),
             ("tetra10", b.cells_dict["tetra10"] + len(a.points))]
    return FEMesh.from_meshio(meshio.Mesh(pts, cells))


@pytest.mark.parametrize("which", ["ci", "mixed"])
def test_partition_holds_whole_elements_and_is_even(which):
    if which == "ci":
        from test_online_common import CASE_DIR
        mesh = FEMesh.from_meshio(meshio.read(CASE_DIR / "mesh.inp"))
    else:
        mesh = _mixed_mesh()
    n_qp = ElementSet(mesh).n_qp
    nq_max = max(b.etype.n_qp for b in mesh.blocks)
    for size in range(1, 8):
        parts = [B.Partition.of(mesh, size, r) for r in range(size)]
        off = parts[0].points
        assert off[0] == 0 and off[-1] == n_qp and np.all(np.diff(off) >= 0)
        assert np.all(np.abs(np.diff(off) - n_qp / size) <= nq_max + 1)
        elements = np.concatenate([p.elements(mesh) for p in parts])
        assert np.array_equal(np.sort(elements), np.arange(mesh.n_elements))
        for r, p in enumerate(parts):   # the local element set covers exactly the block
            assert np.array_equal(ElementSet(mesh, p.elements(mesh)).qp,
                                  np.arange(off[r], off[r + 1]))
        assert parts[0].nodes[-1] == mesh.n_nodes


@pytest.mark.mpi
def test_fetch_rows(comm):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((103, 3, 2))          # same on every rank
    off = np.array([0, *np.cumsum(np.diff(np.linspace(0, 103, comm.size + 1).astype(int)))])
    local = X[off[comm.rank]:off[comm.rank + 1]]
    wanted = np.sort(rng.choice(103, 10 + 7 * comm.rank, replace=False))
    np.testing.assert_array_equal(fetch_rows(local, off, wanted, comm), X[wanted])
    np.testing.assert_array_equal(fetch_rows(local, off, wanted[::-1], comm), X[wanted[::-1]])
    np.testing.assert_array_equal(fetch_rows(local, off, np.zeros(0, np.int64), comm),
                                  X[:0])
    # and back: rows held anywhere (here: by rank r, the rows r, r + size, ...) to owners
    rows = np.arange(comm.rank, 103, comm.size)
    np.testing.assert_array_equal(send_to_owners(X[rows], rows, off, comm), local)
    common = np.array([0, 5, 102, 51, 5])          # rows_at: the same rows on every rank
    np.testing.assert_array_equal(rows_at(local, off, common, comm), X[common])


def test_point_columns_equal_the_joined_matrix():
    """RowBlocks.as_points: the column blocks seen as (n_cols, n_points, n_comp), read by
    point selection, equal the joined matrix; the ECM integrand is the same through it."""
    from rom.hyper.integrand import integrand_matrix
    rng = np.random.default_rng(5)
    blocks = [rng.standard_normal((7 * 6, 4)), rng.standard_normal((7 * 6, 1)),
              rng.standard_normal((7 * 6, 2))]
    rb = rowblocks.RowBlocks(blocks, np.array([0, 42]))
    view = rb.as_points(6)
    dense = np.hstack(blocks).T.reshape(7, 7, 6)
    assert view.shape == dense.shape and view.ndim == 3
    for sel in (slice(0, 7), slice(2, 5), np.array([6, 0, 3, 3])):
        np.testing.assert_array_equal(view[:, sel, :], dense[:, sel, :])
    strains = rng.standard_normal((3, 7, 6))
    np.testing.assert_array_equal(integrand_matrix(strains, view, block_bytes=64),
                                  integrand_matrix(strains, dense))
    with pytest.raises(IndexError):
        view[0]


@pytest.fixture(scope="module")
def store_case(tmp_path_factory):
    """The CI case and its snapshot store, written once by rank 0 (same path on every rank)."""
    return store_from_rank0(tmp_path_factory.mktemp("online_build"), MPI.COMM_WORLD)


def _datasets(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, (v[()], dict(v.attrs)))
                     if isinstance(v, h5py.Dataset) else None)
        return out


@pytest.mark.mpi
def test_each_rank_reads_its_block_and_file_matches_serial(comm, store_case, monkeypatch):
    case_file = store_case
    reads = []
    original = SnapshotStore.read

    def recording(self, field, **kw):
        out = original(self, field, **kw)
        reads.append((field, self.field(field).n_rows, self.field(field).n_components,
                      out.shape))
        return out

    monkeypatch.setattr(SnapshotStore, "read", recording)
    monkeypatch.setattr(rowblocks, "WRITE_BYTES", 4096)   # many blocks per array when writing
    out = case_file.parent / f"par{comm.size}.rom.h5"
    build_reduced_model(load_case(case_file), comm, CFG, path=out)
    monkeypatch.undo()
    # every snapshot read is this rank's block: about n_rows / size rows (whole elements)
    assert {r[0] for r in reads} == {"displacement", "stress", "viscoplastic_strain", "p"}
    for field, n_rows, nc, shape in reads:
        slack = 8 * nc if field != "displacement" else 3      # one hex8 element / one node
        assert shape[0] <= n_rows // comm.size + slack, (field, n_rows, shape)
    totals = {}
    for rank_reads in comm.allgather(reads):
        for field, n_rows, _, shape in rank_reads:
            totals[field] = totals.get(field, 0) + shape[0]
            assert n_rows == reads[[r[0] for r in reads].index(field)][1]
    assert all(totals[f] == n for f, n, _, _ in reads), totals    # the blocks tile the store
    # the file: same layout as a serial build, same reduced points, same numbers to round-off
    if comm.rank == 0:
        ser = build_reduced_model(load_case(case_file), None, CFG,
                                  path=case_file.parent / "ser.rom.h5")
        a, b = _datasets(ser), _datasets(out)
        assert a.keys() == b.keys()
        for k, (x, attrs) in a.items():
            y, battrs = b[k]
            assert x.shape == y.shape and attrs == battrs, k
            if x.dtype.kind == "i":
                np.testing.assert_array_equal(x, y, err_msg=k)
            else:     # modes: snapshot-method POD round-off ~ eps (s_1 / s_n)^2 (docs)
                assert np.abs(x - y).max() <= 1e-7 * max(np.abs(x).max(), 1e-300), k
        with h5py.File(out, "r") as f:
            assert f.attrs["schema"] == "rom.online.reduced_model"
            assert int(f.attrs["writer_ranks"]) == comm.size


def test_training_rows_layout_precision_and_release(store_case, tmp_path):
    """read_blocks: stresses and internal variables in the layout the POD reads without a
    copy (point-major rows), the stresses in the store's precision; the build releases the
    internal variables and gives the model of whole float64 arrays (float32 stresses: the
    same numbers, converted by block)."""
    from rom.fom.setup import material_from_config
    case = load_case(store_case)
    law = material_from_config(case.material)
    mesh = FEMesh.from_meshio(meshio.read(case.mesh))
    part = B.Partition.of(mesh, 1, 0)
    with SnapshotStore.open(case.snapshots.store) as store:
        tr = B.read_blocks(store, law, mesh, part, block_bytes=4096)   # many Z blocks
        Zref = np.concatenate([store.read(n, rows=(0, store.field(n).n_rows)).T.reshape(
            tr.n_snapshots, -1, sl.stop - sl.start) for n, (sl, _) in law.state_names.items()],
            axis=2)
    m = tr.n_snapshots
    assert tr.S.dtype == np.float64 and tr.S.reshape(m, -1).T.flags.c_contiguous
    assert tr.Z.reshape(m, -1).T.flags.c_contiguous
    np.testing.assert_array_equal(tr.Z, Zref)
    S32 = tr.S.astype(np.float32)
    whole = B.build_from_arrays(mesh, case.material, case.loading, tr.U, S32.astype(float),
                                np.ascontiguousarray(tr.Z), CFG)
    rows = B.TrainingRows(tr.U, S32, tr.Z)
    del tr
    built = B.build_distributed(mesh, case.material, case.loading, rows, CFG, part, None)
    assert rows.Z is None
    np.testing.assert_array_equal(built.operator.points, whole.operator.points)
    np.testing.assert_allclose(built.operator.weights, whole.operator.weights, rtol=1e-12)
    for name in ("phi", "psi_p", "psi_z", "sigma"):
        a, b = getattr(built.bases, name).local, getattr(whole.bases, name).local
        np.testing.assert_allclose(a, b, atol=1e-12 * np.abs(b).max(), err_msg=name)


def test_distributed_writer_layout_equals_save(store_case, tmp_path):
    path = build_reduced_model(load_case(store_case), None, CFG, path=tmp_path / "a.rom.h5")
    load(path).save(tmp_path / "b.rom.h5")
    a, b = _datasets(path), _datasets(tmp_path / "b.rom.h5")
    assert a.keys() == b.keys()
    for k, (x, attrs) in a.items():
        np.testing.assert_array_equal(x, b[k][0], err_msg=k)
        assert attrs == b[k][1], k


def test_store_of_another_mesh_is_a_user_error(store_case, tmp_path):
    import shutil

    case_dir = store_case.parent
    for name in ("case.yaml",):
        shutil.copy(case_dir / name, tmp_path / name)
    text = (tmp_path / "case.yaml").read_text().replace(
        "store: out/", f"store: {case_dir}/out/").replace("mesh: mesh.inp", "mesh: other.inp")
    (tmp_path / "case.yaml").write_text(text)
    meshio.write(tmp_path / "other.inp", plate_mesh((12, 3, 1)))
    with pytest.raises(UserError, match="field 'displacement'.*mesh needs"):
        build_reduced_model(load_case(tmp_path / "case.yaml"), None, CFG,
                            path=tmp_path / "x.rom.h5")
