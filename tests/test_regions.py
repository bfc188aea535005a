"""Tests for sheet05.regions (exact linear regions of 2-D ReLU MLPs)."""
from math import comb

import numpy as np
import pytest
import torch

from sheet05 import regions as rg

BOX1 = (-1, 1, -1, 1)


def net(*layers):
    """Layers from (W, b) given as nested lists."""
    return [(np.array(W, dtype=np.float64), np.array(b, dtype=np.float64)) for W, b in layers]


def random_net(sizes, seed, out_weights=None):
    """Generic random MLP with normal weights (local generator, no global state)."""
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(m, n)), rng.normal(size=m)) for n, m in zip(sizes[:-1], sizes[1:])]
    if out_weights is not None:
        layers[-1] = (np.array([out_weights], dtype=np.float64), layers[-1][1])
    return layers


def torch_mlp(sizes, seed):
    """Default-initialised nn.Sequential; the global torch RNG is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mods = []
        for n, m in zip(sizes[:-1], sizes[1:]):
            mods += [torch.nn.Linear(n, m), torch.nn.ReLU()]
        return torch.nn.Sequential(*mods[:-1])


def single_line(w, b, v=1.0):
    return net(([w], [b]), ([[v]], [0.0]))


# --------------------------------------------------------------------------- basics


def test_single_neuron_line_through_box_gives_two_regions():
    assert rg.count_regions(single_line([1.0, 0.0], 0.0)) == 2
    assert rg.count_regions(single_line([1.0, 2.0], 3.0)) == 2


def test_single_neuron_line_missing_box_gives_one_region():
    assert rg.count_regions(single_line([1.0, 0.0], 20.0)) == 1
    # the line x1 + x2 = -20 only touches the corner (-10, -10): no split
    assert rg.count_regions(single_line([1.0, 1.0], 20.0)) == 1


def test_max_regions_shallow():
    assert [rg.max_regions_shallow(n) for n in range(5)] == [1, 2, 4, 7, 11]
    assert rg.max_regions_shallow(20) == 211


def test_forward_and_converter_match_torch():
    model = torch_mlp((2, 5, 5, 1), seed=3)
    layers = rg.layers_from_torch(model)
    assert [W.shape for W, _ in layers] == [(5, 2), (5, 5), (1, 5)]
    assert all(W.dtype == np.float64 and b.dtype == np.float64 for W, b in layers)
    X = np.random.default_rng(0).uniform(-10, 10, size=(200, 2))
    with torch.no_grad():
        y_torch = model.double()(torch.tensor(X)).numpy().ravel()
    np.testing.assert_allclose(rg.forward(layers, X), y_torch, rtol=1e-12, atol=1e-12)
    P = rg.activation_patterns(layers, X)
    assert P.shape == (200, 10) and P.dtype == bool


def test_torch_global_rng_not_leaked():
    state = torch.random.get_rng_state()
    torch_mlp((2, 20, 1), seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


# --------------------------------------------------------------------------- hand-built nets


@pytest.mark.parametrize("W, b, expected", [
    ([[1, 0], [0, 1]], [0, 0], 4),                      # two perpendicular lines through 0
    ([[1, 0], [0, 1], [1, 1]], [0, 0, -0.5], 7),        # general position, 3 vertices inside
    ([[1, 0], [0, 1], [1, 1]], [0, 0, 0], 6),           # three lines through one point
    ([[1, 0], [1, 0]], [0, -0.5], 3),                   # two parallel lines
    ([[1, 0], [-1, 0]], [0.3, -0.3], 2),                # same line twice (opposite normals)
])
def test_hand_built_shallow_counts(W, b, expected):
    layers = net((W, b), ([[1.0] * len(W)], [0.0]))
    assert rg.count_regions(layers, BOX1) == expected


def test_hand_built_two_layer_net():
    # h1 = ReLU(x1), h2 = ReLU(x2); layer 2: g = ReLU(h1 + h2 - 1) plus two copies
    # ReLU(h1) = h1, ReLU(h2) = h2 (they add no kinks, h >= 0); y = g + h1 + h2, box [-2, 2]^2.
    # Layer 1 cuts the box into 4 quadrants.  In each, g's pre-activation is affine:
    #   x1>0, x2>0: x1 + x2 - 1 -> line x1 + x2 = 1 crosses the quadrant  -> 2 regions
    #   x1>0, x2<0: x1 - 1      -> line x1 = 1 crosses it                  -> 2 regions
    #   x1<0, x2>0: x2 - 1      -> line x2 = 1 crosses it                  -> 2 regions
    #   x1<0, x2<0: -1 < 0      -> g inactive everywhere                   -> 1 region
    # Total 7 (g's zero set is a "bent line"); all 7 affine functions differ from their
    # neighbours', so there are also 7 affine pieces.
    layers = net(([[1, 0], [0, 1]], [0, 0]), ([[1, 1], [1, 0], [0, 1]], [-1, 0, 0]),
                 ([[1, 1, 1]], [0]))
    box = (-2, 2, -2, 2)
    regions = rg.enumerate_regions(layers, box)
    assert len(regions) == 7
    assert rg.count_affine_pieces(layers, box) == 7
    grads = {tuple(np.round(R.grad, 12)) for R in regions}
    assert grads == {(0, 0), (1, 0), (2, 0), (0, 1), (0, 2), (1, 1), (2, 2)}
    # a dead second-layer neuron (pre-activation -h1 - h2 - 1 < 0) adds no regions
    dead = net(([[1, 0], [0, 1]], [0, 0]), ([[-1, -1], [1, 0], [0, 1]], [-1, 0, 0]),
               ([[1, 1, 1]], [0]))
    assert rg.count_regions(dead, box) == 4


# --------------------------------------------------------------------------- shallow maximum


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generic_shallow_net_reaches_maximum(n, seed):
    layers = random_net((2, n, 1), seed)
    box = rg.box_containing_all_vertices(layers)
    V = rg.neuron_line_vertices(*layers[0])
    assert len(V) == comb(n, 2)
    assert np.all(np.abs(V) < box[1])  # the box really contains every line crossing
    assert rg.count_regions(layers, box) == rg.max_regions_shallow(n)


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_shallow_20_reaches_211(seed):
    layers = rg.layers_from_torch(torch_mlp((2, 20, 1), seed))
    box = rg.box_containing_all_vertices(layers)
    assert rg.count_regions(layers, box) == 211
    # in the sheet's window [-10, 10]^2 part of the structure lies outside
    assert rg.count_regions(layers) <= 211


def test_vertex_extent_matches_line_crossings_for_shallow_net():
    layers = random_net((2, 6, 1), seed=4)
    V = rg.neuron_line_vertices(*layers[0])
    ext = rg.vertex_extent(layers)
    expected = (V[:, 0].min(), V[:, 0].max(), V[:, 1].min(), V[:, 1].max())
    np.testing.assert_allclose(ext, expected, rtol=1e-9, atol=1e-9)
    box = rg.box_containing_all_vertices(layers, margin=0.1)
    assert box[0] == -box[1] and box[2] == -box[3] and box[0] == box[2]
    assert box[1] >= max(10.0, 1.1 * np.abs(V).max() * (1 - 1e-9))


def test_vertex_extent_none_without_crossings():
    assert rg.vertex_extent(single_line([1.0, 0.0], 0.3)) is None
    parallel = net(([[1, 0], [2, 0]], [0, -1]), ([[1, 1]], [0]))
    assert rg.vertex_extent(parallel) is None
    assert len(rg.neuron_line_vertices(*parallel[0])) == 0
    assert rg.box_containing_all_vertices(parallel) == (-10.0, 10.0, -10.0, 10.0)


def test_neuron_line_vertices_three_lines():
    W, b = np.array([[1.0, 0], [0, 1.0], [1.0, 1.0]]), np.array([0, 0, -0.5])
    V = rg.neuron_line_vertices(W, b)
    expected = {(0.0, 0.0), (0.0, 0.5), (0.5, 0.0)}
    assert {tuple(np.round(v, 12) + 0.0) for v in V} == expected


# --------------------------------------------------------------------------- grid lower bound


@pytest.mark.parametrize("sizes, seed", [((2, 8, 1), 0), ((2, 20, 1), 1), ((2, 5, 5, 5, 5, 1), 2),
                                         ((2, 4, 4, 1), 3)])
def test_exact_count_at_least_grid_count(sizes, seed):
    layers = random_net(sizes, seed)
    assert rg.count_regions(layers) >= rg.grid_pattern_count(layers, n=200)


def test_grid_count_approaches_exact_count():
    layers = net(([[1, 0], [0, 1], [1, 1]], [0, 0, -0.5]), ([[1, 1, 1]], [0]))
    exact = rg.count_regions(layers, BOX1)
    assert exact == 7
    assert rg.grid_pattern_count(layers, BOX1, n=5) < exact  # too coarse: misses the triangle
    assert rg.grid_pattern_count(layers, BOX1, n=400) == exact


# --------------------------------------------------------------------------- consistency


def check_regions(layers, box, seed=0):
    regions = rg.enumerate_regions(layers, box)
    rng = np.random.default_rng(seed)
    box_area = (box[1] - box[0]) * (box[3] - box[2])
    assert sum(R.area for R in regions) == pytest.approx(box_area, rel=1e-12)
    for R in regions:
        V = R.vertices
        assert R.area > 0
        # convex and counter-clockwise: all edge turns are left turns
        d = np.roll(V, -1, axis=0) - V
        turns = d[:, 0] * np.roll(d[:, 1], -1) - d[:, 1] * np.roll(d[:, 0], -1)
        assert np.all(turns > -1e-9 * box_area)
        # the region really is linear: interior points share its pattern and affine map
        c = R.centroid
        w = rng.dirichlet(np.ones(len(V)), size=20)
        X = np.vstack([c, 0.5 * c + 0.5 * w @ V])
        P = rg.activation_patterns(layers, X)
        assert np.all(P == np.array(R.pattern))
        np.testing.assert_allclose(rg.forward(layers, X), X @ R.grad + R.offset, rtol=0, atol=1e-9)
        # continuity: at the polygon's corners the output equals the region's affine map
        np.testing.assert_allclose(rg.forward(layers, V), V @ R.grad + R.offset,
                                   rtol=0, atol=1e-9 * (1 + np.abs(V).max()))
    patterns = {tuple(p) for p in rg.activation_patterns(layers, [R.centroid for R in regions])}
    # Every cell has its own pattern, for deep nets too: once the full pattern p is
    # fixed, every pre-activation is affine in x, so {x : pattern(x) = p} is an
    # intersection of half-planes, i.e. convex and connected.
    assert len(patterns) == len(regions)
    assert len({R.pattern for R in regions}) == len(regions)
    return regions


@pytest.mark.parametrize("sizes, seed", [((2, 6, 1), 0), ((2, 12, 1), 1), ((2, 4, 4, 1), 2),
                                         ((2, 5, 5, 5, 5, 1), 3), ((2, 3, 8, 3, 1), 4)])
def test_regions_are_consistent(sizes, seed):
    check_regions(random_net(sizes, seed), (-10, 10, -10, 10), seed)


def test_regions_consistent_torch_nets_in_all_vertex_box():
    for sizes in [(2, 20, 1), (2, 5, 5, 5, 5, 1)]:
        layers = rg.layers_from_torch(torch_mlp(sizes, 0))
        check_regions(layers, rg.box_containing_all_vertices(layers))


def test_region_boundaries_for_plotting():
    regions = rg.enumerate_regions(random_net((2, 4, 1), 0), BOX1)
    polys = rg.region_boundaries(regions)
    closed = rg.region_boundaries(regions, closed=True)
    assert len(polys) == len(closed) == len(regions)
    assert all(np.array_equal(p[0], q[-1]) and len(q) == len(p) + 1 for p, q in zip(polys, closed))


# --------------------------------------------------------------------------- affine pieces


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_pieces_equal_regions_for_visible_neurons(seed):
    layers = random_net((2, 6, 1), seed)
    box = rg.box_containing_all_vertices(layers)
    assert rg.count_affine_pieces(layers, box) == rg.count_regions(layers, box) == 22


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_pieces_drop_invisible_neuron(seed):
    # neuron 0 has output weight 0: its line is not a kink of the function, so the
    # pieces are the cells of the arrangement of the other 4 lines: 1 + 4 + 6 = 11
    layers = random_net((2, 5, 1), seed, out_weights=[0.0, 1.0, -2.0, 0.5, 1.5])
    box = rg.box_containing_all_vertices(layers)
    assert rg.count_regions(layers, box) == 16
    assert rg.count_affine_pieces(layers, box) == 11


@pytest.mark.parametrize("sizes, seed", [((2, 5, 5, 5, 5, 1), 0), ((2, 4, 4, 1), 1)])
def test_affine_pieces_at_most_regions_deep(sizes, seed):
    layers = random_net(sizes, seed)
    assert 1 <= rg.count_affine_pieces(layers) <= rg.count_regions(layers)


def test_affine_pieces_hand_built_merge():
    # y = ReLU(x1) + ReLU(x2) - ReLU(x2) = ReLU(x1): 4 activation regions, 2 pieces
    layers = net(([[1, 0], [0, 1], [0, 1]], [0, 0, 0]), ([[1, 1, -1]], [0]))
    assert rg.count_regions(layers, BOX1) == 4
    assert rg.count_affine_pieces(layers, BOX1) == 2


def test_affine_pieces_concurrent_invisible_line():
    # lines x1 = 0, x2 = 0, x1 + x2 = 0 meet in one point: 6 regions; the diagonal neuron
    # has output weight 0, so the function has only the 4 quadrant pieces
    layers = net(([[1, 0], [0, 1], [1, 1]], [0, 0, 0]), ([[1, -2, 0]], [0]))
    assert rg.count_regions(layers, BOX1) == 6
    assert rg.count_affine_pieces(layers, BOX1) == 4
    labels = rg.affine_piece_labels(rg.enumerate_regions(layers, BOX1))
    assert sorted(np.bincount(labels)) == [1, 1, 2, 2]


# --------------------------------------------------------------------------- independent check


@pytest.mark.parametrize("sizes", [[2, 20, 1], [2, 5, 5, 5, 5, 1], [2, 8, 8, 1]])
@pytest.mark.parametrize("seed", [0, 1])
def test_enumeration_agrees_with_independent_grid_evaluation(sizes, seed):
    """An independent enumeration by brute force: evaluate the network (plain forward pass,
    no polygon code) on a fine grid. Every grid pattern must be an enumerated region, and
    every enumerated region wide enough to contain a grid point must be found on the grid.
    For a convex polygon the inradius is at least area / perimeter, so area / perimeter
    > sqrt(2) * spacing guarantees a grid point inside."""
    layers = rg.layers_from_torch(torch_mlp(sizes, seed))
    box, n = (-10, 10, -10, 10), 501
    regions = rg.enumerate_regions(layers, box)
    enumerated = {tuple(r.pattern) for r in regions}
    on_grid = {tuple(p) for p in rg.activation_patterns(layers, rg.grid_points(box, n))}
    assert on_grid <= enumerated
    spacing = 20 / (n - 1)
    for r in regions:
        perimeter = np.sum(np.linalg.norm(np.roll(r.vertices, -1, axis=0) - r.vertices, axis=1))
        if r.area / perimeter > 1.5 * spacing:
            assert tuple(r.pattern) in on_grid
    assert len(enumerated) == len(regions)  # one pattern per region (regions are convex)


def _clip_numpy(V, tags, s, cut_tag):
    """The clipping rule of _clip written with numpy vectors, as a reference."""
    out, out_tags = [], []
    for i in range(len(V)):
        j = (i + 1) % len(V)
        si, sj = s[i], s[j]
        if si > 0:
            out.append(V[i])
            out_tags.append(tags[i])
            if sj < 0:
                out.append(V[i] + si / (si - sj) * (V[j] - V[i]))
                out_tags.append(cut_tag)
        elif si == 0:
            out.append(V[i])
            out_tags.append(cut_tag if sj < 0 else tags[i])
        elif sj > 0:
            out.append(V[i] + si / (si - sj) * (V[j] - V[i]))
            out_tags.append(tags[i])
    return np.array(out), np.array(out_tags, dtype=int)


@pytest.mark.parametrize("seed", range(5))
def test_clip_and_area_match_numpy_reference_bit_for_bit(seed):
    """_clip (plain floats) and polygon_area (no np.roll) give exactly the numpy results,
    so region counts cannot depend on which of the two is used."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        k = rng.integers(3, 12)
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        V = np.column_stack([np.cos(angles), np.sin(angles)]) * rng.uniform(0.1, 1e4)
        tags = rng.integers(-1, 30, k)
        w, w0 = rng.normal(size=2), rng.normal() * 0.3
        s = V @ w + w0
        s[rng.random(k) < 0.1] = 0.0          # vertices exactly on the line
        for sign in (1, -1):
            got, ref = rg._clip(V, tags, sign * s, 99), _clip_numpy(V, tags, sign * s, 99)
            assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
        x, y = V[:, 0], V[:, 1]
        rolled = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))
        assert rg.polygon_area(V) == 0.5 * float(rolled)
