"""The submission PDF as a tutor reads it: legible at print size, no near-empty pages, at most 40
pages, an answer page that links to where each answer is worked out, and cross-references that
point at sections that exist. Measured on the PDF that ./export.sh built (pdfplumber)."""

import re
from collections import Counter

import nbformat
import pytest

from conftest import REPO
from test_notebook import SUB_QUESTIONS

pdfplumber = pytest.importorskip("pdfplumber")

MIN_PT = 6.95         # 7 pt, with room for the rounding of font matrices
TINY_PT = 6.0         # at most 0.5 % of all characters may be smaller than this (maths scripts)
FOOTER_CM = 1.9       # the page number sits in the bottom margin; it is not content
CM = 72 / 2.54


@pytest.fixture(scope="module")
def pdf(exported):
    repo, result = exported
    assert result.returncode == 0, result.stderr[-3000:]
    with pdfplumber.open(repo / "submission.pdf") as doc:
        yield doc


def visible_chars(page):
    """The page's characters, with "size" the font size as printed: pdfminer reports the height
    of a character's box, which for text turned by 90 degrees (y-axis labels) is its width."""
    return [dict(c, size=c["size"] if c["upright"] else c["width"]) for c in page.chars if c["text"].strip()]


def _follows(a, b):
    """Character b comes right after character a in the writing direction of a."""
    if a["upright"]:
        return abs(b["x0"] - a["x1"]) < 0.6 * a["size"] and b["bottom"] > a["top"] - a["size"] \
            and b["top"] < a["bottom"] + a["size"]
    return abs(a["top"] - b["bottom"]) < 0.6 * a["size"] and b["x1"] > a["x0"] - a["size"] \
        and b["x0"] < a["x1"] + a["size"]


def scripts(chars):
    """Indices of sub- and superscripts: a run of smaller characters right after a larger one."""
    small = [i for i, c in enumerate(chars) if c["size"] < MIN_PT]
    found = {i for i in small if any(o["size"] >= chars[i]["size"] / 0.8 and _follows(o, chars[i]) for o in chars)}
    grew = True
    while grew:  # "aff" in w_aff: the "ff" follow the "a", which follows the w
        new = {i for i in small if i not in found and any(
            abs(chars[j]["size"] - chars[i]["size"]) < 0.1 and _follows(chars[j], chars[i]) for j in found)}
        found |= new
        grew = bool(new)
    return found


def small_text(pdf):
    """(all characters, characters below TINY_PT, [(page, text, size)] of small non-script text)."""
    total, tiny, offenders = 0, 0, []
    for number, page in enumerate(pdf.pages, 1):
        chars = visible_chars(page)
        total += len(chars)
        tiny += sum(c["size"] < TINY_PT for c in chars)
        script = scripts(chars)
        offenders += [(number, c["text"], round(c["size"], 2)) for i, c in enumerate(chars)
                      if c["size"] < MIN_PT and i not in script]
    return total, tiny, offenders


@pytest.mark.slow
def test_text_is_legible_at_print_size(pdf):
    total, tiny, offenders = small_text(pdf)
    assert total > 20_000
    assert tiny / total <= 0.005, f"{tiny / total:.2%} of the characters are below {TINY_PT} pt"
    by_page = Counter(page for page, _, _ in offenders)
    assert not offenders, (f"text below 7 pt that is not a maths script, per page: {dict(by_page)}; "
                           f"e.g. {offenders[:12]}")


def part_starts(pdf):
    """1-based first pages of the parts (title, answers, theory, notes, notebook, appendix)."""
    outline = pdf.doc.catalog.get("Outlines")
    assert outline, "the PDF has no bookmarks"
    from pypdf import PdfReader

    reader = PdfReader(pdf.stream)
    return sorted({1} | {reader.get_destination_page_number(item) + 1
                         for item in reader.outline if not isinstance(item, list)})


def filled_fraction(page):
    """Share of the text area's height between the first and the last content on the page."""
    limit = page.height - FOOTER_CM * CM
    tops, bottoms = [], []
    for obj in visible_chars(page) + page.images + page.rects + page.curves + page.lines:
        if obj["top"] < limit and obj["bottom"] > 0:
            tops.append(obj["top"])
            bottoms.append(min(obj["bottom"], limit))
    if not tops:
        return 0.0
    area = page.height - 2 * FOOTER_CM * CM - 0.3 * CM
    return (max(bottoms) - min(tops)) / area


@pytest.mark.slow
def test_no_page_is_less_than_a_quarter_full(pdf):
    starts = part_starts(pdf)
    last_pages = {s - 1 for s in starts[1:]} | {len(pdf.pages)}
    nearly_empty = {n: round(filled_fraction(page), 2) for n, page in enumerate(pdf.pages, 1)
                    if n not in last_pages and filled_fraction(page) < 0.25}
    assert not nearly_empty, f"pages less than a quarter full (page: fraction): {nearly_empty}"
    # the last page of a part may be short, but never a leftover line or two
    leftovers = {n: round(filled_fraction(pdf.pages[n - 1]), 2) for n in last_pages
                 if filled_fraction(pdf.pages[n - 1]) < 0.06}
    assert not leftovers, f"last pages of a part holding only a line or two: {leftovers}"


@pytest.mark.slow
def test_at_most_40_pages(pdf):
    assert len(pdf.pages) <= 40, len(pdf.pages)


def headings():
    """Every heading of the notebook and every section title of the theory."""
    nb = nbformat.read(REPO / "exercise_sheet.ipynb", as_version=4)
    found = [line.lstrip("#").strip() for c in nb.cells if c.cell_type == "markdown"
             for line in c.source.splitlines() if line.startswith("#")]
    tex = (REPO / "theory" / "theory.tex").read_text(encoding="utf-8")
    found += re.findall(r"\\(?:sub)*section\*?\{(.+?)\}\s*$", tex, flags=re.M)
    return found


def section_references():
    """(where, name) of every reference to a section by name, in the theory and the notebook."""
    refs = []
    tex = (REPO / "theory" / "theory.tex").read_text(encoding="utf-8")
    refs += [("theory.tex", " ".join(m.split())) for m in re.findall(r"section ``(.+?)''", tex, flags=re.S)]
    nb = nbformat.read(REPO / "exercise_sheet.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        refs += [(f"notebook cell {i + 1}", m) for m in re.findall(r'section "([^"]+)"', cell.source)]
    return refs


def test_every_cross_reference_names_a_section_that_exists():
    names = headings()
    refs = section_references()
    assert refs, "no references found: the pattern no longer matches the text"
    dangling = [(where, name) for where, name in refs if not any(h.startswith(name) for h in names)]
    assert not dangling, f"references to sections that do not exist: {dangling}"
    tex = (REPO / "theory" / "theory.tex").read_text(encoding="utf-8")
    assert "Beyond the sheet" not in tex




def answer_links(pdf):
    """{sub-question: [target page (1-based), ...]} of the links on the "Answers at a glance" page."""
    from pypdf import PdfReader

    index = next(i for i, page in enumerate(pdf.pages) if "Answers at a glance" in (page.extract_text() or "")
                 and i > 0)
    page = pdf.pages[index]
    labels = [w for w in page.extract_words() if re.fullmatch(r"\d\([a-z]\)|\d", w["text"]) and w["x0"] < 90]
    destinations = PdfReader(pdf.stream).named_destinations
    links = {}
    for annot in page.annots:
        target = annot["data"].get("A", {}).get("D")
        if target is None:
            continue
        name = target.decode() if isinstance(target, bytes) else str(target)
        row = min(labels, key=lambda w: abs(w["top"] - annot["top"]))
        assert abs(row["top"] - annot["top"]) < 4, f"a link at y={annot['top']:.0f} is in no answer's row"
        links.setdefault(row["text"], []).append(PdfReader(pdf.stream).get_destination_page_number(
            destinations[name]) + 1)
    return links


@pytest.mark.slow
def test_answer_page_links_every_sub_question_to_where_it_is_worked_out(pdf):
    links = answer_links(pdf)
    assert sorted(links) == sorted(SUB_QUESTIONS)
    for key, pages in links.items():
        # (without spaces: pdfplumber does not always see the narrow spaces between words)
        texts = ["".join((pdf.pages[p - 1].extract_text() or "").split()) for p in pages]
        # the notebook page shows the answer box ...
        assert any(f"Answer{key}." in t for t in texts), (key, pages)
        # ... and for the theory questions, a theory page shows the sub-question's heading
        if key in ("1(a)", "1(b)", "1(c)", "3(a)", "3(d)", "3(e)", "5"):
            heading = f"Exercise{key}" if key.isdigit() else key
            assert len(pages) == 2 and heading in texts[0] and f"Answer{key}." not in texts[0], (key, pages)


def heading_position(pdf, text):
    """(page index, top as a fraction of the page height) of the first line starting with `text`,
    after the title page (whose contents list every heading)."""
    for index, page in enumerate(pdf.pages[1:], 1):
        for line in (page.extract_text_lines() or []):
            if line["text"].startswith(text):
                return index, line["top"] / page.height
    raise AssertionError(f"no line starts with {text!r}")


@pytest.mark.slow
def test_the_section_beyond_2c_takes_at_most_two_pages(pdf):
    start_page, start = heading_position(pdf, "Beyond 2(c): the general truth direction")
    end_page, end = heading_position(pdf, "3 Log-sum-exp and soft(arg)max")
    assert (end_page + end) - (start_page + start) <= 2.0
