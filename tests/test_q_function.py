"""The Q function: the sum over all K^N assignments collapses (eq-q-definition = eq-q-collapsed)."""

import itertools

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import gmmlib


def _tiny_problem(covariance_type, seed, n=5, K=3, d=2):
    rng = np.random.default_rng(seed)
    X = 2 * rng.standard_normal((n, d))
    new = h.random_params(rng, K, d, covariance_type, spread=1.5)
    old = h.random_params(rng, K, d, covariance_type, spread=1.5)
    return X, new, old


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_brute_force_sum_over_assignments_equals_collapsed_form(covariance_type):
    for seed in (1, 2):
        X, new, old = _tiny_problem(covariance_type, seed)
        brute = gmmlib.q_function_brute_force(X, *new, *old, covariance_type)
        resp = gmmlib.responsibilities(X, *old, covariance_type)
        collapsed = gmmlib.q_function(X, resp, *new, covariance_type)
        np.testing.assert_allclose(brute, collapsed, rtol=1e-11)
        # and both equal the independent SciPy transcription of the collapsed form
        K, d = new[1].shape
        full = h.to_full(new[2], covariance_type, K, d)
        np.testing.assert_allclose(collapsed, h.scipy_q(X, resp, new[0], new[1], full), rtol=1e-11)


def test_brute_force_is_literally_the_expectation():
    """Recompute Σ_Z log P(X, Z | θ) P(Z | X, θ_old) with an independent loop."""
    X, new, old = _tiny_problem("full", 3, n=4, K=2)
    log_joint_new = h.scipy_log_joint(X, *new)
    log_joint_old = h.scipy_log_joint(X, *old)
    log_post = log_joint_old - logsumexp(log_joint_old, axis=1, keepdims=True)
    total, mass = 0.0, 0.0
    for z in itertools.product(range(2), repeat=4):
        p_z = np.exp(sum(log_post[i, z[i]] for i in range(4)))
        total += p_z * sum(log_joint_new[i, z[i]] for i in range(4))
        mass += p_z
    np.testing.assert_allclose(mass, 1.0, rtol=1e-12)  # the posterior of Z is a distribution
    np.testing.assert_allclose(gmmlib.q_function_brute_force(X, *new, *old), total, rtol=1e-12)


def test_brute_force_refuses_large_problems():
    rng = np.random.default_rng(4)
    w, m, c = h.random_params(rng, 3, 2)
    X = rng.standard_normal((40, 2))
    with pytest.raises(ValueError, match="too many to enumerate"):
        gmmlib.q_function_brute_force(X, w, m, c, w, m, c)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_complete_data_log_likelihood_is_a_direct_sum(covariance_type):
    rng = np.random.default_rng(5)
    K, d, n = 3, 3, 30
    w, m, c = h.random_params(rng, K, d, covariance_type)
    X = 3 * rng.standard_normal((n, d))
    labels = rng.integers(0, K, size=n)
    full = h.to_full(c, covariance_type, K, d)
    direct = sum(
        np.log(w[labels[i]]) + multivariate_normal(m[labels[i]], full[labels[i]]).logpdf(X[i])
        for i in range(n)
    )
    got = gmmlib.complete_data_log_likelihood(X, labels, w, m, c, covariance_type)
    np.testing.assert_allclose(got, direct, rtol=1e-12)


def test_complete_data_log_likelihood_rejects_bad_labels():
    rng = np.random.default_rng(6)
    w, m, c = h.random_params(rng, 2, 2)
    X = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        gmmlib.complete_data_log_likelihood(X, [0, 1, 2, 0], w, m, c)
    with pytest.raises(ValueError, match="labels must be integers"):
        gmmlib.complete_data_log_likelihood(X, [0.0, 1.0, 0.0, 0.0], w, m, c)


def test_q_is_the_posterior_average_of_the_complete_data_log_likelihood():
    """With hard (0/1) responsibilities, Q is the complete-data log-likelihood of those labels."""
    rng = np.random.default_rng(7)
    w, m, c = h.random_params(rng, 3, 2)
    X = rng.standard_normal((20, 2))
    labels = rng.integers(0, 3, size=20)
    resp = np.eye(3)[labels]
    np.testing.assert_allclose(
        gmmlib.q_function(X, resp, w, m, c),
        gmmlib.complete_data_log_likelihood(X, labels, w, m, c),
        rtol=1e-13,
    )


def test_zero_responsibility_times_zero_weight_is_zero_not_nan():
    rng = np.random.default_rng(8)
    _, m, c = h.random_params(rng, 2, 2)
    X = rng.standard_normal((5, 2))
    resp = np.column_stack([np.ones(5), np.zeros(5)])
    q = gmmlib.q_function(X, resp, [1.0, 0.0], m, c)
    expected = h.scipy_log_phi(X, m[:1], c[:1]).sum()
    np.testing.assert_allclose(q, expected, rtol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_em_inequality_behind_the_monotone_likelihood(covariance_type):
    """L(θ) − L(θ_old) >= Q(θ, θ_old) − Q(θ_old, θ_old) for any θ (Gibbs' inequality)."""
    rng = np.random.default_rng(9)
    K, d, n = 3, 2, 40
    X = 3 * rng.standard_normal((n, d))
    old = h.random_params(rng, K, d, covariance_type)
    resp = gmmlib.responsibilities(X, *old, covariance_type)
    q_old = gmmlib.q_function(X, resp, *old, covariance_type)
    ll_old = gmmlib.log_likelihood(X, *old, covariance_type)
    for _ in range(10):
        new = h.random_params(rng, K, d, covariance_type)
        gain_q = gmmlib.q_function(X, resp, *new, covariance_type) - q_old
        gain_ll = gmmlib.log_likelihood(X, *new, covariance_type) - ll_old
        assert gain_ll >= gain_q - 1e-9 * abs(ll_old)
