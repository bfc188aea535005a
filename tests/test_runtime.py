"""sheet05.runtime: the glibc setting that keeps the notebook's peak memory down."""

import subprocess
import sys

from sheet05 import runtime


def test_returns_whether_it_applied():
    applied = runtime.return_freed_arrays_to_the_os()
    assert applied is (sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()))


def test_freed_large_arrays_leave_the_process():
    """Allocate and free arrays of 8 MiB: with the setting, the resident memory falls back."""
    code = """
import re, sys
from sheet05 import runtime
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
apply = sys.argv[1] == "1"
if apply:
    runtime.return_freed_arrays_to_the_os()
import numpy as np
base = rss()
keep = []
for i in range(40):            # 40 arrays of 8 MiB, every other one kept: a fragmented heap
    a = np.ones(1 << 20)
    if i % 2:
        keep.append(np.ones(1 << 10))
    del a
print(rss() - base)
"""
    if not sys.platform.startswith("linux"):
        return
    grown = {flag: int(subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True,
                                      check=True).stdout) for flag in ("0", "1")}
    assert grown["1"] <= 4, grown
