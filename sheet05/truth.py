"""General truth direction t_G, polarity-sensitive direction t_P and probes built on them.

After Bürger, Hamprecht and Nadler, "Truth is Universal: Robust Detection of Lies in LLMs"
(NeurIPS 2024). Dataset k (one topic, one polarity) is modelled as

    x_i = mu_k + tau_i t_G + tau_i p_k t_P + noise,

with truth label tau_i = +1 (true) or -1 (false), polarity p_k = +1 (affirmative) or -1
(negated) and an offset mu_k, removed by centring each dataset on its own mean. With the
design rows d_i = (tau_i, tau_i p_k), also centred per dataset (no change for a balanced
dataset, where this is the paper's regression), least squares gives the 2x2 normal
equations (D^T D) [t_G; t_P] = D^T X~ (X~: the centred x). If both polarities have n/2
statements and every dataset is balanced, D^T D = n I and
    t_G = (Delta_aff + Delta_neg) / 4,   t_P = (Delta_aff - Delta_neg) / 4,
with Delta = mean(true) - mean(false) of one dataset: t_G is half the mass-mean direction
of the pooled data. All in float64; nothing here draws random numbers.
"""
import numpy as np
from sklearn.linear_model import LogisticRegression

# What the appendix of the PDF prints (input checks left out).
__appendix__ = ["fit_truth_directions", "_pooled_mean", "_DirectionProbe", "MassMeanProbe",
                "TGProbe", "TTPDProbe"]

def _check_xy(X, y, what="the data"):
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"{what}: need X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"{what}: labels must be 0 (false) or 1 (true)")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{what} has only one class (label {y[0]}); true and false statements are needed")
    return X, y.astype(int)


def fit_truth_directions(X_list, y_list, polarities):
    """Least-squares (t_G, t_P), float64 vectors of length d, from the datasets X_list[k]
    (n_k, d) with labels y_list[k] (1 = true) and polarities[k] = +1 (affirmative) or -1
    (negated); see the module docstring."""
    if not len(X_list) == len(y_list) == len(polarities):
        raise ValueError(f"got {len(X_list)} activation arrays, {len(y_list)} label arrays "
                         f"and {len(polarities)} polarities; need one of each per dataset")
    data = [_check_xy(X, y, f"dataset {k}") for k, (X, y) in enumerate(zip(X_list, y_list))]
    if len({X.shape[1] for X, _ in data}) > 1:
        raise ValueError("all datasets must have the same number of features")
    if not set(polarities) <= {1, -1}:
        raise ValueError(f"polarities must be +1 (affirmative) or -1 (negated), got {list(polarities)}")
    if len(set(polarities)) < 2:
        raise ValueError("t_G and t_P are only identifiable with affirmative and negated datasets")
    DtD, DtX = np.zeros((2, 2)), np.zeros((2, data[0][0].shape[1]))
    for (X, y), p in zip(data, polarities):
        tau = 2.0 * y - 1.0
        D = np.column_stack([tau, p * tau])
        D -= D.mean(axis=0)                      # no change for a balanced dataset
        DtD += D.T @ D
        DtX += D.T @ (X - X.mean(axis=0))        # (with D centred, X~ or X give the same)
    t_G, t_P = np.linalg.solve(DtD, DtX)
    return t_G, t_P


def _pooled_mean(X_list):
    """Mean over all rows of the arrays in X_list, without stacking them."""
    return sum(X.sum(axis=0) for X in X_list) / sum(len(X) for X in X_list)


class _Probe:
    """predict and score from decision_function, as in scikit-learn: 'true' (1) where s > 0."""

    def predict(self, X):
        return (self.decision_function(X) > 0).astype(int)

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))


class _DirectionProbe(_Probe):
    """Score s(x) = x . direction_ - threshold_."""

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.direction_ - self.threshold_

    def boundary_from(self, origin):
        """Where the decision boundary crosses the line origin + s * direction_/|direction_|: s."""
        return (self.threshold_ - np.asarray(origin, dtype=np.float64) @ self.direction_) \
            / np.linalg.norm(self.direction_)


class MassMeanProbe(_DirectionProbe):
    """direction_ = mean(true) - mean(false) of the pooled training data. As in the code of
    Bürger et al., the threshold is the boundary of a one-feature logistic regression
    (unpenalised, i.e. maximum likelihood) on the training projections x . direction_."""

    def fit(self, X, y):
        X, y = _check_xy(X, y)
        self.direction_ = (y / y.sum() - (1 - y) / (1 - y).sum()) @ X   # mean(true) - mean(false)
        lr = LogisticRegression(C=np.inf, tol=1e-6, max_iter=10_000).fit((X @ self.direction_)[:, None], y)
        self.threshold_ = -lr.intercept_[0] / lr.coef_[0, 0]
        return self


class TGProbe(_DirectionProbe):
    """Projection on t_G alone. The threshold lies midway between the mean projections of the
    true and the false training statements, where the model puts the centre of a dataset."""

    def fit(self, X_list, y_list, polarities):
        self.t_G_, self.t_P_ = fit_truth_directions(X_list, y_list, polarities)
        self.direction_ = self.t_G_
        s = np.concatenate([np.asarray(X, dtype=np.float64) @ self.t_G_ for X in X_list])
        y = np.concatenate(y_list)
        self.threshold_ = 0.5 * (s[y == 1].mean() + s[y == 0].mean())
        return self


class TTPDProbe(_Probe):
    """TTPD of Bürger et al. without their sqrt(token count) scaling: logistic regression
    (inverse penalty C; unpenalised by default, as in the paper) on the two features
    x . t_G and x . d_pol, where d_pol = mean(negated) - mean(affirmative) training
    activations (closed form; the paper fits d_pol by logistic regression instead)."""

    def __init__(self, C=np.inf):
        self.C = C

    def fit(self, X_list, y_list, polarities):
        self.t_G_, self.t_P_ = fit_truth_directions(X_list, y_list, polarities)
        X_list = [np.asarray(X, dtype=np.float64) for X in X_list]
        negated = [X for X, p in zip(X_list, polarities) if p == -1]
        affirmative = [X for X, p in zip(X_list, polarities) if p == 1]
        self.d_pol_ = _pooled_mean(negated) - _pooled_mean(affirmative)
        self.lr_ = LogisticRegression(C=self.C, tol=1e-6, max_iter=10_000)
        self.lr_.fit(np.vstack([self.features(X) for X in X_list]), np.concatenate(y_list))
        return self

    def features(self, X):
        """The two TTPD features (x . t_G, x . d_pol), shape (n, 2)."""
        X = np.asarray(X, dtype=np.float64)
        return np.column_stack([X @ self.t_G_, X @ self.d_pol_])

    def decision_function(self, X):
        return self.lr_.decision_function(self.features(X))


def model_check(t_G, t_P, X, y, polarity, origin):
    """How far the two-direction model describes one dataset (activations X, labels y, polarity
    +1 or -1). With Delta = mean(true) - mean(false), the model predicts Delta = 2 (t_G + p t_P).

    Returns auroc_tP (AUROC of x . t_P), share (fraction of |Delta|^2 in span(t_G, t_P)),
    half_gap (Delta . u/2 with u = t_G/|t_G|), half_gap_model (the model's value of it,
    |t_G| + p t_P . u) and centre ((mean of the two class means - origin) . u).
    """
    from sklearn.metrics import roc_auc_score

    X, y = _check_xy(X, y)
    u = t_G / np.linalg.norm(t_G)
    mu_true, mu_false = X[y == 1].mean(axis=0), X[y == 0].mean(axis=0)
    delta = mu_true - mu_false
    basis = np.linalg.qr(np.column_stack([t_G, t_P]))[0]
    return {"auroc_tP": roc_auc_score(y, X @ t_P),
            "share": np.sum((basis.T @ delta) ** 2) / np.sum(delta ** 2),
            "half_gap": delta @ u / 2,
            "half_gap_model": np.linalg.norm(t_G) + polarity * t_P @ u,
            "centre": ((mu_true + mu_false) / 2 - origin) @ u}
