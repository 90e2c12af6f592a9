"""Regenerate cases/plate/mesh.vtu (a 3D plate with a hole, hex8): python cases/plate/make_mesh.py"""
from pathlib import Path

from rom.meshes import plate_with_hole

mesh = plate_with_hole(half_width=0.05, radius=0.01, thickness=0.005,
                       n_theta=96, n_radial=24, n_thick=3, grading=1.08)
out = Path(__file__).with_name("mesh.vtu")
mesh.write(out, binary=True, compression="zlib")
print(f"{out}: {len(mesh.points)} nodes, {len(mesh.cells[0].data)} hex8 cells")
