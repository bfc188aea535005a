"""Tests for sheet05.lse (log-sum-exp, soft(arg)max, one-hot argmax; exercise 3)."""
import numpy as np
import pytest

from sheet05.lse import lse, lse_naive, onehot_argmax, softmax, softmax_naive

LAMBDAS = [0.1, 1.0, 10.0, 100.0]
# (dtype, relative tolerance for agreement with the naive formula)
DTYPES = [(np.float64, 1e-12), (np.float32, 1e-5)]


def random_vectors(seed, dtype, shape=(200, 5), scale=3.0):
    """Random test vectors from a local generator (no global RNG state)."""
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(shape)).astype(dtype)


# --------------------------------------------------------------------------- lse


@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_lse_equals_naive_where_naive_is_finite(dtype, rtol, lam):
    # |lam z| of order 30-100: the naive formula is mostly finite but overflows for some
    z = random_vectors(seed=0, dtype=dtype, scale=min(3.0, 30.0 / lam))
    with np.errstate(over="ignore"):
        naive = lse_naive(z, lam)
    stable = lse(z, lam)
    assert stable.dtype == dtype
    finite = np.isfinite(naive)
    assert finite.sum() > 0.5 * len(z)  # the comparison is not vacuous
    # the absolute scale of lse is ~max|z|, so compare relative to that
    scale = np.maximum(1.0, np.abs(z).max(axis=-1))
    np.testing.assert_array_less(np.abs(stable - naive)[finite], (rtol * scale)[finite])


@pytest.mark.parametrize("lam", LAMBDAS)
def test_lse_bounds_max_from_above(lam):
    z = random_vectors(seed=1, dtype=np.float64)
    K = z.shape[-1]
    m = z.max(axis=-1)
    val = lse(z, lam)
    assert np.all(val >= m - 1e-12)
    assert np.all(val <= m + np.log(K) / lam + 1e-12)


def test_lse_on_tie_is_max_plus_log2_over_lambda():
    for lam in LAMBDAS:
        assert lse([0.3, 0.3], lam) == pytest.approx(0.3 + np.log(2) / lam, rel=1e-14)


def test_lse_finite_where_naive_overflows_float32():
    # lam * z = 1000 > 88.7: exp overflows in float32
    z = np.array([10.0, 10.0], dtype=np.float32)
    with np.errstate(over="ignore"):
        assert np.isinf(lse_naive(z, 100.0))
    val = lse(z, 100.0)
    assert val.dtype == np.float32
    assert np.isfinite(val)
    assert val == pytest.approx(10.0 + np.log(2) / 100.0, rel=1e-6)


def test_lse_finite_where_naive_overflows_float64():
    # lam * z = 710 > 709.78 = log(float64 max)
    z = np.array([7.1, -3.0, 0.0])
    with np.errstate(over="ignore"):
        assert np.isinf(lse_naive(z, 100.0))
        assert np.isfinite(lse_naive(np.array([7.09, -3.0, 0.0]), 100.0))  # 709 still fits
    assert lse(z, 100.0) == pytest.approx(7.1, rel=1e-12)


def test_lse_axis_and_integer_input():
    z = np.arange(6).reshape(2, 3)
    np.testing.assert_allclose(lse(z, 1.0, axis=0), np.log(np.exp(z).sum(axis=0)), rtol=1e-14)
    assert lse(z, 1.0).dtype == np.float64


@pytest.mark.parametrize("lam", [0.0, -1.0, np.nan])
def test_nonpositive_lambda_rejected(lam):
    with pytest.raises(ValueError):
        lse([1.0, 2.0], lam)
    with pytest.raises(ValueError):
        softmax([1.0, 2.0], lam)


# --------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_softmax_sums_to_one_and_equals_naive_where_finite(dtype, rtol, lam):
    z = random_vectors(seed=2, dtype=dtype, scale=min(3.0, 30.0 / lam))
    s = softmax(z, lam)
    assert s.dtype == dtype
    assert np.all(np.isfinite(s)) and np.all(s >= 0)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=10 * rtol)
    with np.errstate(over="ignore", invalid="ignore"):
        naive = softmax_naive(z, lam)
    finite = np.all(np.isfinite(naive), axis=-1)
    assert finite.sum() > 0.5 * len(z)
    np.testing.assert_allclose(s[finite], naive[finite], rtol=10 * rtol, atol=1e-30)


def test_softmax_finite_where_naive_gives_nan():
    z = np.array([10.0, 9.0], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.any(np.isnan(softmax_naive(z, 100.0)))  # inf / inf
    s = softmax(z, 100.0)
    np.testing.assert_allclose(s, [1.0, np.exp(-100.0)], rtol=1e-6, atol=1e-30)


def test_softmax_offset_invariance_and_rescaling_identity():
    z1 = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(softmax(z1 + 10.0, 1.0), softmax(z1, 1.0), rtol=1e-14)
    # rescaling: softmax(alpha z; lam) = softmax(z; alpha lam), and differs from softmax(z; lam)
    np.testing.assert_allclose(softmax(10.0 * z1, 1.0), softmax(z1, 10.0), rtol=1e-12)
    assert not np.allclose(softmax(10.0 * z1, 1.0), softmax(z1, 1.0))


def test_softmax_is_gradient_of_lse():
    z = random_vectors(seed=3, dtype=np.float64, shape=(4,), scale=1.0)
    for lam in [0.5, 2.0]:
        h = 1e-6
        grad = [(lse(z + h * e, lam) - lse(z - h * e, lam)) / (2 * h) for e in np.eye(len(z))]
        np.testing.assert_allclose(grad, softmax(z, lam), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- one-hot argmax


def test_onehot_argmax_strict_orders():
    np.testing.assert_array_equal(onehot_argmax(2.0, 1.0), [1.0, 0.0])
    np.testing.assert_array_equal(onehot_argmax(1.0, 2.0), [0.0, 1.0])


def test_onehot_argmax_tie_gives_second_component():
    # the sheet: (1, 0) if z1 > z2, (0, 1) ELSE -- so a tie gives (0, 1)
    np.testing.assert_array_equal(onehot_argmax(0.5, 0.5), [0.0, 1.0])


def test_np_argmax_breaks_ties_the_other_way():
    # np.argmax returns the FIRST maximal index, i.e. (1, 0) on a tie: it must
    # not be used for the sheet's one-hot argmax on the diagonal z1 == z2.
    tie = np.array([0.5, 0.5])
    assert np.argmax(tie) == 0
    assert not np.array_equal(np.eye(2)[np.argmax(tie)], onehot_argmax(*tie))


def test_onehot_argmax_broadcasts_on_grid():
    z = np.linspace(-1, 1, 5)
    Z1, Z2 = np.meshgrid(z, z)
    oh = onehot_argmax(Z1, Z2)
    assert oh.shape == (5, 5, 2)
    np.testing.assert_array_equal(oh.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(oh[..., 0], (Z1 > Z2).astype(float))
    np.testing.assert_array_equal(np.diagonal(oh[..., 1]), 1.0)  # ties -> (0, 1)
    # away from ties it agrees with np.argmax; on the diagonal it does not
    am = np.argmax(np.stack([Z1, Z2], axis=-1), axis=-1)
    off = Z1 != Z2
    np.testing.assert_array_equal(oh[..., 1][off], am[off])
    assert np.all(am[~off] == 0)
