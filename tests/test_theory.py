"""Checks for every closed form stated in theory/theory.tex (exercises 1, 3(a), 3(d), 3(e), 5).

Symbolic checks use sympy, numerical checks numpy with a local seeded Generator
(np.random.default_rng), never the global RNG. Runs in well under 5 s.
"""

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy.special import logsumexp

ROOT = Path(__file__).resolve().parents[1]
TEX = ROOT / "theory" / "theory.tex"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- helpers
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(z, lam=1.0):
    z = np.asarray(z, dtype=float)
    e = np.exp(lam * (z - z.max()))
    return e / e.sum()


def lse(z, lam=1.0):
    return logsumexp(lam * np.asarray(z, dtype=float)) / lam


@pytest.fixture(scope="module")
def tex():
    return TEX.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- 1(a)
def test_sigmoid_derivative_symbolic():
    x = sp.symbols("x", real=True)
    s = 1 / (1 + sp.exp(-x))
    assert sp.simplify(sp.diff(s, x) - s * (1 - s)) == 0
    # intermediate step 1 - sigma = e^{-x} / (1 + e^{-x})
    assert sp.simplify((1 - s) - sp.exp(-x) / (1 + sp.exp(-x))) == 0
    # symmetry sigma(-x) = 1 - sigma(x)
    assert sp.simplify(s.subs(x, -x) - (1 - s)) == 0


def test_sigmoid_derivative_even_and_max_quarter():
    x = np.linspace(-20, 20, 40001)
    d = sigmoid(x) * (1 - sigmoid(x))
    np.testing.assert_allclose(d, d[::-1], atol=1e-15)  # even function
    assert np.isclose(d.max(), 0.25) and x[np.argmax(d)] == 0.0
    # compare with central finite differences
    h = 1e-5
    fd = (sigmoid(x + h) - sigmoid(x - h)) / (2 * h)
    np.testing.assert_allclose(fd, d, atol=1e-9)


# --------------------------------------------------------------------------- 1(b)
def test_tanh_is_scaled_shifted_sigmoid_symbolic():
    x = sp.symbols("x", real=True)
    sig = lambda t: 1 / (1 + sp.exp(-t))  # noqa: E731
    tanh_def = (sp.exp(x) - sp.exp(-x)) / (sp.exp(x) + sp.exp(-x))
    assert sp.simplify(tanh_def - (2 * sig(2 * x) - 1)) == 0
    assert sp.simplify(sp.tanh(x).rewrite(sp.exp) - (2 * sig(2 * x) - 1)) == 0
    # equivalent form sigma(x) = (1 + tanh(x/2)) / 2 and tanh' = 4 sigma'(2x) = 1 - tanh^2
    assert sp.simplify(sig(x) - (1 + sp.tanh(x / 2).rewrite(sp.exp)) / 2) == 0
    s2 = sig(2 * x)
    assert sp.simplify(sp.diff(sp.tanh(x), x) - 4 * s2 * (1 - s2)) == 0


def test_tanh_is_scaled_shifted_sigmoid_numeric():
    x = np.linspace(-15, 15, 3001)
    np.testing.assert_allclose(np.tanh(x), 2 * sigmoid(2 * x) - 1, atol=1e-14)
    np.testing.assert_allclose(sigmoid(x), (1 + np.tanh(x / 2)) / 2, atol=1e-14)


# --------------------------------------------------------------------------- 1(c)
# Same choice as in theory/theory.tex, section "1(c) Separating the four points".
W_1C = np.array([1.0, -1.0])
B_1C = 0.5
CLASS1 = np.array([[1.0, 1.0], [2.0, 2.0]])
CLASS2 = np.array([[1.0, 2.0], [2.0, 3.0]])


def test_1c_w_b_separate_the_points():
    a1 = sigmoid(CLASS1 @ W_1C + B_1C)
    a2 = sigmoid(CLASS2 @ W_1C + B_1C)
    assert np.all(a1 > 0.5) and np.all(a2 < 0.5)  # decision rule a > 1/2 <=> class 1
    np.testing.assert_allclose(CLASS1 @ W_1C + B_1C, [0.5, 0.5])
    np.testing.assert_allclose(CLASS2 @ W_1C + B_1C, [-0.5, -0.5])
    # table values (4 decimals) as printed in theory.tex
    np.testing.assert_allclose(a1, 0.6225, atol=5e-5)
    np.testing.assert_allclose(a2, 0.3775, atol=5e-5)
    # scaled example (2w, 2b) quoted in the remark
    np.testing.assert_allclose(sigmoid(1.0), 0.7311, atol=5e-5)
    np.testing.assert_allclose(sigmoid(-1.0), 0.2689, atol=5e-5)


def test_1c_numbers_appear_in_tex(tex):
    for s in ["(1,-1)^T", "b = 0.5", "0.6225", "0.3775", "-0.5", "0.7311", "0.2689"]:
        assert s in tex, s


def test_1c_likelihood_increases_along_ray():
    cs = np.linspace(0.1, 30, 300)
    t1, t2 = CLASS1 @ W_1C + B_1C, CLASS2 @ W_1C + B_1C
    loglik = np.array(
        [np.sum(np.log(sigmoid(c * t1))) + np.sum(np.log(1 - sigmoid(c * t2))) for c in cs]
    )
    assert np.all(np.diff(loglik) > 0) and np.all(loglik < 0)  # increasing, never reaches 0


def test_separable_when_few_points_in_general_position():
    # N <= d+1 affinely independent points: any labelling is interpolated exactly
    rng = np.random.default_rng(11)
    d, N = 30, 31
    X = rng.normal(size=(N, d))
    y = rng.choice([-1.0, 1.0], size=N)
    A = np.hstack([X, np.ones((N, 1))])
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    assert np.all(np.sign(A @ sol) == y)


# --------------------------------------------------------------------------- 3(a)
Z1, Z2, Z3 = np.array([1.0, 2, 3]), np.array([11.0, 12, 13]), np.array([10.0, 20, 30])


def test_3a_sheet_vectors(tex):
    p1, p2, p3 = softmax(Z1), softmax(Z2), softmax(Z3)
    np.testing.assert_allclose(p1, [0.0900, 0.2447, 0.6652], atol=5e-5)
    np.testing.assert_allclose(p2, p1, rtol=1e-12)
    np.testing.assert_allclose(p3, [2.061e-9, 4.540e-5, 0.99995], rtol=5e-4)
    np.testing.assert_allclose(p3, softmax(Z1, 10.0), rtol=1e-12)
    assert not np.allclose(p3, p1)
    for s in ["0.0900", "0.2447", "0.6652", "2.061", "4.540", "0.99995"]:
        assert s in tex, s


def test_3a_offset_invariance_and_temperature():
    rng = np.random.default_rng(0)
    for _ in range(200):
        K = int(rng.integers(2, 30))
        z = rng.normal(scale=3, size=K)
        lam = float(rng.uniform(0.05, 5))
        c = float(rng.normal(scale=50))
        alpha = float(rng.uniform(0.1, 5))
        np.testing.assert_allclose(softmax(z + c, lam), softmax(z, lam), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(
            softmax(alpha * z, lam), softmax(z, alpha * lam), rtol=1e-9, atol=1e-15
        )
        if abs(alpha - 1) > 0.05:  # not invariant for a non-constant z
            assert not np.allclose(softmax(alpha * z, lam), softmax(z, lam), rtol=1e-6, atol=0)
        # constant vector: invariant under any rescaling, result is uniform
        const = np.full(K, c)
        np.testing.assert_allclose(softmax(alpha * const, lam), np.full(K, 1 / K))


def test_3a_rescaling_identity_symbolic():
    a, lam = sp.symbols("alpha lambda", positive=True)
    z = sp.symbols("z1:4", real=True)
    den = lambda l, v: sum(sp.exp(l * vi) for vi in v)  # noqa: E731
    for k in range(3):
        lhs = sp.exp(lam * a * z[k]) / den(lam, [a * zi for zi in z])
        rhs = sp.exp(a * lam * z[k]) / den(a * lam, z)
        assert sp.simplify(lhs - rhs) == 0


# --------------------------------------------------------------------------- 3(d)
def test_3d_gradient_of_lse_is_softmax_fd():
    rng = np.random.default_rng(1)
    h = 1e-6
    for lam in [0.3, 1.0, 2.5, 10.0]:
        for _ in range(20):
            K = int(rng.integers(1, 12))
            z = rng.normal(size=K)
            g = np.empty(K)
            for k in range(K):
                e = np.zeros(K)
                e[k] = h
                g[k] = (lse(z + e, lam) - lse(z - e, lam)) / (2 * h)
            np.testing.assert_allclose(g, softmax(z, lam), atol=1e-7)


def test_3d_gradient_symbolic():
    lam = sp.symbols("lambda", positive=True)
    z = sp.symbols("z1:4", real=True)
    S = sum(sp.exp(lam * zi) for zi in z)
    L = sp.log(S) / lam
    for k in range(3):
        assert sp.simplify(sp.diff(L, z[k]) - sp.exp(lam * z[k]) / S) == 0


def test_3d_hessian_and_convexity():
    rng = np.random.default_rng(2)
    h = 1e-6
    for lam in [0.5, 1.0, 4.0]:
        for _ in range(10):
            K = int(rng.integers(2, 10))
            z = rng.normal(size=K)
            p = softmax(z, lam)
            H = lam * (np.diag(p) - np.outer(p, p))
            J = np.empty((K, K))  # Jacobian of softmax = Hessian of lse
            for l in range(K):
                e = np.zeros(K)
                e[l] = h
                J[:, l] = (softmax(z + e, lam) - softmax(z - e, lam)) / (2 * h)
            np.testing.assert_allclose(J, H, atol=1e-7)
            assert np.linalg.eigvalsh(H).min() > -1e-12
            np.testing.assert_allclose(H @ np.ones(K), 0, atol=1e-14)
            c = float(rng.normal())
            assert np.isclose(lse(z + c, lam), lse(z, lam) + c)


# --------------------------------------------------------------------------- 3(e)
def test_3e_sandwich_bound_and_limit():
    rng = np.random.default_rng(3)
    for _ in range(500):
        K = int(rng.integers(1, 51))
        z = rng.normal(scale=5, size=K)
        if rng.random() < 0.3 and K > 1:  # ties at the maximum
            idx = rng.choice(K, size=int(rng.integers(2, K + 1)), replace=False)
            z[idx] = z.max()
        lam = float(10 ** rng.uniform(-2, 3))
        m, v = z.max(), lse(z, lam)
        assert m - 1e-9 <= v <= m + math.log(K) / lam + 1e-9
    # upper bound attained for constant z, and convergence as lambda -> infinity
    z = np.full(7, 2.0)
    assert np.isclose(lse(z, 3.0), 2.0 + math.log(7) / 3.0)
    z = rng.normal(size=50)
    gaps = [lse(z, lam) - z.max() for lam in [1, 10, 100, 1e3, 1e4, 1e6]]
    assert all(g >= -1e-12 for g in gaps) and gaps[-1] < 1e-5
    assert all(a >= b - 1e-12 for a, b in zip(gaps, gaps[1:]))


# --------------------------------------------------------------------------- 5
def max_regions(n):
    return 1 + n + n * (n - 1) // 2


def test_5_formula_matches_recursion():
    r = 1  # r(0): the whole plane
    for k in range(1, 201):
        r = r + k  # the k-th line is cut into k pieces, each adds one cell
        assert r == max_regions(k) == math.comb(k, 2) + k + 1 == (k * k + k + 2) // 2
    assert max_regions(20) == 211


def _random_lines(rng, n):
    theta = rng.uniform(0, np.pi, size=n)
    W = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    b = rng.normal(scale=3, size=n)
    return W, b


def _intersections(W, b, tol=1e-9):
    """Distinct intersection points and, per line, how many of them lie on it."""
    pts = []
    n = len(b)
    for i, j in itertools.combinations(range(n), 2):
        A = np.stack([W[i], W[j]])
        if abs(np.linalg.det(A)) < 1e-12:
            continue  # parallel
        pts.append(np.linalg.solve(A, -np.array([b[i], b[j]])))
    distinct = []
    for p in pts:
        if not any(np.linalg.norm(p - q) < tol * (1 + np.linalg.norm(p)) for q in distinct):
            distinct.append(p)
    distinct = np.array(distinct).reshape(-1, 2)
    on_line = np.abs(distinct @ W.T + b) < 1e-7 * (1 + np.abs(distinct).sum(axis=1))[:, None]
    return distinct, on_line.sum(axis=0)


def _cells_euler(W, b):
    """Cells of an arrangement of distinct lines via Euler's formula (V - E + F = 1 in a big
    disk, bounded faces): F = 1 + sum_i (k_i + 1) - V, k_i = #vertices on line i."""
    V, k = _intersections(W, b)
    return 1 + int(np.sum(k + 1)) - len(V)


def _cells_by_sampling_around_vertices(W, b):
    """Independent count: every cell of a general-position arrangement (n >= 2) has a vertex on
    its boundary; probe the four sectors around each vertex and count distinct sign patterns."""
    n = len(b)
    D = np.stack([-W[:, 1], W[:, 0]], axis=1)  # line directions
    patterns = set()
    for i, j in itertools.combinations(range(n), 2):
        v = np.linalg.solve(np.stack([W[i], W[j]]), -np.array([b[i], b[j]]))
        dist = np.abs(W @ v + b) / np.linalg.norm(W, axis=1)
        dist[[i, j]] = np.inf
        eps = 0.1 * min(dist.min(), 1.0)
        s = abs(D[i, 0] * D[j, 1] - D[i, 1] * D[j, 0])  # sin of the angle between the lines
        for si, sj in itertools.product([-1, 1], repeat=2):
            x = v + 0.5 * eps * s * (si * D[i] + sj * D[j])
            patterns.add(tuple(W @ x + b > 0))
    return len(patterns)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 20])
def test_5_random_lines_in_general_position(n):
    rng = np.random.default_rng(100 + n)
    W, b = _random_lines(rng, n)
    V, k = _intersections(W, b)
    assert len(V) == math.comb(n, 2)  # general position: all pairwise intersections distinct
    assert np.all(k == n - 1)
    assert 1 + n + len(V) == max_regions(n)
    assert _cells_euler(W, b) == max_regions(n)
    if n >= 2:
        assert _cells_by_sampling_around_vertices(W, b) == max_regions(n)


def test_5_degenerate_arrangements_have_fewer_cells():
    # three concurrent lines through the origin: 6 cells instead of 7
    th = np.array([0.0, 1.0, 2.0])
    W = np.stack([np.cos(th), np.sin(th)], axis=1)
    assert _cells_euler(W, np.zeros(3)) == 6 < max_regions(3)
    # three parallel lines: 4 cells
    W = np.tile([[1.0, 0.0]], (3, 1))
    assert _cells_euler(W, np.array([0.0, 1.0, 2.0])) == 4 < max_regions(3)


def test_5_tangent_construction_is_in_general_position():
    n = 20
    th = np.linspace(0, np.pi, n, endpoint=False)
    W = np.stack([np.cos(th), np.sin(th)], axis=1)
    b = -np.ones(n)
    V, k = _intersections(W, b)
    assert len(V) == math.comb(n, 2) and np.all(k == n - 1)
    assert _cells_euler(W, b) == 211


def test_5_against_sheet05_regions():
    if importlib.util.find_spec("sheet05") is None:
        pytest.skip("sheet05 package not available")
    regions = pytest.importorskip("sheet05.regions")
    for n in [3, 8, 20]:
        rng = np.random.default_rng(1000 + n)
        layers = [
            (rng.normal(size=(n, 2)), rng.normal(size=n)),
            (rng.normal(size=(1, n)), rng.normal(size=1)),
        ]
        box = regions.box_containing_all_vertices(layers)
        assert regions.count_regions(layers, box) == max_regions(n)
        assert regions.max_regions_shallow(n) == max_regions(n)
