"""The executed notebook (from the end-to-end export): it ran, its numbers are the data's, and
its text quotes only numbers that the code printed, on this machine's BLAS and on another one."""

import os
import platform
import re
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

SUB_QUESTIONS = ["1(a)", "1(b)", "1(c)", "2(a)", "2(b)", "2(c)", "3(a)", "3(b)", "3(c)", "3(d)", "3(e)",
                 "4(a)", "4(b)", "4(c)", "4(d)", "5"]


@pytest.fixture(scope="module")
def nb(exported):
    repo, result = exported
    assert result.returncode == 0, result.stderr[-3000:]
    return nbformat.read(repo / "build" / "exercise_sheet.executed.ipynb", as_version=4)


def tables(nb):
    """Every table the notebook displayed, as a list of {column: cell} rows."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md and md.startswith("|"):
                lines = [l.strip().strip("|").split("|") for l in md.strip().splitlines()]
                header = [h.strip() for h in lines[0]]
                found.append([dict(zip(header, (c.strip() for c in row))) for row in lines[2:]])
    return found


def table_with(nb, column):
    matches = [t for t in tables(nb) if column in t[0]]
    assert matches, f"no table with column {column!r}"
    return matches


def mean(cell: str) -> float:
    return float(cell.split("±")[0])


def by_first_column(table):
    return {next(iter(row.values())): row for row in table}


def is_prose(cell):
    return "prose" in cell.metadata.get("tags", [])


def output_text(cells):
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def all_output_text(nb):
    return output_text(c for c in nb.cells if c.cell_type == "code")


# A number as printed: digits, optional decimals, optional exponent (a whole token, not part of one).
TOKEN = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]\d+)?")
# A quoted result: at least two decimals, an exponent, a percentage with decimals, or a number
# either side of ± (LaTeX: \pm). Small integers and one-decimal numbers are too common to test.
RESULT = re.compile(r"\d+\.\d{2,}(?:e[-+]\d+)?|\d+(?:\.\d+)?e[-+]\d+|\d+\.\d+(?= ?%)|\d+\.\d+(?= ?\\?(?:±|pm) )"
                    r"|(?<=± )\d+\.\d+|(?<=\\pm )\d+\.\d+")
INLINE_CODE = re.compile(r"`[^`]*`")  # settings such as `tol=1e-6` are inputs, not results


def quoted_results(text):
    """The results (see RESULT) that `text` quotes, as whole tokens."""
    text = INLINE_CODE.sub("", text)
    return [m.group() for m in TOKEN.finditer(text)
            if (r := RESULT.match(text, m.start())) and r.end() == m.end()]


def numbers_not_printed(nb):
    """Numbers quoted by the text (markdown cells and the generated prose) that no other output shows."""
    printed = set(TOKEN.findall(output_text(c for c in nb.cells if c.cell_type == "code" and not is_prose(c))))
    missing = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = cell.source
        elif is_prose(cell):
            text = output_text([cell])
        else:
            continue
        missing += [(n, text[:120]) for n in quoted_results(text) if n not in printed]
    return missing


def test_every_cell_ran_without_error(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


def test_numbers_quoted_in_the_text_were_printed(nb):
    """Every number the text quotes (e.g. 0.893 ± 0.036) appears in a table or printed output."""
    quoted = [n for cell in nb.cells if is_prose(cell) for n in quoted_results(output_text([cell]))]
    assert len(quoted) > 100, "the prose should quote the computed numbers"
    assert numbers_not_printed(nb) == []


def test_every_sub_question_has_one_answer(nb):
    keys = [out["metadata"]["sheet05_answer"]["key"] for c in nb.cells for out in c.get("outputs", [])
            if "sheet05_answer" in out.get("metadata", {})]
    assert sorted(keys) == sorted(SUB_QUESTIONS)


def test_figures_are_vector_graphics_rendered_once(nb):
    """The export renders every figure once, as PDF (vector); no raster copy is made."""
    kinds = [set(out.get("data", {})) for cell in nb.cells for out in cell.get("outputs", [])
             if {"application/pdf", "image/png"} & set(out.get("data", {}))]
    assert len(kinds) >= 10
    assert all("application/pdf" in k and "image/png" not in k for k in kinds)


def test_2a_separable_and_generalising(nb):
    t = by_first_column(table_with(nb, "test acc.")[0])
    assert set(t) == {"cities", "neg_cities", "sp_en_trans", "neg_sp_en_trans"}
    for row in t.values():
        assert mean(row["train acc."]) == 1.0
        assert mean(row["test acc."]) >= 0.98
        assert row["converged"] == "5/5"
    assert t["cities"]["train / test"] == "1196 / 300" and t["sp_en_trans"]["train / test"] == "283 / 71"


def test_2a_controls(nb):
    t = by_first_column(table_with(nb, "shuffled: test acc.")[0])
    for row in t.values():
        assert mean(row["shuffled: train acc."]) >= 0.98   # any labelling can be fitted ...
        assert 0.35 <= mean(row["shuffled: test acc."]) <= 0.65   # ... but does not generalise
        assert mean(row["top-2 PCs: train acc."]) >= 0.99   # separable with n >> k+1


def test_2a_tolerance_sweep_weights_grow(nb):
    t = table_with(nb, "train log-loss")[0]
    norms = [float(r["‖w‖"]) for r in t]
    losses = [float(r["train log-loss"]) for r in t]
    assert norms == sorted(norms) and norms[-1] > 5 * norms[0]
    assert losses == sorted(losses, reverse=True)


def test_2b_and_2c_generalisation(nb):
    cross = table_with(nb, "called true, C=∞")
    assert len(cross) == 2
    cities, both = (by_first_column(t) for t in cross)
    for c in ("C=∞", "C=1"):
        assert mean(cities["cities (test split)"][f"accuracy, {c}"]) >= 0.98
        assert mean(cities["sp_en_trans"][f"AUROC, {c}"]) >= 0.99       # topic: generalises
        assert mean(cities["neg_cities"][f"called true, {c}"]) <= 0.05   # negation: all "false"
        assert mean(cities["neg_sp_en_trans"][f"AUROC, {c}"]) <= 0.05   # ... with inverted ranking
        assert mean(both["sp_en_trans"][f"accuracy, {c}"]) >= 0.97
        assert mean(both["neg_sp_en_trans"][f"accuracy, {c}"]) >= 0.85
        assert mean(both["neg_sp_en_trans"][f"AUROC, {c}"]) >= 0.97
    assert mean(cities["sp_en_trans"]["accuracy, C=1"]) >= 0.97


def test_4_parameter_counts_from_the_models(nb):
    text = all_output_text(nb)
    assert "total: 81 parameters" in text      # 2->20->1: 2*20 + 20 + 20 + 1
    assert "total: 111 parameters" in text     # 2->5->5->5->5->1


def test_5_shallow_nets_reach_the_maximum_and_grid_is_a_lower_bound(nb):
    text = all_output_text(nb)
    assert "maximum for one hidden layer with n = 20 neurons: 1 + n + C(n, 2) = 211" in text
    assert "shallow nets with exactly 211 regions in [-R,R]^2: 5 of 5" in text
    per_seed = [t for t in tables(nb) if "grid lower bound" in t[0] and "seed" in t[0]][0]
    assert len(per_seed) == 12  # 5 seeds and the mean of each net
    for row in per_seed:
        if row["seed"] == "mean ± std":
            continue
        assert int(row["grid lower bound"]) <= int(row["regions in [-10,10]²"])
        assert int(row["affine pieces in [-10,10]²"]) <= int(row["regions in [-10,10]²"])
        if row["net"] == "shallow":
            assert int(row["regions in [-R,R]²"]) == 211


def test_3_tie_rule_and_stable_lse(nb):
    text = all_output_text(nb)
    assert "z¹ vs z² identical: True" in text and "z¹ vs z³ identical: False" in text
    assert "float32, λ=100: naive lse has 17922 inf" in text  # overflow of the textbook formula
    assert "float32, λ=100: stable lse has 0 non-finite values" in text


# --------------------------------------------------------------------------- another BLAS kernel


def openblas_core(env) -> str:
    """The core type OpenBLAS (numpy's) picks in a Python started with `env`."""
    code = ("import numpy, threadpoolctl; print(*{i['architecture'] for i in threadpoolctl.threadpool_info() "
            "if i.get('internal_api') == 'openblas'})")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def other_core_type(default: str) -> str:
    """A core type this CPU can run that differs from the one OpenBLAS picks by itself."""
    if platform.machine() in ("x86_64", "AMD64"):
        return "Haswell" if default != "Haswell" else "Sandybridge"
    return "ARMV8" if default != "ARMV8" else "NEOVERSEN1"


@pytest.fixture(scope="module")
def nb_other_blas(tmp_path_factory, course_data):
    """The notebook executed in a fresh kernel with OpenBLAS forced to another core type."""
    from sheet05 import export

    default = openblas_core({k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"})
    other = other_core_type(default)
    env = dict(os.environ, OPENBLAS_CORETYPE=other, SHEET05_EXPORT="1")
    assert openblas_core(env).lower() == other.lower(), f"OpenBLAS ignored OPENBLAS_CORETYPE={other}"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("OPENBLAS_CORETYPE", "SHEET05_EXPORT"):
            mp.setenv(key, env[key])  # the kernel inherits the environment of this process
        nb = export.execute_notebook(REPO / "exercise_sheet.ipynb", tmp_path_factory.mktemp("blas") / "nb.ipynb")
    return default, other, nb


def test_text_matches_the_output_under_another_blas_kernel(nb_other_blas, nb):
    """The text quotes the numbers printed in the same run, whatever the BLAS kernel did to them."""
    default, other, nb_other = nb_other_blas
    assert default.lower() != other.lower()
    assert numbers_not_printed(nb_other) == []
    test_every_sub_question_has_one_answer(nb_other)
