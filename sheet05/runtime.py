"""How the notebook treats the machine's memory (no result depends on it)."""

import ctypes
import sys

__appendix__ = []  # no result depends on this module (see export.appendix_chunks)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_freed_arrays_to_the_os(threshold: int = 1 << 20) -> bool:
    """Make glibc give large freed blocks back to the operating system; True if it could.

    glibc keeps a freed block in its heap unless the block was mapped on its own, and it maps
    only blocks above a threshold that it raises, up to 32 MiB, each time it frees such a
    block. The notebook makes many short-lived arrays of a few MiB (training sets, 501 x 501
    grids), which would then stay in the heap and add about 200 MiB to its peak memory. A
    fixed threshold of 1 MiB maps every larger array on its own and returns it when it is
    freed. Elsewhere (macOS, musl) this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
