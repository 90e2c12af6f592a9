"""Mesh/field files (VTU, XDMF, time series) and the meshio importer."""
from __future__ import annotations

import meshio
import numpy as np
import pytest

from rom.io.importer import import_meshio_files
from rom.io.mesh import read_mesh, write_fields, write_time_series
from rom.io.snapshots import SnapshotStore
from rom.parallel import even_split


def grid_mesh(nx: int = 3, ny: int = 2) -> meshio.Mesh:
    """A 2D grid of (nx+1)(ny+1) points; the first 2 squares split in triangles, the rest quads."""
    x, y = np.meshgrid(np.linspace(0, 1, nx + 1), np.linspace(0, 0.5, ny + 1), indexing="ij")
    pts = np.column_stack([x.ravel(), y.ravel()])
    idx = np.arange(pts.shape[0]).reshape(nx + 1, ny + 1)
    quads = np.column_stack([idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(),
                             idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()])
    tris = np.concatenate([quads[:2, [0, 1, 2]], quads[:2, [0, 2, 3]]])
    return meshio.Mesh(pts, [("triangle", tris), ("quad", quads[2:])])


def fields_at(mesh: meshio.Mesh, t: float) -> tuple[dict, dict]:
    p = mesh.points
    point = {"T": 300 + 100 * t * p[:, 0], "u": np.column_stack([t * p[:, 0], -t * p[:, 1]])}
    n_cells = sum(len(b.data) for b in mesh.cells)
    cell = {"s": 1e6 * t * np.arange(1.0, n_cells + 1)}
    return point, cell


def test_write_vtu_and_xdmf(tmp_path):
    mesh = grid_mesh()
    point, cell = fields_at(mesh, 2.0)
    for name in ("f.vtu", "f.xdmf"):
        path = write_fields(tmp_path / name, mesh, point_data=point, cell_data=cell,
                            units={"T": "K", "s": "Pa"})
        back = meshio.read(path)
        assert np.allclose(back.points[:, :2], mesh.points) and back.points.shape[1] == 3
        assert np.allclose(back.point_data["T [K]"], point["T"])
        u = back.point_data["u"]
        assert u.shape == (len(mesh.points), 3)           # 2-vector padded for ParaView
        assert np.allclose(u[:, :2], point["u"]) and np.all(u[:, 2] == 0)
        s = np.concatenate([np.ravel(b) for b in back.cell_data["s [Pa]"]])
        assert np.allclose(s, cell["s"])
    assert (tmp_path / "f.h5").exists()
    # flat entity-major vectors are accepted too
    write_fields(tmp_path / "g.vtu", mesh, point_data={"u": point["u"].ravel()})
    assert np.allclose(meshio.read(tmp_path / "g.vtu").point_data["u"][:, :2], point["u"])


def test_write_errors(tmp_path):
    mesh = grid_mesh()
    with pytest.raises(ValueError, match="use a .vtu or .xdmf"):
        write_fields(tmp_path / "f.txt", mesh)
    with pytest.raises(ValueError, match="field 'T'.*do not fit 12 entities"):
        write_fields(tmp_path / "f.vtu", mesh, point_data={"T": np.zeros(13)})


def test_time_series_round_trip(tmp_path):
    mesh = grid_mesh()
    times = [0.0, 0.5, 1.0]
    steps = [fields_at(mesh, t) for t in times]
    path = write_time_series(tmp_path / "ts.xdmf", mesh, times, [p for p, _ in steps],
                             cell_data_per_step=[c for _, c in steps])
    assert (tmp_path / "ts.h5").exists()
    with meshio.xdmf.TimeSeriesReader(path) as reader:
        points, _ = reader.read_points_cells()
        assert np.allclose(points[:, :2], mesh.points)
        for k, t in enumerate(times):
            tk, pd, _ = reader.read_data(k)
            assert tk == t and np.allclose(pd["T"], steps[k][0]["T"])
            assert np.allclose(pd["u"][:, :2], steps[k][0]["u"])


def test_read_mesh_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.vtu"):
        read_mesh(tmp_path / "nothere.vtu")
    bad = tmp_path / "bad.vtu"
    bad.write_text("this is not xml")
    with pytest.raises(ValueError, match="cannot read mesh file .*bad.vtu"):
        read_mesh(bad)
    weird = tmp_path / "mesh.unknownext"
    weird.write_text("1 2 3")
    with pytest.raises(ValueError, match="mesh.unknownext"):
        read_mesh(weird)


def write_vtu_series(directory, mesh, times):
    files = []
    for k, t in enumerate(times):
        point, cell = fields_at(mesh, t)
        files.append(write_fields(directory / f"snap_{k}.vtu", mesh, point_data=point,
                                  cell_data=cell))
    return files


def test_import_vtu_files(tmp_path):
    mesh = grid_mesh()
    times = [0.1, 0.2, 0.3]
    files = write_vtu_series(tmp_path, mesh, times)
    n = import_meshio_files(files, tmp_path / "s.h5", times=times, loading_name="run1",
                            parameters={"T0": 300.0}, units={"T": "K"})
    assert n == 3
    st = SnapshotStore.open(tmp_path / "s.h5")
    assert st.fields["u"].kind == "nodal" and st.fields["u"].n_components == 3
    assert st.fields["s"].kind == "cell" and st.fields["s"].n_entities == 8
    assert st.fields["T"].units == "K"
    assert st.loadings[0].name == "run1" and st.loadings[0].parameters == {"T0": 300.0}
    assert np.allclose(st.snapshot_table()["time"], times)
    for k, t in enumerate(times):
        point, cell = fields_at(mesh, t)
        u3 = np.column_stack([point["u"], np.zeros(len(mesh.points))])
        assert np.allclose(st.read("u", columns=k)[:, 0], u3.ravel())
        assert np.allclose(st.read("T", columns=k)[:, 0], point["T"])
        assert np.allclose(st.read("s", columns=k)[:, 0], cell["s"])
    assert st.mesh_path == "snap_0.vtu"
    assert len(st.read_mesh().points) == len(mesh.points)
    # a subset of fields, default times 0, 1, 2
    import_meshio_files(files, tmp_path / "t.h5", fields=["T"])
    st = SnapshotStore.open(tmp_path / "t.h5")
    assert list(st.fields) == ["T"] and st.snapshot_table()["time"].tolist() == [0, 1, 2]


def test_import_time_series(tmp_path):
    mesh = grid_mesh()
    times = [0.0, 1.0]
    steps = [fields_at(mesh, t) for t in times]
    path = write_time_series(tmp_path / "ts.xdmf", mesh, times, [p for p, _ in steps])
    plain = write_fields(tmp_path / "one.xdmf", mesh, point_data=fields_at(mesh, 2.0)[0])
    assert import_meshio_files([path, plain], tmp_path / "s.h5") == 3
    st = SnapshotStore.open(tmp_path / "s.h5")
    assert st.snapshot_table()["time"].tolist() == [0.0, 1.0, 2.0]
    assert np.allclose(st.read("T")[:, 2], fields_at(mesh, 2.0)[0]["T"])


def test_import_errors_name_the_file(tmp_path):
    mesh = grid_mesh()
    files = write_vtu_series(tmp_path, mesh, [0.1, 0.2])
    other = grid_mesh(4, 2)
    point, cell = fields_at(other, 0.3)
    odd = write_fields(tmp_path / "odd.vtu", other, point_data=point, cell_data=cell)
    with pytest.raises(ValueError, match=r"odd.vtu: mesh differs from .*snap_0.vtu \(15 points"):
        import_meshio_files(files + [odd], tmp_path / "s.h5")
    assert not (tmp_path / "s.h5").exists()
    point, cell = fields_at(mesh, 0.3)
    point["T"][4] = np.nan
    nan = write_fields(tmp_path / "nan.vtu", mesh, point_data=point, cell_data=cell)
    with pytest.raises(ValueError, match=r"nan.vtu: field 'T' has 1 NaN/Inf"):
        import_meshio_files(files + [nan], tmp_path / "s.h5")
    with pytest.raises(ValueError, match=r"snap_0.vtu: no field 'p'"):
        import_meshio_files(files, tmp_path / "s.h5", fields=["p"])
    with pytest.raises(FileNotFoundError, match="missing.vtu"):
        import_meshio_files(files + [tmp_path / "missing.vtu"], tmp_path / "s.h5")
    with pytest.raises(ValueError, match="2 times given for 3 snapshots|snapshot number 3"):
        import_meshio_files(files + [files[0]], tmp_path / "s.h5", times=[0, 1])
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.mpi
def test_import_collective(comm, shared_tmp_path):
    mesh = grid_mesh()
    times = [0.1, 0.2, 0.3]
    files = None
    if comm.rank == 0:
        files = write_vtu_series(shared_tmp_path, mesh, times)
    files = comm.bcast(files, root=0)
    assert import_meshio_files(files, shared_tmp_path / "s.h5", times=times, comm=comm) == 3
    st = SnapshotStore.open(shared_tmp_path / "s.h5", comm=comm)
    off = even_split(len(mesh.points), comm.size)
    local = st.read("T")
    ref = np.column_stack([fields_at(mesh, t)[0]["T"] for t in times])
    assert np.allclose(local, ref[off[comm.rank]:off[comm.rank + 1]])
    st.close()
    comm.Barrier()
    with pytest.raises(ValueError, match="no field 'p'"):     # the error reaches every rank
        import_meshio_files(files, shared_tmp_path / "t.h5", fields=["p"], comm=comm)
