"""The names on the title page: no submission with placeholder or missing names. The export
stops before it starts (submission.pdf untouched) and says how to set them; --draft builds
draft.pdf, marked DRAFT, instead."""

import hashlib
import re
import shlex
import subprocess

import pytest

from conftest import REPO, committed_text, copy_of_repo
from sheet05 import authors, export


def test_the_shipped_authors_file_holds_placeholders(tmp_path):
    (tmp_path / "authors.txt").write_text(committed_text("authors.txt"), encoding="utf-8")
    names = authors.read_authors(str(tmp_path / "authors.txt"))
    assert len(names) == 2 and all(authors.is_placeholder(n) for n in names)


@pytest.mark.parametrize("names", [["First Member", "Second Member"], ["Ada Lovelace", "second  member"],
                                   ["", "Alan Turing"], ["Ada Lovelace", "   "], ["Your Name", "Your Partner's Name"],
                                   ["<your name>", "Alan Turing"], ["Ada Lovelace"], ["A B", "C D", "E F"]])
def test_placeholder_empty_or_miscounted_names_are_refused(names):
    with pytest.raises(authors.AuthorsError, match="authors.txt") as err:
        authors.check_names(names)
    assert "--authors" in str(err.value) and "--draft" in str(err.value)


def test_names_from_the_file_and_from_the_option(tmp_path):
    f = tmp_path / "authors.txt"
    f.write_text("# comment\nMarie Curie\n\nPierre Curie\n", encoding="utf-8")
    assert authors.check_names(path=str(f)) == ["Marie Curie", "Pierre Curie"]
    assert authors.check_names(["Ada Lovelace", "Alan Turing"], path=str(f)) == ["Ada Lovelace", "Alan Turing"]
    f.write_text("First Member\nSecond Member\n", encoding="utf-8")
    with pytest.raises(authors.AuthorsError, match="placeholder"):
        authors.check_names(path=str(f))
    assert authors.check_names(path=str(f), draft=True) == ["First Member", "Second Member"]
    assert authors.check_names(["", "Alan Turing"], draft=True) == ["Alan Turing", "Second Member"]
    (tmp_path / "authors.txt").unlink()
    with pytest.raises(authors.AuthorsError, match="missing"):
        authors.check_names(path=str(f))


def shipped_copy(tmp_path):
    """A copy of the repository as a student gets it, with an old submission.pdf in it."""
    repo = copy_of_repo(tmp_path / "repo")
    (repo / "authors.txt").write_text(committed_text("authors.txt"), encoding="utf-8")
    (repo / "submission.pdf").write_bytes(b"%PDF-1.5 the last good submission\n")
    return repo, hashlib.sha256((repo / "submission.pdf").read_bytes()).hexdigest()


def readme_first_command():
    """The first command of the README's first shell block, as a student would copy it."""
    block = re.search(r"```(?:bash|sh)\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return next(line for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("command", ["README", "./export.sh", './export.sh --authors "First Member" "Second Member"',
                                     './export.sh --authors "" "Alan Turing"'])
def test_export_with_placeholder_names_stops_at_once_and_keeps_the_pdf(tmp_path, command):
    repo, before = shipped_copy(tmp_path)
    if command == "README":
        command = readme_first_command()
        assert command.startswith("./export.sh"), command
    result = subprocess.run(shlex.split(command), cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no names for the title page" in result.stderr and "authors.txt" in result.stderr
    assert "--draft" in result.stderr
    assert "[1/7]" not in result.stdout          # stopped before the set-up
    assert hashlib.sha256((repo / "submission.pdf").read_bytes()).hexdigest() == before
    assert "submission.pdf was left as it was" in result.stderr
    assert not (repo / "draft.pdf").exists()


def test_a_first_export_without_names_says_no_pdf_was_written(tmp_path):
    """Before the first build there is no submission.pdf to keep: the message says so."""
    repo, _ = shipped_copy(tmp_path)
    (repo / "submission.pdf").unlink()
    result = subprocess.run(["./export.sh"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "No submission.pdf was written (there is none yet)." in result.stderr
    assert "left as it was" not in result.stderr and not (repo / "submission.pdf").exists()


def test_setup_only_needs_no_names():
    from sheet05 import setup

    assert setup.parse_args(["--setup-only"])["draft"] is False
    assert setup.names_problem({"authors": None, "draft": True}) is None
    assert "placeholder" in setup.names_problem({"authors": ["First Member", "Second Member"], "draft": False})


def test_export_main_refuses_placeholders_and_draft_goes_to_draft_pdf(monkeypatch, tmp_path, capsys):
    """export.py itself (run without export.sh) refuses too; --draft builds draft.pdf, DRAFT."""
    built = []
    monkeypatch.setattr(export, "build", lambda names, output, **kw: built.append((names, output, kw)) or output)
    monkeypatch.setattr(export, "AUTHORS_FILE", tmp_path / "authors.txt")
    monkeypatch.setattr(export, "OUTPUT", tmp_path / "submission.pdf")
    (tmp_path / "authors.txt").write_text("First Member\nSecond Member\n", encoding="utf-8")
    assert export.main([]) == 1 and not built
    assert "No submission.pdf was written (there is none yet)." in capsys.readouterr().err
    (tmp_path / "submission.pdf").write_bytes(b"%PDF-1.5 the last good one\n")
    assert export.main([]) == 1 and not built
    assert "submission.pdf was left as it was" in capsys.readouterr().err
    assert export.main(["--draft"]) == 0
    names, output, kw = built[-1]
    assert output == export.DRAFT_OUTPUT and output.name == "draft.pdf" and kw["draft"] is True
    assert export.main(["--authors", "Ada Lovelace", "Alan Turing"]) == 0
    assert built[-1][1] == export.OUTPUT and built[-1][2]["draft"] is False


def test_a_draft_says_so_on_its_title_page(tmp_path):
    from test_export import pdftotext

    tex = tmp_path / "part.tex"
    tex.write_text("\\documentclass{article}\\begin{document}Body.\\end{document}\n")
    part = export.Part("Part I: Theory", export.run_latexmk(tex))
    draft = export.assemble([part], ["First Member", "Second Member"], tmp_path / "draft", draft=True)
    assert "DRAFT" in pdftotext(draft, "-f", "1", "-l", "1")
    final = export.assemble([part], ["Ada Lovelace", "Alan Turing"], tmp_path / "final")
    assert "DRAFT" not in pdftotext(final, "-f", "1", "-l", "1")
