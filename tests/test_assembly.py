"""The merged submission PDF (sheet05.export.assemble): only the title, answers and contents are
typeset, the parts' pages are merged with pypdf. Checked on small parts: bookmarks, the links of
the contents and of the answers page, page labels, printed page numbers and the A4 format."""

import re
import subprocess

import pytest

from sheet05 import export

pypdf = pytest.importorskip("pypdf")

A4 = (595.28, 841.89)


def compile_part(folder, name, body, paper="a4paper"):
    tex = folder / f"{name}.tex"
    tex.write_text(f"\\documentclass[{paper}]{{article}}\\usepackage{{hyperref}}\\setcounter{{secnumdepth}}{{0}}"
                   f"\\begin{{document}}{body}\\end{{document}}\n", encoding="utf-8")
    return export.run_latexmk(tex)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assembly")
    theory = compile_part(tmp, "theory", "\\section{Exercise 1: first}\\subsection{1(a) sub}Theory one."
                                         "\\clearpage\\subsection{1(b) more}Theory two.")
    scan = compile_part(tmp, "scan", "Scanned page.", paper="letterpaper")
    notebook = compile_part(tmp, "notebook", "\\section{2 Notebook}Notebook one.\\clearpage"
                                             "\\subsection{2(a) fits}Notebook two.\\clearpage Notebook three "
                                             "\\href{https://example.org}{web link}.")
    parts = [export.Part("Part I: Theory", theory), export.Part("Handwritten notes: scan.pdf", scan),
             export.Part("Part II: Notebook", notebook)]
    for part in parts:
        part.entries = export.outline_entries(part.pdf)
    answers = ("\\clearpage\n\\typeout{SHEET05 answers start on page \\thepage}\n"
               "\\section*{Answers at a glance}\n"
               "\\begin{tabular}{ll}1(b) & \\partpage{part0}{2} \\\\ 2(a) & \\partpage{part2}{2}\\end{tabular}\n")
    pdf = export.assemble(parts, ["Ada Lovelace", "Alan Turing"], tmp / "assembled", answers)
    return pdf, parts


def page_text(pdf, n):
    return subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), "-layout", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


def link_targets(reader, index):
    """[(link text's top y, target page 1-based)] of the internal links on page `index` (0-based)."""
    names = reader.named_destinations
    found = []
    for annot in reader.pages[index].get("/Annots", []):
        annot = annot.get_object()
        action = annot.get("/A", {})
        if action.get("/S") == "/GoTo":
            found.append((float(annot["/Rect"][1]), reader.get_destination_page_number(names[str(action["/D"])]) + 1))
    return sorted(found, reverse=True)


def test_pages_are_the_front_matter_then_every_part_on_a4(merged):
    pdf, parts = merged
    reader = pypdf.PdfReader(pdf)
    # title and contents, answers, theory (2), scan (1), notebook (3)
    assert len(reader.pages) == 2 + 2 + 1 + 3
    for page in reader.pages:
        assert (round(float(page.mediabox.width), 2), round(float(page.mediabox.height), 2)) == A4
    assert "Ada Lovelace" in page_text(pdf, 1) and "Answers at a glance" in page_text(pdf, 2)
    assert "Theory one" in page_text(pdf, 3) and "Theory two" in page_text(pdf, 4)
    assert "Scanned page" in page_text(pdf, 5) and "Notebook three" in page_text(pdf, 8)


def test_every_part_page_shows_its_page_number(merged):
    pdf, _ = merged
    for n in range(2, 9):
        last_line = [line for line in page_text(pdf, n).splitlines() if line.strip()][-1]
        assert last_line.strip() == str(n), (n, last_line)


def test_page_labels_are_the_printed_numbers(merged):
    reader = pypdf.PdfReader(merged[0])
    assert reader.page_labels == [str(n) for n in range(1, len(reader.pages) + 1)]


def test_outline_has_the_answers_every_part_and_their_sections(merged):
    reader = pypdf.PdfReader(merged[0])

    def walk(items, level=0):
        out = []
        for item in items:
            if isinstance(item, list):
                out += walk(item, level + 1)
            else:
                out.append((level, str(item.title), reader.get_destination_page_number(item) + 1))
        return out

    assert walk(reader.outline) == [
        (0, "Answers at a glance", 2),
        (0, "Part I: Theory", 3), (1, "Exercise 1: first", 3), (2, "1(a) sub", 3), (2, "1(b) more", 4),
        (0, "Handwritten notes: scan.pdf", 5),
        (0, "Part II: Notebook", 6), (1, "2 Notebook", 6), (2, "2(a) fits", 7),
    ]
    assert reader.trailer["/Root"]["/PageMode"] == "/UseOutlines"
    assert reader.metadata["/Author"] == "Ada Lovelace, Alan Turing"


def test_contents_and_answers_link_to_the_right_pages(merged):
    pdf, _ = merged
    reader = pypdf.PdfReader(pdf)
    contents = page_text(pdf, 1)
    for title, page in [("Answers at a glance", 2), ("Part I: Theory", 3), ("1(b) more", 4),
                        ("Handwritten notes: scan.pdf", 5), ("2(a) fits", 7)]:
        assert re.search(rf"{re.escape(title)}[\s.]+{page}\b", contents), (title, contents)
    assert [page for _, page in link_targets(reader, 0)] == [2, 3, 3, 3, 4, 5, 6, 6, 7]
    # 1(b) is on page 2 of the theory (page 4), 2(a) on page 2 of the notebook (page 7)
    assert [page for _, page in link_targets(reader, 1)] == [4, 7]
    answers = page_text(pdf, 2)
    assert re.search(r"1\(b\)\s+4\b", answers) and re.search(r"2\(a\)\s+7\b", answers)


def test_links_into_a_part_are_dropped_web_links_kept(merged):
    reader = pypdf.PdfReader(merged[0])
    for page in reader.pages[2:]:
        for annot in page.get("/Annots", []):
            assert annot.get_object()["/A"]["/S"] == "/URI"
    assert any("/Annots" in page for page in reader.pages[5:])


def test_front_matter_is_typeset_again_when_its_length_changes(merged, tmp_path):
    """A wrong guess of where the parts start (here: a stale memo) is corrected."""
    _, parts = merged
    work = tmp_path / "assembled"
    work.mkdir()
    (work / "front-matter.json").write_text("[0, 5]")
    pdf = export.assemble(parts, ["Ada Lovelace", "Alan Turing"], work)
    reader = pypdf.PdfReader(pdf)
    assert len(reader.pages) == 1 + 6
    assert "Theory one" in page_text(pdf, 2)


def test_links_are_found_whatever_the_front_matter_names_them(tmp_path):
    """xdvipdfmx of TeX Live 2020 renames the destinations that links use to '0', '1', ...
    (2022 and newer keep hyperref's `page.N`); an explicit [page /XYZ ...] target is followed
    too. Every internal link of a front page then leads to `page.N` of the page it targets."""
    from pypdf.generic import (ArrayObject, DictionaryObject, FloatObject, NameObject, NullObject,
                               NumberObject, TextStringObject)

    writer = pypdf.PdfWriter()
    for _ in range(3):
        writer.add_blank_page(*A4)
    writer.add_named_destination("0", 2)  # the short name TeX Live 2020 gives page 3's anchor

    def link(target):
        return DictionaryObject({NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
                                 NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
                                 NameObject("/A"): DictionaryObject({NameObject("/S"): NameObject("/GoTo"),
                                                                     NameObject("/D"): target})})

    explicit = ArrayObject([writer.pages[1].indirect_reference, NameObject("/XYZ"), NullObject(),
                            FloatObject(800), NullObject()])
    writer.pages[0][NameObject("/Annots")] = ArrayObject([link(TextStringObject("0")), link(explicit)])
    writer.write(tmp_path / "front.pdf")
    front = pypdf.PdfReader(tmp_path / "front.pdf")
    page = front.pages[0]
    export._link_to_page_names(front, page)
    assert [str(a.get_object()["/A"]["/D"]) for a in page["/Annots"]] == ["page.3", "page.2"]

    page[NameObject("/Annots")] = ArrayObject([link(TextStringObject("nowhere"))])
    with pytest.raises(export.BuildError, match="'nowhere'"):
        export._link_to_page_names(front, page)
