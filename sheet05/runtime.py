"""How the notebook runs: figures at print size, one BLAS thread, memory given back.

The notebook's first code cell calls `set_up_notebook()`; everything it does, and why, is in
that function's docstring.
"""

import ctypes
import functools
import os
import sys

# The set-up is printed in the appendix: it fixes the BLAS threads (the shuffled-label numbers
# follow the BLAS kernel's round-off) and the figures' print size.
__appendix__ = ["set_up_notebook", "set_margins"]

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
TEXT_WIDTH = 6.8  # inches: the width of the PDF's text, the widest a figure is drawn


def set_up_notebook() -> None:
    """Prepare the kernel for the notebook: figures, threads and memory. Called once, in the
    first code cell; running it again changes nothing.

    * Figures are rendered once, in the format that is used: PNG in Jupyter, vector PDF when
      ./export.sh executes the notebook for the submission (it sets SHEET05_EXPORT=1).
    * Figures are drawn at the size they are printed (at most TEXT_WIDTH, the PDF's text
      width), with 7-8 pt text, so that 7-8 pt here is 7-8 pt on the A4 page. Each figure
      places its panels with fixed margins (set_margins), not with constrained layout.
    * One thread per BLAS and OpenMP call: threads within one small fit fight over the cores
      (several times slower on 2 cores), so independent fits run side by side instead
      (exercise 2), and every run uses the same BLAS code path, so the same round-off.
      threadpoolctl limits the libraries loaded already (numpy's OpenBLAS); the ones loaded
      later (scipy's OpenBLAS, the OpenMP of scikit-learn and PyTorch) read the environment
      variables set here when they load. So this cell need not load them, which would keep
      it silent for seconds.
    * Large freed arrays go back to the operating system (Linux with glibc), which keeps the
      notebook's peak memory below 0.8 GB (see return_freed_arrays_to_the_os).
    * Each math label ($x_1$, $\\lambda=10$, log-axis ticks) is laid out once, not once per
      figure (see share_math_text_layouts).
    """
    import matplotlib.pyplot as plt
    from matplotlib_inline.backend_inline import set_matplotlib_formats
    from threadpoolctl import threadpool_limits

    # bbox_inches=None: every figure sets its margins to fit its labels (set_margins), and a
    # tight bounding box would cost a second drawing pass per figure
    set_matplotlib_formats("pdf" if os.environ.get("SHEET05_EXPORT") else "png", bbox_inches=None)
    plt.rcParams.update({"figure.dpi": 110, "figure.constrained_layout.use": False,
                         "savefig.bbox": "standard", "font.size": 8,
                         "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
                         "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 8.5})
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    threadpool_limits(limits=1)
    return_freed_arrays_to_the_os()
    share_math_text_layouts()
    if os.environ.get("SHEET05_CHECK_LAYOUT"):
        check_layouts_on_show()


def set_margins(fig, left: float, bottom: float, right: float, top: float,
                wgap: float = 0.0, hgap: float = 0.0) -> None:
    """Place the figure's grid of subplots with fixed margins and gaps, in inches.

    The notebook's figures use this instead of matplotlib's constrained layout, which measures
    every tick label of every axes several times per figure: 0.3-0.7 s a figure, more than
    drawing it. The margins are chosen once per figure to fit its labels (a test checks that
    no text leaves the figure and no two panels overlap). Colour bars made with `ax=` a list
    of axes take their place from the axes' positions: call this before them.
    """
    width, height = fig.get_size_inches()
    grid = fig.axes[0].get_subplotspec().get_topmost_subplotspec().get_gridspec()
    rows, cols = grid.get_geometry()
    cell_w = (width - left - right - (cols - 1) * wgap) / cols
    cell_h = (height - bottom - top - (rows - 1) * hgap) / rows
    if min(cell_w, cell_h) <= 0:
        raise ValueError(f"margins and gaps leave no room for the {rows} x {cols} subplots of a "
                         f"{width:g} x {height:g} in figure")
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wgap / cell_w, hspace=hgap / cell_h)


def layout_problems(fig, tolerance: float = 0.5) -> list[str]:
    """What the margins of `fig` get wrong, as sentences: text that leaves the figure, and
    panels (each axes with its ticks, labels and title; colour bars; the suptitle; figure
    legends) that overlap one another by more than `tolerance` pixels. Draws the figure."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()   # ticks, aspect ratios and colour bars as in the output
    boxes = [(f"axes {i} ({ax.get_title() or ax.get_label() or 'no title'})",
              ax.get_tightbbox(renderer)) for i, ax in enumerate(fig.axes)]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        boxes.append(("the suptitle", suptitle.get_window_extent(renderer)))
    boxes += [(f"figure legend {i}", legend.get_window_extent(renderer))
              for i, legend in enumerate(fig.legends)]
    page = fig.bbox
    problems = [f"{name} leaves the figure" for name, box in boxes
                if min(box.x0 - page.x0, box.y0 - page.y0, page.x1 - box.x1,
                       page.y1 - box.y1) < -tolerance]
    for i, (name, box) in enumerate(boxes):
        for other, box2 in boxes[i + 1:]:
            width = min(box.x1, box2.x1) - max(box.x0, box2.x0)
            height = min(box.y1, box2.y1) - max(box.y0, box2.y0)
            if min(width, height) > tolerance:
                problems.append(f"{name} and {other} overlap ({width:.0f} x {height:.0f} px)")
    return problems


def check_layouts_on_show() -> None:
    """Make plt.show() raise if an open figure has layout_problems. The tests' export sets
    SHEET05_CHECK_LAYOUT=1 for this; it costs about as much as constrained layout."""
    import matplotlib.pyplot as plt

    show = getattr(plt.show, "unchecked", plt.show)

    def checked_show(*args, **kwargs):
        for number in plt.get_fignums():
            fig = plt.figure(number)
            problems = layout_problems(fig)
            if problems:
                raise ValueError(f"figure {fig.get_suptitle()!r}: " + "; ".join(problems)
                                 + ". Widen its margins or gaps (set_margins).")
        return show(*args, **kwargs)

    checked_show.unchecked = show
    plt.show = checked_show


def share_math_text_layouts() -> bool:
    """Let every renderer reuse matplotlib's layout of a math text; True if it applies.

    matplotlib caches the layout of a math text (`MathTextParser._parse_cached`, which runs
    its pyparsing grammar, ~7 ms a label), but per parser, and each renderer has a parser of
    its own: every figure, and every extra drawing pass of a layout engine or a tight bounding
    box, parses its labels again, though $x_1$, $x_2$ and the log-axis ticks recur in many
    figures. The layout depends only on the arguments of `_parse_cached` and the parser's
    output type, so one cache keyed by those returns what the parser would (a test compares
    the PDF bytes). If matplotlib changes that method, this does nothing and returns False.
    """
    from matplotlib.mathtext import MathTextParser

    method = MathTextParser.__dict__.get("_parse_cached")
    if getattr(method, "shared_across_parsers", False):
        return True
    original = getattr(method, "__wrapped__", None)
    if original is None or original.__code__.co_varnames[:6] != (
            "self", "s", "dpi", "prop", "antialiased", "load_glyph_flags"):
        return False
    parsers: dict[str, MathTextParser] = {}  # one parser per output type ("vector", "raster")

    @functools.lru_cache(maxsize=1024)
    def layout(output_type, s, dpi, prop, antialiased, load_glyph_flags):
        return original(parsers[output_type], s, dpi, prop, antialiased, load_glyph_flags)

    def parse_cached(self, s, dpi, prop, antialiased, load_glyph_flags):
        parsers.setdefault(self._output_type, self)
        return layout(self._output_type, s, dpi, prop, antialiased, load_glyph_flags)

    parse_cached.shared_across_parsers = True
    parse_cached.__wrapped__ = original
    MathTextParser._parse_cached = parse_cached
    return True


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
