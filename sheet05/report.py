"""Tables for the notebook that look right both in Jupyter and in the exported PDF.

A table is displayed with two representations: Markdown (rendered by Jupyter) and a
LaTeX ``tabular`` (picked by nbconvert's LaTeX exporter, which prefers text/latex). Pandoc's
conversion of a long Markdown row would instead squeeze every column into a fixed-width
paragraph box and wrap numbers such as "0.997 ± 0.002" over two lines.
"""

from __future__ import annotations

import textwrap

from IPython.display import display

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
    lines = textwrap.wrap(str(text), width) or [""]
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
