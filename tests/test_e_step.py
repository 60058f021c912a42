"""The E-step (eq-responsibility) and the log-likelihood (eq-log-likelihood)."""

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from scipy.stats import norm

import gmmlib


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_responsibilities_are_bayes_rule(covariance_type):
    rng = np.random.default_rng(31)
    K, d = 3, 2
    w, m, c = h.random_params(rng, K, d, covariance_type)
    X = 3 * rng.standard_normal((50, d))
    full = h.to_full(c, covariance_type, K, d)
    joint = w * np.exp(h.scipy_log_phi(X, m, full))  # p_k φ_ik, no underflow at this scale
    expected = joint / joint.sum(axis=1, keepdims=True)
    gamma = gmmlib.responsibilities(X, w, m, c, covariance_type)
    np.testing.assert_allclose(gamma, expected, rtol=1e-10, atol=1e-15)
    assert np.all(gamma >= 0)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(
        np.exp(gmmlib.log_responsibilities(X, w, m, c, covariance_type)), gamma, rtol=1e-14
    )


def test_log_responsibilities_survive_where_the_direct_ratio_is_0_over_0():
    rng = np.random.default_rng(32)
    K, d = 2, 500
    w = np.array([0.3, 0.7])
    m = rng.standard_normal((K, d))
    c = rng.uniform(1.0, 3.0, size=(K, d))
    X = m[0] + rng.standard_normal((4, d)) * np.sqrt(c[0])
    log_phi = np.column_stack(
        [norm.logpdf(X, loc=m[k], scale=np.sqrt(c[k])).sum(axis=1) for k in range(K)]
    )
    with np.errstate(under="ignore", invalid="ignore"):
        joint = w * np.exp(log_phi)
        naive = joint / joint.sum(axis=1, keepdims=True)
    assert np.all(np.isnan(naive))  # the textbook ratio is 0/0
    log_gamma = gmmlib.log_responsibilities(X, w, m, c, "diag")
    assert np.all(np.isfinite(log_gamma))
    # independent: γ_i0 = 1 / (1 + exp(log p_1 φ_i1 − log p_0 φ_i0)), written with logaddexp
    a = np.log(w[0]) + log_phi[:, 0]
    b = np.log(w[1]) + log_phi[:, 1]
    np.testing.assert_allclose(log_gamma[:, 0], -np.logaddexp(0.0, b - a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_gamma[:, 1], -np.logaddexp(0.0, a - b), rtol=1e-12, atol=1e-12)
    gamma = gmmlib.responsibilities(X, w, m, c, "diag")
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_log_likelihood_is_the_sum_of_log_marginals(covariance_type):
    rng = np.random.default_rng(33)
    K, d = 3, 3
    w, m, c = h.random_params(rng, K, d, covariance_type)
    X = 3 * rng.standard_normal((40, d))
    full = h.to_full(c, covariance_type, K, d)
    direct = np.sum(np.log(np.exp(h.scipy_log_phi(X, m, full)) @ w))
    np.testing.assert_allclose(
        gmmlib.log_likelihood(X, w, m, c, covariance_type), direct, rtol=1e-12
    )


def test_log_likelihood_with_sample_weight():
    rng = np.random.default_rng(34)
    w, m, c = h.random_params(rng, 2, 2)
    X = 2 * rng.standard_normal((12, 2))
    sw = rng.uniform(0, 3, size=12)
    np.testing.assert_allclose(
        gmmlib.log_likelihood(X, w, m, c, sample_weight=sw),
        h.scipy_log_likelihood(X, w, m, c, sample_weight=sw),
        rtol=1e-12,
    )
    # integer weights are repeated rows
    reps = rng.integers(0, 4, size=12)
    np.testing.assert_allclose(
        gmmlib.log_likelihood(X, w, m, c, sample_weight=reps),
        gmmlib.log_likelihood(np.repeat(X, reps, axis=0), w, m, c),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(12,\)"):
        gmmlib.log_likelihood(X, w, m, c, sample_weight=np.ones(11))
    with pytest.raises(ValueError, match=r"finite and non-negative; sample\(s\) \[3\]"):
        gmmlib.log_likelihood(X, w, m, c, sample_weight=np.r_[np.ones(3), -1, np.ones(8)])
