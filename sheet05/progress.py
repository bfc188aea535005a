"""One progress line for a slow notebook cell: updated in place in Jupyter, none in the PDF."""

from __future__ import annotations

import os
import time

__appendix__ = []  # no result depends on this module (see export.appendix_chunks)


def progress(items, what: str, total: int | None = None):
    """Yield from `items`, showing "what: k/total" in one output line that is updated after each
    item and ends with the time taken.

    The line is an IPython display with a display id, which Jupyter updates in place. When
    export.sh executes the notebook for the PDF (SHEET05_EXPORT=1) nothing is shown: the PDF
    shows results, not how long they took. Outside IPython (a plain script) each update is
    printed on its own line.
    """
    from IPython import get_ipython
    from IPython.display import display

    total = len(items) if total is None else total
    start = time.perf_counter()
    if os.environ.get("SHEET05_EXPORT"):
        yield from items
        return
    handle = None
    if get_ipython() is not None:
        handle = display({"text/plain": f"{what}: 0/{total}"}, raw=True, display_id=True)

    def show(text):
        if handle is None:
            print(text, flush=True)
        else:
            handle.update({"text/plain": text}, raw=True)

    done = 0
    for item in items:
        yield item
        done += 1
        if done < total:
            show(f"{what}: {done}/{total}")
    show(f"{what}: {done}/{total} in {time.perf_counter() - start:.1f} s")
