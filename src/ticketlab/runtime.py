"""Process-wide settings for fast CPU training, applied by the entry points (the CLI and lottery worker
processes), never on import.

glibc's malloc hands large blocks back to the kernel when they are freed and maps fresh pages for the next
step's activations, so every step pays page faults. Keeping blocks up to 32 MiB in the heap and never
trimming it makes Conv-2's training steps and evaluations faster on the CPU; the measurements are in
docs/speed.md ("The allocator").
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3   # mallopt parameters (malloc.h)


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc only); True if applied. Memory the process once used stays
    reserved by it until it exits, which the batch sizing (a quarter of available memory) leaves room for."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False   # not glibc (macOS, musl): nothing to tune
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, (1 << 31) - 1), (_M_TOP_PAD, 512 << 20)))


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent dies (Linux; True if applied), so that killing a
    command kills the worker processes it started instead of leaving them training and holding job locks."""
    import signal
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL) == 0   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False   # not Linux: workers finish their current job before exiting
