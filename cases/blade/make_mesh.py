"""Generate the turbine-blade mesh (rom.blade) as an Abaqus .inp with its named groups.

python cases/blade/make_mesh.py [--size 1] [-o cases/blade/mesh.inp]
(size 1: 10,584 dofs, the bundled mesh; size 5: 1.09e6 dofs)
"""
import argparse
from pathlib import Path

import numpy as np

from rom.blade import BladeGeometry, blade_mesh, hex_quality, write_blade_mesh


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1, help="resolution factor (dofs ~ size^3)")
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("mesh.inp"))
    args = ap.parse_args(argv)
    g = BladeGeometry()
    args.output.parent.mkdir(parents=True, exist_ok=True)     # e.g. out/blade-large/
    path = write_blade_mesh(args.output, g, args.size)
    mesh = blade_mesh(g, args.size)
    cells = mesh.cells[0].data
    sj, ar = hex_quality(mesh.points, cells)
    n = len(mesh.points)
    print(f"{path}: {n:,} nodes, {3 * n:,} dofs, {len(cells):,} hex8 elements "
          f"({path.stat().st_size / 1e6:.2f} MB)")
    print(f"quality: min scaled Jacobian {sj.min():.3f} (5th percentile "
          f"{np.percentile(sj, 5):.3f}), max aspect ratio {ar.max():.1f} (95th percentile "
          f"{np.percentile(ar, 95):.1f})")
    print(f"rotation axis: point {g.axis_point}, direction {g.axis_direction}")
    print("groups (facets / nodes):")
    for name, per_block in mesh.cell_sets.items():
        n_cells = sum(len(i) for i in per_block)
        nodes = mesh.point_sets.get(name, np.unique(cells))
        print(f"  {name:15s} {n_cells:7,d} {'hex8' if name == 'volume' else 'quad':4s} "
              f"{len(nodes):7,d} nodes")


if __name__ == "__main__":
    main()
