"""Tests for sheet05.truth (t_G, t_P and the probes of Bürger et al.) on synthetic activations."""
import random

import numpy as np
import pytest
import torch

from sheet05.truth import MassMeanProbe, TGProbe, TTPDProbe, fit_truth_directions, model_check

D = 64


def directions(seed=0):
    """Known t_G (norm 1.0) and t_P (norm 0.8), not orthogonal (cosine about 0.3)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, D))
    t_G = a / np.linalg.norm(a)
    b -= (b @ t_G) * t_G
    t_P = 0.8 * (0.3 * t_G + np.sqrt(1 - 0.3**2) * b / np.linalg.norm(b))
    return t_G, t_P


def dataset(t_G, t_P, polarity, n, frac_true, offset_seed, seed, noise, shift=0.0):
    """x = mu + tau t_G + tau p t_P + isotropic noise. The offset mu of the dataset is large
    (norm about 5) but orthogonal to t_G and t_P, plus `shift` if given."""
    rng = np.random.default_rng(seed)
    mu = 5.0 * np.random.default_rng(offset_seed).standard_normal(D) / np.sqrt(D)
    Q = np.linalg.qr(np.column_stack([t_G, t_P]))[0]
    mu = mu - Q @ (Q.T @ mu) + shift
    y = (np.arange(n) < round(frac_true * n)).astype(int)
    tau = 2.0 * y - 1.0
    X = mu + np.outer(tau, t_G + polarity * t_P) + noise * rng.standard_normal((n, D))
    return X, y


def topic(t_G, t_P, topic_seed, seed, n=400, frac_true=0.5, shift=0.0, noise=0.3, polarity_shift=0.0):
    """An affirmative and a negated dataset on one topic: lists X, y and the polarities.
    Both have the offset of the topic plus `shift`, the affirmative one also +polarity_shift
    and the negated one -polarity_shift."""
    Xa, ya = dataset(t_G, t_P, +1, n, frac_true, topic_seed, seed, noise, shift + polarity_shift)
    Xn, yn = dataset(t_G, t_P, -1, n, frac_true, topic_seed, seed + 1, noise, shift - polarity_shift)
    return [Xa, Xn], [ya, yn], [+1, -1]


def cosine(a, b):
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b)


# --------------------------------------------------------------------------- t_G and t_P


@pytest.mark.parametrize("frac_true", [0.5, 0.35])
def test_fit_recovers_known_directions(frac_true):
    t_G, t_P = directions()
    # this topic's offset also has a large component in the truth plane: centring removes it
    X1, y1, p1 = topic(t_G, t_P, topic_seed=10, seed=1, frac_true=frac_true, shift=3 * t_G - 2 * t_P, noise=0.5)
    X2, y2, p2 = topic(t_G, t_P, topic_seed=20, seed=3, frac_true=0.5, noise=0.5)
    g, p = fit_truth_directions(X1 + X2, y1 + y2, p1 + p2)
    assert g.dtype == p.dtype == np.float64 and g.shape == p.shape == (D,)
    assert cosine(g, t_G) > 0.99 and cosine(p, t_P) > 0.99
    assert np.linalg.norm(g) == pytest.approx(np.linalg.norm(t_G), rel=0.03)
    assert np.linalg.norm(p) == pytest.approx(np.linalg.norm(t_P), rel=0.03)
    # noise-free data are recovered to round-off, whatever the offsets and the class balance
    # (centring x without the design would shrink both by 1 - mean(tau)^2 if unbalanced)
    _, y, pol = topic(t_G, t_P, topic_seed=30, seed=5, frac_true=frac_true)
    noiseless = [7.0 * k + np.outer(2.0 * yk - 1, t_G + pk * t_P) for k, (yk, pk) in enumerate(zip(y, pol))]
    g0, p0 = fit_truth_directions(noiseless, y, pol)
    np.testing.assert_allclose(g0, t_G, atol=1e-12)
    np.testing.assert_allclose(p0, t_P, atol=1e-12)


def test_balanced_closed_form_and_mass_mean_identity():
    t_G, t_P = directions(seed=1)
    X, y, pol = topic(t_G, t_P, topic_seed=40, seed=7)
    g, p = fit_truth_directions(X, y, pol)
    delta = [Xk[yk == 1].mean(0) - Xk[yk == 0].mean(0) for Xk, yk in zip(X, y)]
    np.testing.assert_allclose(g, (delta[0] + delta[1]) / 4, atol=1e-12)
    np.testing.assert_allclose(p, (delta[0] - delta[1]) / 4, atol=1e-12)
    # balanced datasets of equal size: the pooled mass-mean direction is exactly 2 t_G
    mm = MassMeanProbe().fit(np.vstack(X), np.concatenate(y))
    np.testing.assert_allclose(mm.direction_, 2 * g, atol=1e-12)


# --------------------------------------------------------------------------- probes


def test_probes_classify_an_unseen_topic_with_negations():
    t_G, t_P = directions(seed=2)
    X_tr, y_tr, pol = topic(t_G, t_P, topic_seed=50, seed=11)
    X_te, y_te, _ = topic(t_G, t_P, topic_seed=60, seed=13, n=300)
    probes = {
        "mass-mean": MassMeanProbe().fit(np.vstack(X_tr), np.concatenate(y_tr)),
        "t_G": TGProbe().fit(X_tr, y_tr, pol),
        "TTPD": TTPDProbe().fit(X_tr, y_tr, pol),
        "TTPD (C = 1)": TTPDProbe(C=1.0).fit(X_tr, y_tr, pol),
    }
    for name, probe in probes.items():
        for Xk, yk in zip(X_te, y_te):           # affirmative, then negated
            assert probe.score(Xk, yk) > 0.95, name
            s = probe.decision_function(Xk)
            assert s.shape == (len(yk),) and np.mean(s[yk == 1]) > np.mean(s[yk == 0]), name


def test_ttpd_corrects_a_polarity_dependent_offset_along_t_G():
    """If negated statements sit lower along t_G than affirmative ones (on every topic), no
    single threshold on x . t_G fits both; TTPD's polarity feature moves the threshold."""
    t_G, t_P = directions(seed=9)
    m = np.random.default_rng(99).standard_normal(D)
    Q = np.linalg.qr(np.column_stack([t_G, t_P]))[0]
    m -= Q @ (Q.T @ m)
    polarity_shift = 0.9 * t_G + 3.0 * m / np.linalg.norm(m)
    X_tr, y_tr, pol = topic(t_G, t_P, topic_seed=140, seed=43, polarity_shift=polarity_shift)
    X_te, y_te, _ = topic(t_G, t_P, topic_seed=150, seed=47, n=300, polarity_shift=polarity_shift)
    t_g, ttpd = TGProbe().fit(X_tr, y_tr, pol), TTPDProbe().fit(X_tr, y_tr, pol)
    assert t_g.score(X_te[1], y_te[1]) < 0.8             # negated: true ones fall below the threshold
    for Xk, yk in zip(X_te, y_te):
        assert ttpd.score(Xk, yk) > 0.97
    f = [ttpd.features(Xk)[:, 1] for Xk in X_te]       # x . d_pol separates the polarities
    assert f[1].min() > f[0].max()


def test_affirmative_only_direction_fails_on_negations():
    """The control that makes the test above meaningful: with |t_P| close to |t_G|, the
    mass-mean direction of affirmative statements alone misranks negated ones."""
    t_G, t_P = directions(seed=3)
    t_P = 1.2 * t_P / np.linalg.norm(t_P)
    X, y, pol = topic(t_G, t_P, topic_seed=70, seed=17)
    aff_only = MassMeanProbe().fit(X[0], y[0])
    both = TGProbe().fit(X, y, pol)
    assert aff_only.score(X[1], y[1]) < 0.6 < 0.95 < both.score(X[1], y[1])


def test_ranking_transfers_but_threshold_does_not_if_the_topic_is_shifted():
    """A new topic whose offset has a component along t_G keeps the ranking (AUROC) but
    moves the scores past a threshold fitted on the training topic (accuracy)."""
    from sklearn.metrics import roc_auc_score

    t_G, t_P = directions(seed=8)
    X_tr, y_tr, pol = topic(t_G, t_P, topic_seed=120, seed=37)
    X_te, y_te, _ = topic(t_G, t_P, topic_seed=130, seed=41, shift=-1.5 * t_G)
    probe = TGProbe().fit(X_tr, y_tr, pol)
    for Xk, yk in zip(X_te, y_te):
        assert roc_auc_score(yk, probe.decision_function(Xk)) > 0.99
        assert probe.score(Xk, yk) < 0.7
        assert np.mean(probe.predict(Xk)) < 0.2           # almost everything called false


def test_thresholds():
    t_G, t_P = directions(seed=4)
    # unbalanced, so that the midpoint of the class means is not the mean of all scores
    X, y, pol = topic(t_G, t_P, topic_seed=80, seed=19, frac_true=0.3)
    s = np.vstack(X) @ TGProbe().fit(X, y, pol).direction_
    ys = np.concatenate(y)
    assert TGProbe().fit(X, y, pol).threshold_ == pytest.approx(0.5 * (s[ys == 1].mean() + s[ys == 0].mean()), rel=1e-12)
    assert abs(s.mean() - 0.5 * (s[ys == 1].mean() + s[ys == 0].mean())) > 0.1
    X, y, pol = topic(t_G, t_P, topic_seed=80, seed=19)
    Xs, ys = np.vstack(X), np.concatenate(y)
    tg, mm = TGProbe().fit(X, y, pol), MassMeanProbe().fit(Xs, ys)
    s = Xs @ tg.direction_
    np.testing.assert_array_equal(tg.predict(Xs), (s > tg.threshold_).astype(int))
    # same direction (2 t_G); with symmetric classes the maximum-likelihood boundary of
    # mass-mean lies close to the midpoint
    assert mm.threshold_ / 2 == pytest.approx(tg.threshold_, abs=0.05 * np.ptp(s))
    assert mm.score(Xs, ys) > 0.97 and tg.score(Xs, ys) > 0.97


# --------------------------------------------------------------------------- RNG and errors


def test_no_global_random_state_is_touched():
    t_G, t_P = directions(seed=5)
    X, y, pol = topic(t_G, t_P, topic_seed=90, seed=23)
    before = (np.random.get_state(), random.getstate(), torch.get_rng_state())
    fit_truth_directions(X, y, pol)
    MassMeanProbe().fit(np.vstack(X), np.concatenate(y)).predict(X[0])
    TGProbe().fit(X, y, pol).predict(X[1])
    TTPDProbe().fit(X, y, pol).predict(X[0])
    after = (np.random.get_state(), random.getstate(), torch.get_rng_state())
    assert before[0][0] == after[0][0] and np.array_equal(before[0][1], after[0][1])
    assert before[0][2:] == after[0][2:]
    assert before[1] == after[1]
    assert torch.equal(before[2], after[2])


def test_results_are_deterministic():
    t_G, t_P = directions(seed=6)
    X, y, pol = topic(t_G, t_P, topic_seed=100, seed=29)
    a, b = TTPDProbe().fit(X, y, pol), TTPDProbe().fit(X, y, pol)
    np.testing.assert_array_equal(a.decision_function(X[0]), b.decision_function(X[0]))


def test_bad_input_raises_clear_value_errors():
    t_G, t_P = directions(seed=7)
    X, y, pol = topic(t_G, t_P, topic_seed=110, seed=31, n=40)
    with pytest.raises(ValueError, match="2 activation arrays, 2 label arrays and 1 polarities"):
        fit_truth_directions(X, y, [1])
    with pytest.raises(ValueError, match=r"dataset 1: need X of shape \(n, d\)"):
        fit_truth_directions(X, [y[0], y[1][:-1]], pol)
    with pytest.raises(ValueError, match="dataset 0 has only one class"):
        fit_truth_directions([X[0][y[0] == 1], X[1]], [y[0][y[0] == 1], y[1]], pol)
    with pytest.raises(ValueError, match="only identifiable with affirmative and negated"):
        fit_truth_directions(X, y, [1, 1])
    with pytest.raises(ValueError, match=r"must be \+1 \(affirmative\) or -1"):
        fit_truth_directions(X, y, [1, 0])
    with pytest.raises(ValueError, match="same number of features"):
        fit_truth_directions([X[0], X[1][:, :-1]], y, pol)
    with pytest.raises(ValueError, match="labels must be 0"):
        MassMeanProbe().fit(X[0], 2 * y[0])
    with pytest.raises(ValueError, match="only one class"):
        MassMeanProbe().fit(X[0], np.ones(len(y[0]), dtype=int))
    with pytest.raises(ValueError, match="need X of shape"):
        MassMeanProbe().fit(X[0], y[0][:-1])
    with pytest.raises(ValueError, match="only one class"):
        TTPDProbe().fit([X[0], X[1][y[1] == 0]], [y[0], y[1][y[1] == 0]], pol)


def test_model_check_on_data_of_the_model_and_on_data_it_misses():
    t_G, t_P = directions()
    X_list, y_list, pol = topic(t_G, t_P, topic_seed=1, seed=2, n=2000, noise=0.05)
    origin = np.zeros(D)
    for X, y, p in zip(X_list, y_list, pol):
        c = model_check(t_G, t_P, X, y, p, origin)
        assert c["share"] > 0.99                                   # the class difference lies in the plane
        assert c["half_gap"] == pytest.approx(c["half_gap_model"], rel=0.02)
        assert (c["auroc_tP"] > 0.99) if p == 1 else (c["auroc_tP"] < 0.01)
    # a dataset whose truth signal lies mostly outside the plane: a third direction carries it
    rng = np.random.default_rng(3)
    extra = rng.standard_normal(D)
    extra -= np.linalg.qr(np.column_stack([t_G, t_P]))[0] @ (np.linalg.qr(np.column_stack([t_G, t_P]))[0].T @ extra)
    extra *= 2 / np.linalg.norm(extra)
    X, y = X_list[0], y_list[0]
    X = X + np.outer(2.0 * y - 1.0, extra)
    c = model_check(t_G, t_P, X, y, +1, origin)
    assert c["share"] < 0.5 and c["half_gap"] == pytest.approx(c["half_gap_model"], rel=0.05)


def test_boundary_along_the_direction():
    t_G, t_P = directions()
    X_list, y_list, pol = topic(t_G, t_P, topic_seed=1, seed=2)
    probe = TGProbe().fit(X_list, y_list, pol)
    origin = np.vstack(X_list).mean(axis=0)
    s = probe.boundary_from(origin)
    on_boundary = origin + s * probe.direction_ / np.linalg.norm(probe.direction_)
    assert abs(probe.decision_function(on_boundary[None])[0]) < 1e-9
