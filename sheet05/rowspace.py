"""Fitting a linear classifier in the row space of its training matrix, when n < d."""

from __future__ import annotations

import numpy as np

__appendix__ = ["__doc__", "fit_in_row_space"]


def fit_in_row_space(model, X, y, dtype=None):
    """Fit `model` (scikit-learn's LogisticRegression, unregularised or L2) on the n x d matrix
    `X` with n < d through n x r coordinates, r = rank(X) <= n; return it with `coef_` in the
    original d dimensions.

    The gradient of the loss is X^T (residuals), so from w = 0 every L-BFGS iterate stays in
    the row space of X; with an orthonormal basis Q (d x r) of it, w = Q b and X w = (X Q) b,
    and ||w|| = ||b||. L-BFGS only uses inner products of gradients and steps, which Q
    preserves, so fitting Z = X Q takes the same path at about r/d of the cost per iteration.
    Only its stopping test differs: it bounds the largest gradient component, which is not
    invariant under rotation, so the iteration count can differ a little, within `tol`.
    Z comes from the pivoted Cholesky factor of the Gram matrix X X^T = Z Z^T (LAPACK dpstrf),
    which also finds the rank when rows are repeated; Q^T = L1^{-1} X[piv[:r]], L1 the leading
    r x r block. `dtype`: that of Z for the fit (default: X's).
    """
    from scipy.linalg import lapack, solve_triangular

    X64 = np.asarray(X, dtype=np.float64)
    c, piv, rank, info = lapack.dpstrf(X64 @ X64.T, lower=1, overwrite_a=True)
    if info < 0:
        raise ValueError(f"dpstrf failed (argument {-info})")
    L = np.tril(c)[:, :rank]
    rows = piv[:rank] - 1                       # dpstrf counts from 1
    Z = np.empty_like(L)
    Z[piv - 1] = L                              # back in the order of X's rows: Z Z^T = X X^T
    model.fit(Z.astype(dtype or X.dtype), y)
    b = solve_triangular(L[:rank], model.coef_.T.astype(np.float64), lower=True, trans="T")
    model.coef_ = (b.T @ X64[rows]).reshape(1, -1)   # w = Q b = X[rows]^T L1^{-T} b
    model.n_features_in_ = X.shape[1]
    return model
