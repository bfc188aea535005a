"""Fitting in the row space of the training matrix (sheet05.rowspace) and the progress line."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sheet05.progress import progress
from sheet05.rowspace import RowSpace


def data(n=60, d=300, seed=0, repeated=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.3 * rng.normal(size=d)   # a common offset, as activations have
    X[n - repeated:] = X[:repeated]                           # repeated rows: rank < n
    y = (X @ rng.normal(size=d) + rng.normal(scale=5.0, size=n) > 0).astype(int)
    return X, y


def row_space_fit(C, tol, X, y, rows=None, dtype=np.float64):
    rows = np.arange(len(y)) if rows is None else rows
    return RowSpace(X).fit(LogisticRegression(C=C, tol=tol, max_iter=10_000), rows, y[rows], dtype=dtype)


@pytest.mark.parametrize("repeated", [0, 7])
def test_same_classifier_as_in_the_full_space(repeated):
    """With an L2 penalty the optimum is unique: both fits find it (to the tolerance)."""
    X, y = data(repeated=repeated)
    full = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    rows = row_space_fit(1.0, 1e-10, X, y)
    assert rows.coef_.shape == full.coef_.shape == (1, X.shape[1])
    assert np.allclose(rows.coef_, full.coef_, rtol=0, atol=1e-7 * np.abs(full.coef_).max())
    assert np.allclose(rows.intercept_, full.intercept_, atol=1e-7)
    X_new, _ = data(n=20, seed=1)
    assert np.allclose(rows.decision_function(X_new), full.decision_function(X_new), atol=1e-6)


def test_a_subset_of_rows_in_the_basis_of_all_rows():
    """The basis spans every row (training and test); a fit on the training rows alone is the
    fit on X[train] (L2: a unique optimum) and scores the held-out rows alike."""
    X, y = data(n=80, repeated=4)
    train, test = np.arange(0, 80, 2), np.arange(1, 80, 2)
    full = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X[train], y[train])
    rows = row_space_fit(0.5, 1e-10, X, y, rows=train)
    assert np.allclose(rows.coef_, full.coef_, rtol=0, atol=1e-7 * np.abs(full.coef_).max())
    assert np.allclose(rows.decision_function(X[test]), full.decision_function(X[test]), atol=1e-6)


def test_same_path_when_unregularised():
    """Without a penalty there is no optimum (n < d: separable); the iterates are the same, so
    the returned weights agree as long as both stop after the same number of iterations."""
    X, y = data()
    full = LogisticRegression(C=np.inf, tol=1e-4, max_iter=10_000).fit(X, y)
    rows = row_space_fit(np.inf, 1e-4, X, y)
    assert full.score(X, y) == rows.score(X, y) == 1.0
    if rows.n_iter_[0] == full.n_iter_[0]:
        assert np.allclose(rows.coef_, full.coef_, rtol=1e-6, atol=1e-9)
    assert abs(int(rows.n_iter_[0]) - int(full.n_iter_[0])) <= 0.5 * full.n_iter_[0]


def test_coordinates_keep_inner_products_and_weights_lie_in_the_row_space():
    X, y = data(repeated=5)
    space = RowSpace(X.astype(np.float32))
    assert space.rank == X.shape[0] - 5                       # repeated rows add no dimension
    Z = space.coordinates(np.arange(len(X)))
    assert np.allclose(Z @ Z.T, X @ X.T, rtol=0, atol=1e-8 * np.abs(X @ X.T).max())
    model = row_space_fit(10.0, 1e-4, X.astype(np.float32), y, dtype=np.float32)
    coef, *_ = np.linalg.lstsq(X.T, model.coef_.ravel(), rcond=None)
    assert np.allclose(X.T @ coef, model.coef_.ravel(), atol=1e-8 * np.abs(model.coef_).max())
    assert model.score(X.astype(np.float32), y) > 0.9


def test_refuses_a_matrix_with_as_many_rows_as_columns():
    with pytest.raises(ValueError, match="fewer rows than columns"):
        RowSpace(np.eye(5))


def test_progress_prints_one_line_per_step_outside_jupyter(capsys, monkeypatch):
    monkeypatch.delenv("SHEET05_EXPORT", raising=False)
    assert list(progress(iter("abc"), "demo", total=3)) == ["a", "b", "c"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["demo: 1/3", "demo: 2/3"] and lines[2].startswith("demo: 3/3 in ")


def test_progress_shows_nothing_when_exporting(capsys, monkeypatch):
    monkeypatch.setenv("SHEET05_EXPORT", "1")
    assert list(progress([1, 2], "demo")) == [1, 2]
    assert capsys.readouterr().out == ""
