"""Log-sum-exp, soft(arg)max and the sheet's one-hot argmax (exercise 3).

Definitions of the exercise sheet, for z in R^K and lambda > 0:

    lse(z; lam)             = (1/lam) * log(sum_j exp(lam * z_j))
    soft(arg)max(z; lam)_k  = exp(lam * z_k) / sum_j exp(lam * z_j)

The textbook formulas overflow as soon as lam * z_j exceeds the largest
exponent of the float type (about 88.7 in float32, 709.8 in float64).  The
stable versions subtract the maximum m = max_j lam * z_j first:

    log(sum_j exp(lam z_j)) = m + log(sum_j exp(lam z_j - m)),

where every exponent is <= 0 and the largest term is exp(0) = 1, so neither
overflow nor log(0) can occur.  scipy.special.logsumexp / softmax do exactly
this.  All functions work along ``axis`` of an array of any shape and keep the
floating dtype of the input (float32 stays float32, integers become float64).
"""
import numpy as np
from scipy.special import logsumexp as _logsumexp
from scipy.special import softmax as _softmax

__all__ = ["lse", "lse_naive", "softmax", "softmax_naive", "onehot_argmax"]
# What the appendix of the PDF prints (the textbook versions are only shown failing).
__appendix__ = ["_prepare", "lse", "softmax", "onehot_argmax"]


def _prepare(z, lam):
    """Float array lam * z (dtype of z if floating, else float64); lam must be > 0."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    if not np.isscalar(lam) and np.ndim(lam) != 0:
        raise ValueError("lam must be a scalar")
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam!r}")
    return z, z.dtype.type(lam) * z


def lse(z, lam=1.0, axis=-1):
    """Numerically stable lse(z; lam) = log(sum_j exp(lam z_j)) / lam along `axis`.

    Finite for every finite input; max(z) <= lse(z; lam) <= max(z) + log(K)/lam.
    """
    z, lz = _prepare(z, lam)
    return (_logsumexp(lz, axis=axis) / z.dtype.type(lam)).astype(z.dtype, copy=False)


def lse_naive(z, lam=1.0, axis=-1):
    """Textbook lse: log(sum(exp(lam z))) / lam.  For comparison only.

    Overflows to inf once lam * z_j > ~88.7 (float32) or ~709.8 (float64) for
    some j (NumPy then emits a RuntimeWarning; wrap the call in
    ``np.errstate(over="ignore")`` to silence it).
    """
    z, lz = _prepare(z, lam)
    return np.log(np.sum(np.exp(lz), axis=axis)) / z.dtype.type(lam)


def softmax(z, lam=1.0, axis=-1):
    """Numerically stable soft(arg)max(z; lam) along `axis` (components sum to 1)."""
    z, lz = _prepare(z, lam)
    return _softmax(lz, axis=axis).astype(z.dtype, copy=False)


def softmax_naive(z, lam=1.0, axis=-1):
    """Textbook exp(lam z_k) / sum_j exp(lam z_j); gives nan (inf/inf) on overflow."""
    z, lz = _prepare(z, lam)
    e = np.exp(lz)
    return e / np.sum(e, axis=axis, keepdims=True)


def onehot_argmax(z1, z2):
    """One-hot argmax of (z1, z2) with the sheet's tie rule; shape (..., 2).

    Returns (1, 0) where z1 > z2 and (0, 1) otherwise, i.e. ALSO on ties
    z1 == z2 (and, since the comparison is then False, for nan input).
    Note: ``np.argmax`` breaks ties the other way: it returns the first
    maximal index, i.e. (1, 0) on a tie.
    """
    first = np.greater(z1, z2)
    return np.stack([first, ~first], axis=-1).astype(np.float64)
