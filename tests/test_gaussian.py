"""The d-variate normal density (eq-normal-density) against SciPy and closed forms."""

import helpers as h
import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

import gmmlib
from gmmlib._gaussian import LOG_2PI


@pytest.mark.parametrize("d", [1, 2, 3, 5, 10])
def test_log_gaussian_density_matches_scipy(d):
    rng = np.random.default_rng(100 + d)
    for _ in range(3):
        mean = rng.standard_normal(d)
        cov = h.random_spd(rng, d)
        X = mean + 2 * rng.standard_normal((50, d))
        expected = multivariate_normal(mean, cov).logpdf(X)
        np.testing.assert_allclose(
            gmmlib.log_gaussian_density(X, mean, cov), expected, rtol=1e-11, atol=1e-11
        )
        np.testing.assert_allclose(
            gmmlib.gaussian_density(X, mean, cov),
            multivariate_normal(mean, cov).pdf(X),
            rtol=1e-10,
            atol=0,
        )


def test_log_gaussian_density_closed_form_1d():
    x = np.array([[-1.0], [0.5], [3.0]])
    mu, var = 0.25, 2.5
    expected = -0.5 * np.log(2 * np.pi * var) - (x[:, 0] - mu) ** 2 / (2 * var)
    np.testing.assert_allclose(gmmlib.log_gaussian_density(x, [mu], [[var]]), expected, rtol=1e-14)


def test_near_singular_covariance_is_accurate():
    """Condition number 1e10: compare with the exact formula in the eigenbasis we built."""
    rng = np.random.default_rng(7)
    d = 6
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.array([1e-10, 1e-6, 1e-3, 0.5, 1.0, 1.0])
    cov = (q * eig) @ q.T
    cov = (cov + cov.T) / 2
    mean = rng.standard_normal(d)
    # points drawn from the distribution itself (moderate Mahalanobis distances)
    X = mean + (rng.standard_normal((200, d)) * np.sqrt(eig)) @ q.T
    z = (X - mean) @ q  # coordinates in the eigenbasis
    exact = -0.5 * (d * LOG_2PI + np.log(eig).sum() + (z**2 / eig).sum(axis=1))
    got = gmmlib.log_gaussian_density(X, mean, cov)
    assert np.all(np.isfinite(got))
    # rounding of Σ itself perturbs the smallest eigenvalue by ~eps/1e-10 relative
    np.testing.assert_allclose(got, exact, rtol=1e-5)


def test_near_singular_covariance_matches_scipy():
    rng = np.random.default_rng(8)
    d = 4
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.array([1e-7, 1e-3, 1.0, 3.0])
    cov = (q * eig) @ q.T
    cov = (cov + cov.T) / 2
    mean = np.zeros(d)
    X = (rng.standard_normal((100, d)) * np.sqrt(eig)) @ q.T
    np.testing.assert_allclose(
        gmmlib.log_gaussian_density(X, mean, cov),
        multivariate_normal(mean, cov).logpdf(X),
        rtol=1e-6,
    )


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_log_component_densities_matches_scipy(covariance_type):
    rng = np.random.default_rng(11)
    K, d = 4, 3
    _, means, covs = h.random_params(rng, K, d, covariance_type)
    X = 3 * rng.standard_normal((60, d))
    got = gmmlib.log_component_densities(X, means, covs, covariance_type)
    assert got.shape == (60, K)
    expected = h.scipy_log_phi(X, means, h.to_full(covs, covariance_type, K, d))
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_precision_cholesky_factors_the_precision(covariance_type):
    rng = np.random.default_rng(12)
    K, d = 3, 4
    covs = h.random_covariances(rng, K, d, covariance_type)
    u = gmmlib.precision_cholesky(covs, covariance_type)
    assert u.shape == np.shape(covs)
    full = h.to_full(covs, covariance_type, K, d)
    if covariance_type in ("full", "tied"):
        stack = u if covariance_type == "full" else np.broadcast_to(u, (K, d, d))
        for uk, ck in zip(stack, full, strict=True):
            np.testing.assert_allclose(uk @ uk.T, np.linalg.inv(ck), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(uk, np.triu(uk))  # upper triangular
    else:
        np.testing.assert_allclose(u**2 * covs, 1.0, rtol=1e-14)


def test_precision_cholesky_names_the_bad_component():
    covs = np.stack([np.eye(2), np.eye(2), np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"Component 2 .*reg_covar"):
        gmmlib.precision_cholesky(covs, "full")
    with pytest.raises(ValueError, match=r"\[1\].*reg_covar"):
        gmmlib.precision_cholesky(np.array([[1.0, 1.0], [0.0, 1.0]]), "diag")
    with pytest.raises(ValueError, match=r"tied covariance.*reg_covar"):
        gmmlib.precision_cholesky(np.zeros((2, 2)), "tied")


def test_high_dimension_log_density_is_finite_where_density_underflows():
    rng = np.random.default_rng(13)
    d = 500
    mean = rng.standard_normal(d)
    cov = np.diag(rng.uniform(1.0, 3.0, size=d))
    X = mean + rng.standard_normal((5, d)) * np.sqrt(np.diag(cov))
    sd = np.sqrt(np.diag(cov))
    with np.errstate(under="ignore"):
        direct = np.exp(norm.logpdf(X, loc=mean, scale=sd).sum(axis=1))
    assert np.all(direct == 0.0)  # the textbook density underflows ...
    got = gmmlib.log_gaussian_density(X, mean, cov)
    assert np.all(np.isfinite(got))  # ... its log does not
    expected = -0.5 * (
        d * LOG_2PI + np.log(np.diag(cov)).sum() + ((X - mean) ** 2 / np.diag(cov)).sum(1)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, norm.logpdf(X, loc=mean, scale=sd).sum(axis=1), rtol=1e-12)


def test_far_away_points_have_finite_log_density():
    cov = np.array([[2.0, 1.0], [1.0, 2.0]])
    X = np.array([[1e3, -1e3], [5e3, 5e3]])
    assert np.all(gmmlib.gaussian_density(X, [0.0, 0.0], cov) == 0.0)
    got = gmmlib.log_gaussian_density(X, [0.0, 0.0], cov)
    assert np.all(np.isfinite(got)) and np.all(got < -1e5)
    np.testing.assert_allclose(got, multivariate_normal([0, 0], cov).logpdf(X), rtol=1e-12)


def test_log_gaussian_density_rejects_bad_mean_shape():
    with pytest.raises(ValueError, match=r"mean must have shape \(2,\)"):
        gmmlib.log_gaussian_density(np.zeros((3, 2)), np.zeros(3), np.eye(2))
