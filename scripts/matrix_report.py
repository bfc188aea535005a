"""The platform matrix's report: how a userland's PDF differs from the reference, and the table.

    python scripts/matrix_report.py compare REFERENCE.pdf OTHER.pdf DIFF_FILE
        one line for the table: the text compared line by line (timings left out), and every
        page break that moved, with its page (the diff goes to DIFF_FILE);
    python scripts/matrix_report.py table ROWS.jsonl docs/tested-on.md
        writes the table of docs/tested-on.md from the rows of this run (one JSON object per
        line), keeping the rows of userlands this run did not test.

Standard library and poppler's pdftotext only.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

TIMING = re.compile(r"[0-9]+(\.[0-9]+)? m?s\b")  # the notebook's timings differ from run to run


def pages_of(pdf: Path) -> list[list[str]]:
    """The text of each page as laid out: runs of blanks as one space; empty lines, the page
    number in the footer and the lines that report timings left out."""
    text = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    pages = text.split("\f")
    if pages and not pages[-1].strip():
        pages.pop()
    out = []
    for number, page in enumerate(pages, start=1):
        lines = [re.sub(r"\s+", " ", line).strip() for line in page.splitlines()]
        lines = [line for line in lines if line]
        if lines and lines[-1] == str(number):  # the page number in the footer
            lines.pop()
        out.append([line for line in lines if not TIMING.search(line)])
    return out


def moved_breaks(reference: list[list[str]], other: list[list[str]], blocks) -> list[str]:
    """For each page that starts at another line of the text than in the reference: 'p. N
    starts K lines later/earlier', N being the page number in `other`."""
    def starts(pages):
        out, n = [], 0
        for page in pages:
            out.append(n)
            n += len(page)
        return out

    def in_reference(j):  # the line of the reference that line j of `other` matches
        for a, b, size in blocks:
            if b <= j < b + size:
                return a + j - b
        return None

    moved = []
    ref_starts, other_starts = starts(reference), starts(other)
    for page, (r, o) in enumerate(zip(ref_starts, other_starts), start=1):
        mapped = in_reference(o)
        if page == 1 or mapped == r:
            continue
        if mapped is None:
            moved.append(f"p. {page} starts at a changed line")
        else:
            moved.append(f"p. {page} starts {abs(mapped - r)} line{'s' if abs(mapped - r) != 1 else ''} "
                         f"{'later' if mapped > r else 'earlier'}")
    return moved


def compare(reference_pdf: Path, other_pdf: Path, diff_file: Path) -> str:
    reference, other = pages_of(reference_pdf), pages_of(other_pdf)
    ref_lines = [line for page in reference for line in page]
    other_lines = [line for page in other for line in page]
    matcher = difflib.SequenceMatcher(None, ref_lines, other_lines, autojunk=False)
    changed = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    moved = moved_breaks(reference, other, matcher.get_matching_blocks())
    diff_file.write_text("".join(difflib.unified_diff(
        [f"[p. {n}] {line}\n" for n, page in enumerate(reference, 1) for line in page],
        [f"[p. {n}] {line}\n" for n, page in enumerate(other, 1) for line in page],
        str(reference_pdf), str(other_pdf), n=1)), encoding="utf-8")
    verdict = [f"{len(other)} pages" + ("" if len(other) == len(reference) else f" (reference: {len(reference)})")]
    plural = "s" if changed != 1 else ""
    verdict.append("same text" if changed == 0 else f"**text differs in {changed} line{plural}** ({diff_file.name})")
    verdict.append("same page breaks" if not moved else "page breaks moved: " + ", ".join(moved))
    return "; ".join(verdict)


COLUMNS = ["userland", "user", "Python", "pandoc", "TeX Live", "torch", "PDF against the reference", "tests",
           "commit", "date"]
KEYS = ["userland", "user", "python", "pandoc", "texlive", "torch", "pdf", "tests", "commit", "date"]


def table(rows_file: Path, markdown: Path) -> None:
    """Replace the table in `markdown` (between its header line and the first line that is not a
    row) by the rows of `rows_file`, keeping old rows of other (userland, user) pairs."""
    new = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = "| " + " | ".join(COLUMNS) + " |"
    text = markdown.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index(header)
    end = start + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    tested = {(row["userland"], row["user"]) for row in new}
    kept = [line for line in lines[start + 2:end]
            if tuple(cell.strip() for cell in line.strip("|").split(" | ")[:2]) not in tested]
    rows = ["| " + " | ".join(str(row[key]).replace("|", "\\|") for key in KEYS) + " |" for row in new]
    lines[start + 2:end] = rows + kept
    markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv[:1] == ["compare"] and len(argv) == 4:
        print(compare(Path(argv[1]), Path(argv[2]), Path(argv[3])))
    elif argv[:1] == ["table"] and len(argv) == 3:
        table(Path(argv[1]), Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
