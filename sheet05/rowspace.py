"""Fitting linear classifiers in the row space of a data matrix, when it has fewer rows than
columns (n < d: 1496 statements, 4096 activations)."""

from __future__ import annotations

import numpy as np

__appendix__ = ["__doc__", "RowSpace"]


class RowSpace:
    """The rows of a data matrix X (n x d, n < d) in an orthonormal basis of its row space:
    X = Z Q^T, with Q (d x r) orthonormal and Z (n x r), r = rank(X) <= n.

    Why a fit on Z is the fit on X. The gradient of a logistic loss on any subset of X's rows
    is X_S^T (residuals), so from w = 0 every L-BFGS iterate stays in the row space of X:
    w = Q b, X w = Z b and ||w|| = ||b||. L-BFGS uses only inner products of gradients and
    steps, which Q preserves, so a fit on Z[rows] takes the same path as on X[rows], at about
    r/d of the cost per iteration; the L2 penalty ||w||^2 = ||b||^2 is the same too. Only the
    stopping test differs: it bounds the largest gradient component, which a rotation changes,
    so an unregularised fit may stop one iteration earlier or later. The basis spans all n
    rows (training and test): that changes nothing, as the training rows' span lies in it.

    How. Z is the pivoted Cholesky factor of the Gram matrix X X^T = Z Z^T (LAPACK dpstrf, which
    also finds the rank when rows are repeated), computed once per data matrix and shared by
    all its splits; Q^T = L1^{-1} X[basis_rows], with L1 the leading r x r block of the factor.
    """

    def __init__(self, X: np.ndarray):
        from scipy.linalg import lapack

        self.X = X                                      # kept as given (float32 activations)
        n, d = X.shape
        if n >= d:
            raise ValueError(f"RowSpace needs fewer rows than columns, got X of shape {X.shape}")
        X64 = np.asarray(X, dtype=np.float64)
        factor, piv, rank, info = lapack.dpstrf(X64 @ X64.T, lower=1, overwrite_a=True)
        if info < 0:
            raise ValueError(f"dpstrf failed (argument {-info})")
        # Row piv[i] - 1 of X has coordinates L[i] (dpstrf counts from 1); rows past the rank
        # are combinations of the first `rank` ones, so L is n x rank.
        self._L = np.tril(factor)[:, :rank]
        self._position = np.argsort(piv - 1)           # X's row i is L's row _position[i]

    @property
    def rank(self) -> int:
        return self._L.shape[1]

    def coordinates(self, rows) -> np.ndarray:
        """Z[rows]: the coordinates of rows `rows` of X (a copy, float64)."""
        return self._L[self._position[rows]]

    def to_features(self, b: np.ndarray) -> np.ndarray:
        """Q b: coordinates b (r, or k x r) as vectors of the d-dimensional feature space."""
        from scipy.linalg import solve_triangular

        b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        # Q = X[basis]^T L1^{-T}, with basis the rows of X behind L's leading r x r block L1
        u = np.zeros((b.shape[0], self.X.shape[0]))
        basis = np.argsort(self._position)[:self.rank]
        u[:, basis] = solve_triangular(self._L[:self.rank], b.T, lower=True, trans="T").T
        # u X in float64, 256 rows at a time: no float64 copy of the whole of X is kept
        w = np.zeros((b.shape[0], self.X.shape[1]))
        for start in range(0, self.X.shape[0], 256):
            w += u[:, start:start + 256] @ self.X[start:start + 256].astype(np.float64)
        return w

    def fit(self, model, rows, y, dtype=np.float64):
        """Fit `model` (scikit-learn's LogisticRegression, unregularised or L2) on the rows
        `rows` of X through their coordinates Z[rows] (in `dtype`); return it with `coef_` in
        the d feature dimensions, ready to score rows of X or of any other d-column matrix."""
        model.fit(self.coordinates(rows).astype(dtype, copy=False), y)
        model.coef_ = self.to_features(model.coef_)
        model.n_features_in_ = self.X.shape[1]
        return model
