"""Tables, interpretation text and answers for the notebook, for Jupyter and the exported PDF.

A table is displayed with two representations: Markdown (rendered by Jupyter) and a
LaTeX ``tabular`` (picked by nbconvert's LaTeX exporter, which prefers text/latex). Pandoc's
conversion of a long Markdown row would instead squeeze every column into a fixed-width
paragraph box and wrap numbers such as "0.997 ± 0.002" over two lines.

Text that quotes a computed number is never typed by hand: a code cell formats it from the
computed value and shows it with `prose` (its input is hidden in the PDF), so the text and
the printed output cannot disagree on any machine. `require` guards the qualitative
statements around those numbers, and `answer` marks the short answer to a sub-question,
which the PDF build collects into its "Answers at a glance" page.
"""

from __future__ import annotations

import re
import textwrap

from IPython.display import display

ANSWER_KEY = "sheet05_answer"  # output metadata that marks an answer for the PDF build
__appendix__ = []  # formatting only: no result depends on it (see export.appendix_chunks)

# Brackets are braced because "\\" followed by "[" (a new line or row starting with a
# bracket) would be read as an optional argument, and so would "]" inside \includepdf[...].
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "[": "{[}", "]": "{]}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def table_markdown(header, rows) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def _header_cell(text: str, width: int = 14) -> str:
    """A header cell broken over lines of about `width` characters (keeps wide tables narrow)."""
    lines = textwrap.wrap(str(text), width, break_long_words=False) or [""]
    if len(lines) == 1:
        return latex_escape(lines[0])
    return r"\begin{tabular}[b]{@{}l@{}}" + r" \\ ".join(map(latex_escape, lines)) + r"\end{tabular}"


def table_latex(header, rows) -> str:
    body = [" & ".join(_header_cell(c) for c in header) + r" \\ \midrule"]
    body += [" & ".join(latex_escape(str(c)) for c in row) + r" \\" for row in rows]
    # adjustbox (loaded by nbconvert's template) shrinks a table wider than the text to fit
    return ("\\begin{center}\\small\\begin{adjustbox}{max width=\\linewidth}\\begin{tabular}{"
            + "l" * len(header) + "}\\toprule\n" + "\n".join(body)
            + "\n\\bottomrule\\end{tabular}\\end{adjustbox}\\end{center}")


def show_table(header, rows) -> None:
    """Display a table of already formatted cells (strings or numbers)."""
    rows = [list(row) for row in rows]
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells, like the header {header}")
    display({"text/markdown": table_markdown(header, rows),
             "text/latex": table_latex(header, rows)}, raw=True)


def prose(markdown: str) -> None:
    """Show interpretation text (Markdown with $maths$) whose numbers were formatted from values."""
    display({"text/markdown": markdown.strip()}, raw=True)


def answer(key: str, markdown: str) -> None:
    """Show the short answer to sub-question `key` (e.g. "2(a)") and mark it for the answer page."""
    if not re.fullmatch(r"\d\([a-z]\)|\d", key):
        raise ValueError(f"answer key {key!r} is not a sub-question label such as '2(a)' or '5'")
    text = markdown.strip()
    display({"text/markdown": f"**Answer {key}.** {text}"},
            metadata={ANSWER_KEY: {"key": key, "text": text}}, raw=True)


class ClaimFailed(AssertionError):
    """A statement of the interpretation text does not hold for the computed numbers."""


def require(condition, statement: str) -> None:
    """Stop (and so fail the export) if `statement`, which the text makes, is not true here.

    Numbers in the text are filled in from the computed values, but the words around them
    ("perfectly", "inverted", "below chance") are not; this keeps them honest on every machine.
    """
    if not bool(condition):
        raise ClaimFailed(f"the interpretation says: {statement!r}, which does not hold for the "
                          "numbers computed in this run; the text must be revised")
