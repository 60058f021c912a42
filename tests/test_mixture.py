"""The mixture density (eq-marginal-density) and the generative process (eq-generative-model)."""

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

import gmmlib


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_mixture_density_is_the_weighted_sum_of_densities(covariance_type):
    rng = np.random.default_rng(21)
    K, d = 3, 2
    w, m, c = h.random_params(rng, K, d, covariance_type)
    X = 3 * rng.standard_normal((40, d))
    full = h.to_full(c, covariance_type, K, d)
    direct = sum(w[k] * multivariate_normal(m[k], full[k]).pdf(X) for k in range(K))
    np.testing.assert_allclose(
        gmmlib.mixture_density(X, w, m, c, covariance_type), direct, rtol=1e-11
    )
    np.testing.assert_allclose(
        gmmlib.log_mixture_density(X, w, m, c, covariance_type), np.log(direct), rtol=1e-11
    )


def test_mixture_with_one_component_is_the_gaussian():
    rng = np.random.default_rng(22)
    cov = h.random_spd(rng, 3)
    X = rng.standard_normal((10, 3))
    np.testing.assert_allclose(
        gmmlib.log_mixture_density(X, [1.0], np.zeros((1, 3)), cov[None]),
        multivariate_normal(np.zeros(3), cov).logpdf(X),
        rtol=1e-12,
    )


def test_zero_weight_component_contributes_nothing():
    rng = np.random.default_rng(23)
    w, m, c = h.random_params(rng, 3, 2)
    X = rng.standard_normal((15, 2))
    w0 = np.array([w[0] + w[2], w[1], 0.0])
    expected = gmmlib.log_mixture_density(X, w0[:2], m[:2], c[:2])
    np.testing.assert_allclose(gmmlib.log_mixture_density(X, w0, m, c), expected, rtol=1e-13)


def test_high_dimension_log_mixture_density_stays_finite():
    rng = np.random.default_rng(24)
    K, d = 3, 500
    w = np.array([0.2, 0.3, 0.5])
    m = rng.standard_normal((K, d))
    c = rng.uniform(1.0, 3.0, size=(K, d))
    X = m[1] + rng.standard_normal((6, d)) * np.sqrt(c[1])
    # independent per-component log-densities: a diagonal Gaussian is a product of 1-D normals
    log_phi = np.column_stack(
        [norm.logpdf(X, loc=m[k], scale=np.sqrt(c[k])).sum(axis=1) for k in range(K)]
    )
    with np.errstate(under="ignore"):
        direct = (w * np.exp(log_phi)).sum(axis=1)
    assert np.all(direct == 0.0)  # textbook sum underflows: its log would be -inf
    got = gmmlib.log_mixture_density(X, w, m, c, "diag")
    assert np.all(np.isfinite(got))
    log_terms = np.log(w) + log_phi
    np.testing.assert_allclose(got, logsumexp(log_terms, axis=1), rtol=1e-12)


def test_far_points_log_mixture_density_matches_closed_form():
    """Far from all components only the nearest term matters; check against the algebra."""
    w = np.array([0.4, 0.6])
    m = np.array([[0.0, 0.0], [3.0, 0.0]])
    c = np.array([1.0, 1.0])
    X = np.array([[-60.0, 0.0], [100.0, 20.0]])
    assert np.all(gmmlib.mixture_density(X, w, m, c, "spherical") == 0.0)
    got = gmmlib.log_mixture_density(X, w, m, c, "spherical")
    sq = ((X[:, None, :] - m[None]) ** 2).sum(-1)
    terms = np.log(w) - np.log(2 * np.pi) - sq / 2
    # log(a + b) = max + log1p(exp(min - max)), written out by hand
    hi, lo = terms.max(1), terms.min(1)
    np.testing.assert_allclose(got, hi + np.log1p(np.exp(lo - hi)), rtol=1e-14)
    assert np.all(np.isfinite(got))


# -- sampling ------------------------------------------------------------------------
def test_sample_mixture_is_reproducible():
    w, m, c = gmmlib.article_parameters()
    a = gmmlib.sample_mixture(300, w, m, c, random_state=5)
    b = gmmlib.sample_mixture(300, w, m, c, random_state=5)
    other = gmmlib.sample_mixture(300, w, m, c, random_state=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], other[0])
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(
        gmmlib.sample_mixture(50, w, m, c, random_state=g1)[0],
        gmmlib.sample_mixture(50, w, m, c, random_state=g2)[0],
    )


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_sample_mixture_statistics_match_parameters(covariance_type):
    rng = np.random.default_rng(25)
    K, d, n = 3, 2, 30_000
    w = np.array([0.2, 0.5, 0.3])
    m = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    c = h.random_covariances(rng, K, d, covariance_type)
    X, labels = gmmlib.sample_mixture(n, w, m, c, covariance_type, random_state=rng)
    assert X.shape == (n, d) and labels.shape == (n,)
    counts = np.bincount(labels, minlength=K)
    # frequencies within 5 binomial standard deviations
    np.testing.assert_array_less(np.abs(counts / n - w), 5 * np.sqrt(w * (1 - w) / n))
    full = h.to_full(c, covariance_type, K, d)
    for k in range(K):
        Xk = X[labels == k]
        np.testing.assert_allclose(Xk.mean(0), m[k], atol=0.06)
        np.testing.assert_allclose(np.cov(Xk.T), full[k], atol=0.1)
    # the order of the samples carries no information about the labels
    assert not np.all(np.diff(labels) >= 0)


def test_sample_mixture_rejects_invalid_parameters():
    w, m, c = gmmlib.article_parameters()
    with pytest.raises(ValueError, match="sum to 1"):
        gmmlib.sample_mixture(10, [0.5, 0.5, 0.5], m, c)
    with pytest.raises(ValueError, match="n_samples must be at least 1"):
        gmmlib.sample_mixture(0, w, m, c)
