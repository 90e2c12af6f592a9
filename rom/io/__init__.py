"""File I/O: snapshot store (HDF5), atomic HDF5 writing, mesh/field files (meshio).

``rom.io.mesh`` and ``rom.io.importer`` import meshio; they are not imported here.
"""
from __future__ import annotations

from .atomic import atomic_h5, stamp_provenance
from .snapshots import FieldInfo, Loading, SnapshotError, SnapshotStore

__all__ = ["FieldInfo", "Loading", "SnapshotError", "SnapshotStore", "atomic_h5",
           "stamp_provenance"]
