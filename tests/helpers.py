"""Shared helpers for the gmmlib package tests (a plain module, not a conftest).

The helpers here are *independent* of gmmlib: they build random problems and
expand parameters with plain NumPy/SciPy, so the tests compare gmmlib against
computations that do not share its code. Tests import it as ``import helpers as h``
(``pyproject.toml`` puts ``tests/`` on pytest's ``pythonpath``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

#: The four covariance types, in the order the tests are parametrised.
COV_TYPES = ("full", "diag", "spherical", "tied")


# -- random problems -------------------------------------------------------------------
def random_spd(rng, d, *, scale=1.0, min_eig=0.3):
    """A random symmetric positive-definite d×d matrix with eigenvalues >= ``min_eig``·scale."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = scale * (min_eig + rng.uniform(0.0, 2.0, size=d))
    cov = (q * eig) @ q.T
    return (cov + cov.T) / 2


def random_covariances(rng, n_components, d, covariance_type, *, scale=1.0):
    """Random valid covariances shaped as scikit-learn's ``covariances_`` for the type."""
    if covariance_type == "full":
        return np.stack([random_spd(rng, d, scale=scale) for _ in range(n_components)])
    if covariance_type == "tied":
        return random_spd(rng, d, scale=scale)
    if covariance_type == "diag":
        return scale * rng.uniform(0.3, 2.0, size=(n_components, d))
    if covariance_type == "spherical":
        return scale * rng.uniform(0.3, 2.0, size=n_components)
    raise AssertionError(covariance_type)


def random_params(rng, n_components, d, covariance_type="full", *, spread=3.0):
    """Random (weights, means, covariances) of a mixture."""
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = spread * rng.standard_normal((n_components, d))
    return weights, means, random_covariances(rng, n_components, d, covariance_type)


def to_full(covariances, covariance_type, n_components, d):
    """Expand covariances of any type to a (K, d, d) stack of full matrices."""
    c = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return c.copy()
    if covariance_type == "tied":
        return np.broadcast_to(c, (n_components, d, d)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in c])
    if covariance_type == "spherical":
        return np.stack([v * np.eye(d) for v in c])
    raise AssertionError(covariance_type)


def precisions_for_sklearn(covariances, covariance_type):
    """``precisions_init`` for scikit-learn equivalent to our ``covariances_init``."""
    c = np.asarray(covariances, dtype=float)
    if covariance_type in ("full", "tied"):
        p = np.linalg.inv(c)
        return (p + np.swapaxes(p, -1, -2)) / 2
    return 1.0 / c


def draw_mixture(rng, n, weights, means, full_covs):
    """Samples and labels from a mixture, drawn with NumPy only (not gmmlib)."""
    labels = rng.choice(len(weights), size=n, p=weights)
    X = np.empty((n, means.shape[1]))
    for k in range(len(weights)):
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], full_covs[k], size=idx.sum())
    return X, labels


def blobs(rng, n, n_components, d, covariance_type="full", *, spread=4.0):
    """Data from a random mixture (NumPy only); returns X, labels and the true params."""
    w, m, c = random_params(rng, n_components, d, covariance_type, spread=spread)
    X, labels = draw_mixture(rng, n, w, m, to_full(c, covariance_type, n_components, d))
    return X, labels, (w, m, c)


# -- independent formulas (SciPy) ------------------------------------------------------
def scipy_log_phi(X, means, full_covs):
    """log φ(x_i | μ_k, Σ_k) of shape (N, K) with scipy.stats.multivariate_normal."""
    return np.column_stack(
        [
            multivariate_normal(m, c).logpdf(X).reshape(-1)
            for m, c in zip(means, full_covs, strict=True)
        ]
    )


def scipy_log_joint(X, weights, means, full_covs):
    return scipy_log_phi(X, means, full_covs) + np.log(weights)


def scipy_log_likelihood(X, weights, means, full_covs, sample_weight=None):
    per_sample = logsumexp(scipy_log_joint(X, weights, means, full_covs), axis=1)
    if sample_weight is None:
        return float(per_sample.sum())
    return float(np.asarray(sample_weight) @ per_sample)


def scipy_q(X, resp, weights, means, full_covs):
    """The collapsed Q, Σ_i Σ_k γ_ik (log p_k + log φ_ik), transcribed with SciPy."""
    return float(np.sum(resp * scipy_log_joint(X, weights, means, full_covs)))


def match_components(estimated_means, true_means):
    """Permutation ``perm`` such that ``estimated_means[perm]`` lines up with ``true_means``."""
    cost = ((true_means[:, None, :] - estimated_means[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm


def same_partition(a, b):
    """True when two labelings define the same partition (up to renaming the labels)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def assert_params_close(gm_a, gm_b, *, rtol=1e-10, atol=1e-10):
    """Fitted weights, means and covariances of two estimators agree."""
    np.testing.assert_allclose(gm_a.weights_, gm_b.weights_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(gm_a.means_, gm_b.means_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(gm_a.covariances_, gm_b.covariances_, rtol=rtol, atol=atol)


# -- EM iterated by the formula functions and by the engine (test_engine, test_wide) ------
def cov_of_type(cov_full, covariance_type):
    """Full covariances (K, d, d) turned into those of ``covariance_type``."""
    if covariance_type == "full":
        return cov_full
    if covariance_type == "tied":
        return cov_full.mean(axis=0)
    diag = np.diagonal(cov_full, axis1=1, axis2=2)
    return diag if covariance_type == "diag" else diag.mean(axis=1)


def reference_em(X, start, covariance_type, sample_weight, *, reg_covar, n_iter):
    """The formula functions iterated: responsibilities, then m_step.

    ``start`` is (weights, means, full covariances); returns (the mean log-likelihood
    before each iteration, the last parameters).
    """
    from gmmlib import log_likelihood, m_step, responsibilities

    w, m, c = start[0], start[1], cov_of_type(start[2], covariance_type)
    total = X.shape[0] if sample_weight is None else sample_weight.sum()
    history = []
    for _ in range(n_iter):
        history.append(log_likelihood(X, w, m, c, covariance_type, sample_weight) / total)
        resp = responsibilities(X, w, m, c, covariance_type)
        w, m, c = m_step(X, resp, covariance_type, reg_covar, sample_weight)
    return history, (w, m, c)


def engine_em(engine, start, covariance_type, *, n_iter, factor=None):
    """``engine.step`` iterated from the same start, as ``reference_em`` returns it;
    each step given ``factor(covariances, covariance_type)`` (by default
    ``precision_cholesky``)."""
    from gmmlib import precision_cholesky

    factor = factor or precision_cholesky
    w, m, c = start[0], start[1], cov_of_type(start[2], covariance_type)
    history = []
    with engine:
        for _ in range(n_iter):
            ll, w, m, c = engine.step(w, m, factor(c, covariance_type))
            history.append(ll)
    return history, (w, m, c)


def assert_same_em(result, expected, *, history_rtol=0.0, history_atol=1e-10):
    """Two runs of ``reference_em`` / ``engine_em``: histories and parameters to 1e-10."""
    (h1, p1), (h2, p2) = result, expected
    np.testing.assert_allclose(h1, h2, rtol=history_rtol, atol=history_atol)
    for a, b in zip(p1, p2, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
