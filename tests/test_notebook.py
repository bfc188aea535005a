"""The executed notebook (from the end-to-end export): it ran, and its numbers are the data's."""

import re

import nbformat
import pytest

pytestmark = pytest.mark.slow


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


def all_output_text(nb):
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def test_every_cell_ran_without_error(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


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
    cross = table_with(nb, "fraction called true")
    assert len(cross) == 4
    unreg, l2, both_unreg, both_l2 = (by_first_column(t) for t in cross)
    for t in (unreg, l2):
        assert mean(t["cities (test split)"]["accuracy"]) >= 0.98
        assert mean(t["sp_en_trans"]["AUROC"]) >= 0.99       # topic: generalises
        assert mean(t["neg_cities"]["fraction called true"]) <= 0.05   # negation: all "false"
        assert mean(t["neg_sp_en_trans"]["AUROC"]) <= 0.05   # ... with inverted ranking
    assert mean(l2["sp_en_trans"]["accuracy"]) >= 0.97
    for t in (both_unreg, both_l2):
        assert mean(t["sp_en_trans"]["accuracy"]) >= 0.97
        assert mean(t["neg_sp_en_trans"]["accuracy"]) >= 0.85
        assert mean(t["neg_sp_en_trans"]["AUROC"]) >= 0.97


def test_numbers_quoted_in_prose_were_printed(nb):
    """Every decimal number the markdown quotes (e.g. 0.893 ± 0.036) appears in some output."""
    printed = all_output_text(nb)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for number in re.findall(r"(?<![\w.])\d+\.\d{2,}(?:e-\d+)?|\d+\.\d+(?= ± )|(?<=± )\d+\.\d+", cell.source):
            assert number in printed, f"{number!r} quoted in prose but never printed:\n{cell.source[:200]}"


def test_4_parameter_counts_from_the_models(nb):
    text = all_output_text(nb)
    assert "total: 81 parameters" in text      # 2->20->1: 2*20 + 20 + 20 + 1
    assert "total: 111 parameters" in text     # 2->5->5->5->5->1


def test_5_shallow_nets_reach_the_maximum_and_grid_is_a_lower_bound(nb):
    text = all_output_text(nb)
    assert "maximum for one hidden layer with n = 20 neurons: 1 + n + C(n, 2) = 211" in text
    assert "shallow nets with exactly 211 regions in [-R,R]^2: 5 of 5" in text
    per_seed = [t for t in tables(nb) if "grid lower bound" in t[0] and "seed" in t[0]][0]
    for row in per_seed:
        if row["seed"] == "":
            continue  # the mean ± std rows
        assert int(row["grid lower bound"]) <= int(row["regions in [-10,10]²"])
        assert int(row["affine pieces in [-10,10]²"]) <= int(row["regions in [-10,10]²"])
        if row["architecture"].startswith("shallow"):
            assert int(row["regions in [-R,R]²"]) == 211


def test_3_tie_rule_and_stable_lse(nb):
    text = all_output_text(nb)
    assert "z1 vs z2: identical = True" in text and "z1 vs z3: identical = False" in text
    assert "float32, lambda=100: naive lse has 17922 inf" in text  # overflow of the textbook formula
    assert "stable lse in float32: 0 non-finite values" in text
