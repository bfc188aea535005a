"""Exact linear (activation) regions of a ReLU MLP with 2-D input.

Convention of the exercise sheet:  a_0 = x,  a_{i+1} = ReLU(W_i a_i + b_i),
y = W_H a_H + b_H.  A network is a list of (W, b) float64 pairs *including*
the final linear layer, so the hidden layers are ``layers[:-1]``.

Idea (the "bent hyperplane" picture of the lecture, done exactly):
on a convex polygon where the activation pattern of layers < l is fixed, the
input of layer l is an affine function ``A x + c`` of x.  Every neuron of
layer l then has an affine pre-activation, i.e. a straight zero line on that
polygon.  Cutting the polygon with all these lines gives convex pieces on
which layer l's pattern is fixed too; composing through the ReLU (zero rows
for inactive neurons) gives the affine input of layer l+1.  After the last
hidden layer every piece is a linear region and y = grad . x + offset on it.

Everything is float64 numpy; torch is only imported by ``layers_from_torch``.
No random numbers are used anywhere in this module.
"""
from dataclasses import dataclass, field

import numpy as np

# What the appendix of the PDF prints: the exact enumeration and the counts built on it.
__appendix__ = ["__doc__", "_on_edge", "_clip", "_split", "Region", "enumerate_regions",
                "neuron_line_vertices", "vertex_extent", "box_containing_all_vertices"]


# ----------------------------------------------------------------------------
# network helpers


def layers_from_torch(model):
    """(W, b) float64 pairs of all nn.Linear layers of an nn.Sequential, in order.

    The ReLUs in between are implied by the sheet's convention, so only the
    Linear layers are read (a missing bias becomes zeros).
    """
    import torch  # lazy: the rest of the module is numpy only

    layers = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            W = m.weight.detach().cpu().to(torch.float64).numpy().copy()
            if m.bias is None:
                b = np.zeros(W.shape[0])
            else:
                b = m.bias.detach().cpu().to(torch.float64).numpy().copy()
            layers.append((W, b))
    return layers


def _as_points(X):
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(-1, 2)


def forward(layers, X):
    """Network output for points X of shape (N, 2); returns shape (N,)."""
    a = _as_points(X)
    for W, b in layers[:-1]:
        a = np.maximum(a @ W.T + b, 0.0)
    W, b = layers[-1]
    return (a @ W.T + b)[:, 0]


def activation_patterns(layers, X, chunk=25_000):
    """Bool array (N, total hidden neurons): pre-activation > 0, layer by layer."""
    a = _as_points(X)
    if len(a) > chunk:  # blocks of rows: no (N, neurons) float temporaries for a large grid
        return np.concatenate([activation_patterns(layers, a[i:i + chunk], chunk)
                               for i in range(0, len(a), chunk)])
    bits = []
    for W, b in layers[:-1]:
        z = a @ W.T + b
        bits.append(z > 0)
        a = np.maximum(z, 0.0)
    if not bits:
        return np.zeros((len(a), 0), dtype=bool)
    return np.concatenate(bits, axis=1)


# ----------------------------------------------------------------------------
# convex polygon geometry


def polygon_area(V):
    """Signed shoelace area (positive for counter-clockwise vertices)."""
    x, y = V[:, 0], V[:, 1]
    # np.concatenate((a[1:], a[:1])) is np.roll(a, -1) without its generic overhead
    return 0.5 * float(np.dot(x, np.concatenate((y[1:], y[:1])))
                       - np.dot(y, np.concatenate((x[1:], x[:1]))))


def polygon_centroid(V):
    """Area centroid of a simple polygon (strictly inside if it is convex)."""
    x, y = V[:, 0], V[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2.0
    if abs(a) == 0.0:
        return V.mean(axis=0)
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * a)


def _on_edge(p, q, t):
    """The point p + t (q - p) of 2-D points given as lists."""
    return [p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]


def _clip(V, tags, s, cut_tag):
    """Part of the convex polygon V where s >= 0 (s: values at the vertices).

    ``tags[i]`` names the neuron whose zero line carries edge V[i] -> V[i+1]
    (-1 for the box boundary); the new edge along the cut gets ``cut_tag``.
    Vertices with s == 0 exactly lie on the cut and go to both sides, so a
    vertex only touching the line never creates a spurious crossing.
    """
    # Python floats and lists: the same IEEE arithmetic, in the same order, as numpy's, at a
    # fraction of its per-call cost for polygons of a handful of vertices
    P, T, S = V.tolist(), tags.tolist(), s.tolist()
    out, out_tags = [], []
    k = len(P)
    for i in range(k):
        j = (i + 1) % k
        si, sj = S[i], S[j]
        if si > 0:
            out.append(P[i])
            out_tags.append(T[i])
            if sj < 0:  # leaving the half-plane: continue along the cut
                out.append(_on_edge(P[i], P[j], si / (si - sj)))
                out_tags.append(cut_tag)
        elif si == 0:  # on the line; if the next vertex is outside, follow the cut
            out.append(P[i])
            out_tags.append(cut_tag if sj < 0 else T[i])
        elif sj > 0:  # si < 0: entering the half-plane
            out.append(_on_edge(P[i], P[j], si / (si - sj)))
            out_tags.append(T[i])
    return np.array(out), np.array(out_tags, dtype=int)


def _split(V, tags, w, w0, eps, min_area, cut_tag):
    """Split convex polygon V by the line w.x + w0 = 0 into 1 or 2 pieces.

    No split when the line only touches the polygon (all vertices within
    eps of it on one side), or when one side would be a numerical sliver of
    area < min_area (then the polygon is kept whole, so areas still add up).
    """
    nw = np.hypot(w[0], w[1])
    s = V @ w + w0
    thr = eps * nw
    if s.min() >= -thr or s.max() <= thr:
        return [(V, tags)]
    s = np.where(np.abs(s) <= thr, 0.0, s)
    pos = _clip(V, tags, s, cut_tag)
    neg = _clip(V, tags, -s, cut_tag)
    if polygon_area(pos[0]) < min_area or polygon_area(neg[0]) < min_area:
        return [(V, tags)]
    return [pos, neg]


# ----------------------------------------------------------------------------
# region enumeration


@dataclass
class Region:
    """One linear region: a convex polygon on which y = grad . x + offset.

    vertices: (k, 2) counter-clockwise; pattern: activation bits of all hidden
    neurons (layer by layer); edge_neurons[i]: global index of the hidden
    neuron whose zero line carries edge i (vertices[i] -> vertices[i+1]),
    -1 for the box boundary.
    """

    vertices: np.ndarray
    pattern: tuple
    grad: np.ndarray
    offset: float
    edge_neurons: np.ndarray = field(default=None, repr=False)

    @property
    def area(self):
        return polygon_area(self.vertices)

    @property
    def centroid(self):
        return polygon_centroid(self.vertices)


def _box_polygon(box):
    xmin, xmax, ymin, ymax = map(float, box)
    V = np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]])
    return V, -np.ones(4, dtype=int)


def _tolerances(box, tol):
    """Length tolerance eps (relative to the box size) and sliver area eps^2."""
    xmin, xmax, ymin, ymax = box
    scale = max(xmax - xmin, ymax - ymin)
    eps = tol * scale
    return eps, eps * eps


def enumerate_regions(layers, box=(-10, 10, -10, 10), tol=1e-9):
    """All linear regions of the ReLU net inside box = (xmin, xmax, ymin, ymax).

    A region here is a maximal convex piece with a fixed activation pattern
    (an "activation region").  tol is relative to the box size: lines closer
    than tol*size to a polygon only touch it, pieces smaller than
    (tol*size)^2 are slivers and are not split off.
    """
    eps, min_area = _tolerances(box, tol)
    V, tags = _box_polygon(box)
    # piece = (vertices, edge tags, A, c, pattern) with layer input = A x + c
    pieces = [(V, tags, np.eye(2), np.zeros(2), ())]
    first = 0  # global index of the current layer's first neuron
    for W, b in layers[:-1]:
        W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
        new = []
        for V, tags, A, c, pat in pieces:
            Lw, l0 = W @ A, W @ c + b  # pre-activations = Lw x + l0 on this piece
            thr = eps * np.hypot(Lw[:, 0], Lw[:, 1])
            S = V @ Lw.T + l0  # (vertices, neurons): only neurons that cut matter
            cutting = np.flatnonzero((S.min(axis=0) < -thr) & (S.max(axis=0) > thr))
            subs = [(V, tags)]
            for j in cutting:
                subs = [q for V2, t2 in subs
                        for q in _split(V2, t2, Lw[j], l0[j], eps, min_area, first + j)]
            for V2, t2 in subs:
                on = (Lw @ V2.mean(axis=0) + l0) > 0  # vertex mean is interior
                new.append((V2, t2, Lw * on[:, None], l0 * on,
                            pat + tuple(bool(o) for o in on)))
        pieces = new
        first += W.shape[0]
    W, b = np.asarray(layers[-1][0], np.float64), np.asarray(layers[-1][1], np.float64)
    return [Region(V, pat, (W @ A)[0], float((W @ c + b)[0]), tags)
            for V, tags, A, c, pat in pieces]


def count_regions(layers, box=(-10, 10, -10, 10), tol=1e-9):
    """Number of linear (activation) regions inside the box."""
    return len(enumerate_regions(layers, box, tol))


# ----------------------------------------------------------------------------
# merging regions that carry the same affine function


def _adjacent_pairs(regions, eps):
    """Pairs (a, b) of regions sharing an edge of positive length.

    Shared edges always lie on the zero line of one neuron and both sides
    carry that neuron's tag, so only edges with the same tag are compared:
    collinear (within eps), opposite direction, overlap longer than eps.
    """
    P0, P1, tag, reg = [], [], [], []
    for r, R in enumerate(regions):
        V = R.vertices
        P0.append(V)
        P1.append(np.roll(V, -1, axis=0))
        tag.append(R.edge_neurons)
        reg.append(np.full(len(V), r))
    P0, P1 = np.concatenate(P0), np.concatenate(P1)
    tag, reg = np.concatenate(tag), np.concatenate(reg)
    pairs = []
    for t in np.unique(tag[tag >= 0]):
        idx = np.flatnonzero(tag == t)
        p0, d = P0[idx], P1[idx] - P0[idx]
        length = np.hypot(d[:, 0], d[:, 1])
        u = d / np.maximum(length, 1e-300)[:, None]
        # all edge pairs (e, f) of this neuron's (bent) line
        q0 = P0[idx][None, :, :] - p0[:, None, :]
        q1 = P1[idx][None, :, :] - p0[:, None, :]
        ux, uy = u[:, None, 0], u[:, None, 1]
        dist0 = ux * q0[..., 1] - uy * q0[..., 0]
        dist1 = ux * q1[..., 1] - uy * q1[..., 0]
        t0 = ux * q0[..., 0] + uy * q0[..., 1]
        t1 = ux * q1[..., 0] + uy * q1[..., 1]
        overlap = (np.minimum(length[:, None], np.maximum(t0, t1))
                   - np.maximum(0.0, np.minimum(t0, t1)))
        opposite = (u @ u.T) < 0
        ok = ((np.abs(dist0) <= eps) & (np.abs(dist1) <= eps) & (overlap > eps)
              & opposite & (reg[idx][:, None] < reg[idx][None, :]))
        e, f = np.nonzero(ok)
        pairs.extend(zip(reg[idx][e].tolist(), reg[idx][f].tolist()))
    return pairs


def affine_piece_labels(regions, rtol=1e-7):
    """Label per region; adjacent regions with equal affine function share a label.

    Union-find over neighbouring regions.  Only the gradients are compared:
    the output is continuous, so two affine functions that agree on a common
    edge of positive length differ by a multiple of that edge's line, and
    equal gradients imply equal offsets.
    """
    if not regions:
        return np.zeros(0, dtype=int)
    allv = np.concatenate([R.vertices for R in regions])
    scale = float(np.max(allv.max(axis=0) - allv.min(axis=0)))
    eps = 1e-6 * scale  # generous: shared edges are collinear up to rounding
    G = np.array([R.grad for R in regions])
    gtol = rtol * max(1.0, float(np.abs(G).max()))

    parent = list(range(len(regions)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in _adjacent_pairs(regions, eps):
        if np.all(np.abs(G[a] - G[b]) <= gtol):
            parent[find(a)] = find(b)
    roots = [find(i) for i in range(len(regions))]
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def count_affine_pieces(layers, box=(-10, 10, -10, 10), tol=1e-9):
    """Number of linear pieces of the function itself inside the box.

    Equals count_regions unless some neuron's kink is invisible in the
    output (e.g. a zero output weight), in which case neighbouring regions
    carry the same affine function and are merged.
    """
    labels = affine_piece_labels(enumerate_regions(layers, box, tol))
    return int(labels.max()) + 1 if len(labels) else 0


# ----------------------------------------------------------------------------
# grids, bounds, vertices, plotting


def grid_points(box=(-10, 10, -10, 10), n=500):
    """(n*n, 2) points of a regular grid covering the box (x varies fastest)."""
    xmin, xmax, ymin, ymax = box
    xx, yy = np.meshgrid(np.linspace(xmin, xmax, n), np.linspace(ymin, ymax, n))
    return np.column_stack([xx.ravel(), yy.ravel()])


def grid_pattern_count(layers, box=(-10, 10, -10, 10), n=500):
    """Distinct activation patterns on an n x n grid: a lower bound for the count.

    (Small regions can fall between grid points.  Each pattern belongs to
    one region only: with the full pattern fixed all pre-activations are
    affine, so its region is an intersection of half-planes, i.e. convex.)
    """
    P = activation_patterns(layers, grid_points(box, n))
    if P.shape[1] == 0:
        return 1
    # One integer key per pattern (64 neurons per uint64 word): a 1-D unique is ~4x faster
    # than np.unique(..., axis=0) on the bit matrix.
    packed = np.packbits(P, axis=1)
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    words = np.ascontiguousarray(packed).view(np.uint64)
    if words.shape[1] == 1:
        return len(np.unique(words[:, 0]))
    return len(np.unique(words, axis=0))


def max_regions_shallow(n):
    """Maximal number of regions of n lines in the plane: 1 + n + n(n-1)/2."""
    return 1 + n + n * (n - 1) // 2


def neuron_line_vertices(W, b):
    """All pairwise intersections of the lines W[i] . x + b[i] = 0, shape (M, 2).

    For one hidden layer every vertex of the region partition lies here
    (parallel pairs and zero rows are skipped).
    """
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    i, j = np.triu_indices(len(W), k=1)
    det = W[i, 0] * W[j, 1] - W[i, 1] * W[j, 0]
    norms = np.hypot(W[:, 0], W[:, 1])
    ok = np.abs(det) > 1e-12 * norms[i] * norms[j]
    i, j, det = i[ok], j[ok], det[ok]
    x = (-b[i] * W[j, 1] + b[j] * W[i, 1]) / det
    y = (-W[i, 0] * b[j] + W[j, 0] * b[i]) / det
    return np.column_stack([x, y])


def vertex_extent(layers, big=1e6, tol=1e-12):
    """(xmin, xmax, ymin, ymax) of all region vertices strictly inside [-big, big]^2.

    Vertices on the boundary of the huge box are artefacts of the box, all
    other vertices are crossings/bends of the neurons' lines.  Works for deep
    nets (a default-initialised 2-5-5-5-5-1 net can have vertices ~1e4 away,
    hence the large default).  Returns None if there is no such vertex (e.g.
    <= 1 line, or only parallel lines).  A small tol keeps tiny regions near
    the origin from being treated as slivers in the huge box.
    """
    regions = enumerate_regions(layers, (-big, big, -big, big), tol)
    V = np.concatenate([R.vertices for R in regions])
    inside = np.all(np.abs(V) < big * (1 - 1e-9), axis=1)
    V = V[inside]
    if len(V) == 0:
        return None
    return (float(V[:, 0].min()), float(V[:, 0].max()),
            float(V[:, 1].min()), float(V[:, 1].max()))


def box_containing_all_vertices(layers, margin=0.1, big=1e6, at_least=10.0):
    """Square box [-R, R]^2 containing all vertices, enlarged by `margin`.

    R = (1 + margin) * max |vertex coordinate|, but at least `at_least` so
    the sheet's [-10, 10]^2 is always included.
    """
    ext = vertex_extent(layers, big)
    R = at_least if ext is None else max(at_least, (1 + margin) * max(map(abs, ext)))
    return (-R, R, -R, R)


def region_boundaries(regions, closed=False):
    """List of (k, 2) vertex arrays, one per region, for plotting.

    closed=False suits matplotlib.collections.PolyCollection(polys,
    facecolors='none'); closed=True repeats the first vertex for plt.plot.
    """
    if closed:
        return [np.vstack([R.vertices, R.vertices[:1]]) for R in regions]
    return [R.vertices.copy() for R in regions]
