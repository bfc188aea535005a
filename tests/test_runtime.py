"""sheet05.runtime: fixed figure margins and their check, shared math-text layouts, and the glibc
setting that keeps the notebook's peak memory down."""

import subprocess
import sys

import pytest

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


FIGURE_WITH_MATH = r"""
import io, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sheet05 import runtime
if sys.argv[1] == "shared":
    assert runtime.share_math_text_layouts() and runtime.share_math_text_layouts()  # twice: no-op
fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
ax.plot([1, 10, 100], [1e-3, 1e-1, 1])
ax.set_yscale("log")                                       # tick labels are math text
ax.set_xlabel(r"$\lambda=10$, $x_1$")
ax.set_title(r"$\frac{1}{2}\sum_i z_i$, $\mathbf{w}\cdot\mathbf{x}$")
for _ in range(2):                                         # the second save reuses the layouts
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"CreationDate": None}, bbox_inches="tight")
sys.stdout.buffer.write(buf.getvalue())
"""


def test_shared_math_text_layouts_leave_the_pdf_unchanged():
    """The same figure, with and without the shared cache: the same PDF bytes."""
    pdfs = {how: subprocess.run([sys.executable, "-c", FIGURE_WITH_MATH, how], capture_output=True,
                                check=True).stdout for how in ("per-parser", "shared")}
    assert pdfs["shared"].startswith(b"%PDF") and len(pdfs["shared"]) > 1000
    assert pdfs["shared"] == pdfs["per-parser"]


def test_each_math_text_is_parsed_once_across_renderers(monkeypatch):
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import _mathtext

    assert runtime.share_math_text_layouts()
    parsed = []
    original = _mathtext.Parser.parse
    monkeypatch.setattr(_mathtext.Parser, "parse",
                        lambda self, s, *args: parsed.append(s) or original(self, s, *args))
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_xlabel(r"$x_{17}$ only in this test")
    fig.savefig(io.BytesIO(), format="pdf", bbox_inches="tight")   # three renderers
    assert parsed.count(r"$x_{17}$ only in this test") == 1
    fig.savefig(io.BytesIO(), format="pdf")
    plt.close(fig)
    assert parsed.count(r"$x_{17}$ only in this test") == 1


def two_panels(**margins):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(4.0, 2.0))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set(xlabel="$x_1$", ylabel="a y label", title="a title")
    fig.suptitle("suptitle")
    runtime.set_margins(fig, **margins)
    return fig


def test_set_margins_places_the_panels_in_inches():
    fig = two_panels(left=0.6, bottom=0.45, right=0.15, top=0.5, wgap=0.7)
    width, height = fig.get_size_inches()
    placed = [[round(v, 9) for v in (ax.get_position().extents * [width, height, width, height])]
              for ax in fig.axes]
    assert placed == [[0.6, 0.45, 1.875, 1.5], [2.575, 0.45, 3.85, 1.5]]
    assert runtime.layout_problems(fig) == []


def test_layout_problems_names_clipped_text_and_overlapping_panels():
    clipped = runtime.layout_problems(two_panels(left=0.05, bottom=0.45, right=0.15, top=0.5, wgap=0.7))
    assert clipped == ["axes 0 (a title) leaves the figure"], clipped
    crowded = runtime.layout_problems(two_panels(left=0.6, bottom=0.45, right=0.15, top=0.1, wgap=0.05))
    assert any(p.startswith("axes 0 (a title) and axes 1 (a title) overlap") for p in crowded), crowded
    assert any("the suptitle" in p and "overlap" in p for p in crowded), crowded


def test_set_margins_refuses_margins_wider_than_the_figure():
    with pytest.raises(ValueError, match="no room for the 1 x 2 subplots of a 4 x 2 in figure"):
        two_panels(left=2.0, bottom=0.45, right=2.0, top=0.5)


def test_checked_show_raises_with_the_figure_and_the_fix(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", plt.show)   # restored afterwards
    runtime.check_layouts_on_show()
    runtime.check_layouts_on_show()   # twice: still one check, around the original show
    assert plt.show.unchecked.__name__ == "show"
    two_panels(left=0.05, bottom=0.45, right=0.15, top=0.5, wgap=0.7)
    with pytest.raises(ValueError, match=r"figure 'suptitle': axes 0 \(a title\) leaves the figure\. "
                                         r"Widen its margins or gaps \(set_margins\)\."):
        plt.show()
    plt.close("all")
    two_panels(left=0.6, bottom=0.45, right=0.15, top=0.5, wgap=0.7)
    plt.show()
    plt.close("all")
