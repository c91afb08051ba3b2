"""How much memory this machine can give, and byte counts as people read them."""
from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes that can be allocated now without swapping: ``MemAvailable`` of
    /proc/meminfo (free memory plus caches the kernel can drop), or, where that file does
    not exist, the free physical pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        # Nothing to measure by: do not refuse anything on a guess.
        return 2**62


def format_bytes(count: float) -> str:
    """``count`` bytes as "812 KiB", "3.4 GiB", ..."""
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
