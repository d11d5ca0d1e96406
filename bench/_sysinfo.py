"""Facts about the machine the benchmarks ran on (shared by the bench scripts)."""

from __future__ import annotations

import os

__all__ = ["fs_type"]


def fs_type(path: str) -> str | None:
    """Filesystem type holding ``path`` (from /proc/mounts)."""
    try:
        path = os.path.realpath(path)
        best, fstype = "", None
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, fstype = mnt, parts[2]
        return fstype
    except OSError:
        return None
