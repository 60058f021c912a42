"""EM with missing values (issue 10): the formula functions of gmmlib._missing and
GaussianMixture(missing="em"), checked against computations that share none of their code.

* the observed-data density against scipy.stats on the sub-vector and sub-block, and
  against integrating the missing coordinate out numerically (2-D);
* the conditional moments against the block formulas with np.linalg.inv, against
  numerical integration (2-D) and against a Monte Carlo regression;
* the expected statistics and the M-step against a loop over the rows;
* Q with both hidden parts against numerical integration over the missing coordinate;
* the estimator against a plain EM loop written here (one row at a time, np.linalg.inv)
  from the same start, for every covariance type, to 1e-10; with no NaN, exactly the fit
  without missing values; a non-decreasing observed-data log-likelihood (hypothesis);
* impute, the predictions with NaN, and the errors for bad inputs.
"""

from __future__ import annotations

import warnings

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

import gmmlib
from gmmlib import _kernels
from gmmlib._missing_engine import MissingEngine
from gmmlib._validation import INIT_METHODS


def _quietly(gm, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        return gm.fit(X, **kwargs)


def _knock_out(rng, X, rate):
    """X with a fraction ``rate`` of its entries set to NaN at random (MCAR), keeping at
    least one observed entry per row."""
    X = X.copy()
    holes = rng.uniform(size=X.shape) < rate
    holes[np.arange(X.shape[0]), rng.integers(X.shape[1], size=X.shape[0])] = False
    X[holes] = np.nan
    return X


def _problem(covariance_type, seed=0, n=150, K=3, d=3, rate=0.3):
    rng = np.random.default_rng(seed)
    X, _, _ = h.blobs(rng, n, K, d, covariance_type)
    X = _knock_out(rng, X, rate)
    params = h.random_params(rng, K, d, covariance_type)
    return rng, X, params


# -- the independent reference: one row at a time, np.linalg.inv --------------------------
def _row_moments(x, mean, cov):
    """(log φ(x_o | μ_o, Σ_oo), x̂, C) of one row under one Gaussian, by the block formulas."""
    o = ~np.isnan(x)
    m = ~o
    inv = np.linalg.inv(cov[np.ix_(o, o)])
    diff = x[o] - mean[o]
    sign, log_det = np.linalg.slogdet(cov[np.ix_(o, o)])
    log_phi = -0.5 * (o.sum() * np.log(2 * np.pi) + log_det + diff @ inv @ diff)
    xhat = x.copy()
    xhat[m] = mean[m] + cov[np.ix_(m, o)] @ inv @ diff
    C = np.zeros((x.size, x.size))
    C[np.ix_(m, m)] = cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ inv @ cov[np.ix_(o, m)]
    return log_phi, xhat, C


def _loop_e_step(X, weights, means, full_covs):
    """(log-likelihood per row, γ, x̂ (N, K, d), C (N, K, d, d)), one row at a time."""
    N, d = X.shape
    K = len(weights)
    log_joint, xhat, C = np.empty((N, K)), np.empty((N, K, d)), np.empty((N, K, d, d))
    for i in range(N):
        for k in range(K):
            log_phi, xhat[i, k], C[i, k] = _row_moments(X[i], means[k], full_covs[k])
            log_joint[i, k] = np.log(weights[k]) + log_phi
    log_norm = logsumexp(log_joint, axis=1)
    return log_norm, np.exp(log_joint - log_norm[:, None]), xhat, C


def _loop_m_step(resp, xhat, C, covariance_type, reg_covar, sample_weight=None):
    """The M-step from γ, x̂ and C, one row at a time, then the covariance type's projection."""
    N, K, d = xhat.shape
    g = resp * (np.ones(N) if sample_weight is None else sample_weight)[:, None]
    Nk = g.sum(axis=0)
    weights = Nk / g.sum()
    means = np.array([sum(g[i, k] * xhat[i, k] for i in range(N)) / Nk[k] for k in range(K)])
    S = np.zeros((K, d, d))
    for k in range(K):
        for i in range(N):
            diff = xhat[i, k] - means[k]
            S[k] += g[i, k] * (np.outer(diff, diff) + C[i, k])
    if covariance_type == "full":
        covs = S / Nk[:, None, None] + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        covs = S.sum(axis=0) / Nk.sum() + reg_covar * np.eye(d)
    elif covariance_type == "diag":
        covs = np.array([np.diag(S[k]) / Nk[k] for k in range(K)]) + reg_covar
    else:
        covs = np.array([np.trace(S[k]) / (d * Nk[k]) for k in range(K)]) + reg_covar
    return weights, means, covs


def _loop_em(X, params, covariance_type, n_iter, reg_covar, sample_weight=None):
    """Plain EM with missing values: (mean observed log-likelihood at the start of each
    iteration, the parameters after n_iter iterations)."""
    weights, means, covs = params
    K, d = np.asarray(means).shape
    sw = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    history = []
    for _ in range(n_iter):
        full = h.to_full(covs, covariance_type, K, d)
        log_norm, resp, xhat, C = _loop_e_step(X, weights, means, full)
        history.append(sw @ log_norm / sw.sum())
        weights, means, covs = _loop_m_step(resp, xhat, C, covariance_type, reg_covar, sw)
    return np.array(history), (weights, means, covs)


# -- the observed-data density (eq-observed-marginal, eq-observed-log-likelihood) ----------
def test_observed_log_density_is_the_marginal_of_the_observed_coordinates():
    rng = np.random.default_rng(1)
    d = 4
    mean, cov = rng.standard_normal(d), h.random_spd(rng, d)
    X = _knock_out(rng, rng.standard_normal((60, d)), 0.4)
    X[0] = np.nan  # nothing observed: density 1
    got = gmmlib.observed_log_density(X, mean, cov)
    assert got[0] == 0.0
    for i in range(1, X.shape[0]):
        o = ~np.isnan(X[i])
        expected = multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(X[i, o])
        np.testing.assert_allclose(got[i], expected, rtol=1e-12)


def test_observed_density_integrates_the_missing_coordinate_out():
    mean, cov = np.array([1.0, -1.0]), np.array([[2.0, 1.2], [1.2, 1.5]])
    joint = multivariate_normal(mean, cov)
    for x1 in (-1.0, 0.5, 3.0):
        integral, _ = integrate.quad(lambda x2, x1=x1: joint.pdf([x1, x2]), -np.inf, np.inf)
        got = gmmlib.observed_log_density([[x1, np.nan]], mean, cov)[0]
        np.testing.assert_allclose(np.exp(got), integral, rtol=1e-9)
        # not the slice of the precision matrix (that is the conditional's)
        slice_var = 1.0 / np.linalg.inv(cov)[0, 0]
        assert not np.isclose(got, norm(mean[0], np.sqrt(slice_var)).logpdf(x1), rtol=1e-3)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_observed_log_likelihood_and_responsibilities_against_scipy(covariance_type):
    rng, X, (w, m, c) = _problem(covariance_type, seed=2)
    K, d = m.shape
    full = h.to_full(c, covariance_type, K, d)
    sw = rng.uniform(0.2, 3.0, size=X.shape[0])
    log_joint = np.empty((X.shape[0], K))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(K):
            component = multivariate_normal(m[k, o], full[k][np.ix_(o, o)])
            log_joint[i, k] = np.log(w[k]) + component.logpdf(x[o])
    log_norm = logsumexp(log_joint, axis=1)
    got = gmmlib.observed_log_likelihood(X, w, m, c, covariance_type, sample_weight=sw)
    np.testing.assert_allclose(got, sw @ log_norm, rtol=1e-12)
    resp = gmmlib.observed_responsibilities(X, w, m, c, covariance_type)
    np.testing.assert_allclose(resp, np.exp(log_joint - log_norm[:, None]), atol=1e-12)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_with_nothing_missing_the_observed_functions_are_part_ones(covariance_type):
    rng = np.random.default_rng(3)
    X, _, (w, m, c) = h.blobs(rng, 80, 3, 3, covariance_type)
    np.testing.assert_allclose(
        gmmlib.observed_log_likelihood(X, w, m, c, covariance_type),
        gmmlib.log_likelihood(X, w, m, c, covariance_type),
        rtol=1e-12,
    )
    resp = gmmlib.observed_responsibilities(X, w, m, c, covariance_type)
    np.testing.assert_allclose(resp, gmmlib.responsibilities(X, w, m, c, covariance_type))
    new = gmmlib.m_step_missing(X, resp, m, c, covariance_type, reg_covar=1e-3)
    for a, b in zip(new, gmmlib.m_step(X, resp, covariance_type, 1e-3), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    stats = gmmlib.expected_statistics(X, resp, m, c, covariance_type)
    np.testing.assert_allclose(stats.sum_x, resp.T @ X, rtol=1e-12)
    np.testing.assert_allclose(stats.sum_xx, np.einsum("ik,id,ie->kde", resp, X, X), rtol=1e-12)
    assert np.all(
        gmmlib.conditional_moments(X, m[0], h.to_full(c, covariance_type, 3, 3)[0])[1] == 0
    )


# -- the conditional Gaussian (eq-conditional-gaussian) -------------------------------------
def test_conditional_moments_are_the_block_formulas():
    rng = np.random.default_rng(4)
    d = 5
    mean, cov = rng.standard_normal(d), h.random_spd(rng, d)
    X = _knock_out(rng, rng.standard_normal((50, d)) + mean, 0.5)
    X[3] = np.nan
    X[4] = rng.standard_normal(d)
    moments = gmmlib.conditional_moments(X, mean, cov)
    for i, x in enumerate(X):
        _, xhat, C = _row_moments(x, mean, cov)
        np.testing.assert_allclose(moments.expected_X[i], xhat, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(moments.conditional_covariances[i], C, atol=1e-12)
    observed = ~np.isnan(X)
    assert np.array_equal(moments.expected_X[observed], X[observed])  # kept exactly
    np.testing.assert_allclose(moments.expected_X[3], mean)
    np.testing.assert_allclose(moments.conditional_covariances[3], cov, rtol=1e-12)
    assert np.all(moments.conditional_covariances[4] == 0)


def test_conditional_moments_by_numerical_integration_in_2d():
    mean, cov = np.array([0.5, 2.0]), np.array([[1.5, -0.9], [-0.9, 2.0]])
    joint = multivariate_normal(mean, cov)
    x1 = 1.7
    mass = integrate.quad(lambda t: joint.pdf([x1, t]), -np.inf, np.inf)[0]
    first = integrate.quad(lambda t: t * joint.pdf([x1, t]), -np.inf, np.inf)[0] / mass
    second = integrate.quad(lambda t: t * t * joint.pdf([x1, t]), -np.inf, np.inf)[0] / mass
    moments = gmmlib.conditional_moments([[x1, np.nan]], mean, cov)
    np.testing.assert_allclose(moments.expected_X[0, 1], first, rtol=1e-8)
    np.testing.assert_allclose(
        moments.conditional_covariances[0, 1, 1], second - first**2, rtol=1e-8
    )


def test_conditional_moments_by_monte_carlo():
    """Least squares of x_m on x_o over draws from the joint estimates Σ_mo Σ_oo⁻¹ and the
    Schur complement; the conditional moments at a point must match within sampling error."""
    rng = np.random.default_rng(5)
    d = 4
    mean, cov = rng.standard_normal(d), h.random_spd(rng, d)
    draws = rng.multivariate_normal(mean, cov, size=200_000)
    o, m = np.array([0, 2]), np.array([1, 3])
    design = np.c_[np.ones(len(draws)), draws[:, o]]
    coef, *_ = np.linalg.lstsq(design, draws[:, m], rcond=None)
    residual = draws[:, m] - design @ coef
    point = np.array([0.3, np.nan, -1.1, np.nan])
    moments = gmmlib.conditional_moments(point[None], mean, cov)
    predicted = np.r_[1.0, point[o]] @ coef
    np.testing.assert_allclose(moments.expected_X[0, m], predicted, atol=0.02)
    np.testing.assert_allclose(
        moments.conditional_covariances[0][np.ix_(m, m)], np.cov(residual.T), atol=0.02
    )


# -- the expected statistics and the M-step (eq-expected-statistics, eq-missing-m-step) -----
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_expected_statistics_and_m_step_against_the_row_loop(covariance_type):
    rng, X, (w, m, c) = _problem(covariance_type, seed=6, n=90)
    K, d = m.shape
    sw = rng.uniform(0.2, 3.0, size=X.shape[0])
    _, resp, xhat, C = _loop_e_step(X, w, m, h.to_full(c, covariance_type, K, d))
    g = resp * sw[:, None]
    stats = gmmlib.expected_statistics(X, resp, m, c, covariance_type, sample_weight=sw)
    np.testing.assert_allclose(stats.Nk, g.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.sum_x, np.einsum("ik,ikd->kd", g, xhat), rtol=1e-11)
    expected_xx = np.einsum("ik,ikd,ike->kde", g, xhat, xhat) + np.einsum("ik,ikde->kde", g, C)
    np.testing.assert_allclose(stats.sum_xx, expected_xx, rtol=1e-11)
    got = gmmlib.m_step_missing(X, resp, m, c, covariance_type, 1e-4, sample_weight=sw)
    expected = _loop_m_step(resp, xhat, C, covariance_type, 1e-4, sw)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_without_the_conditional_covariance_the_covariances_come_out_too_small():
    """The pitfall the chapter shows: the M-step on the conditional means alone (C left
    out) misses exactly Σ_i γ_ik C_ik / N_k, a positive semi-definite, non-zero matrix."""
    rng, X, (w, m, c) = _problem("full", seed=7, n=200, rate=0.4)
    _, resp, xhat, C = _loop_e_step(X, w, m, c)
    em = gmmlib.m_step_missing(X, resp, m, c)
    naive = _loop_m_step(resp, xhat, np.zeros_like(C), "full", 0.0)
    missed = np.einsum("ik,ikde->kde", resp, C) / resp.sum(axis=0)[:, None, None]
    np.testing.assert_allclose(em[2] - naive[2], missed, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(missed) > -1e-12)
    assert np.all(np.trace(missed, axis1=1, axis2=2) > 0.1)


def test_the_m_step_maximises_q_missing():
    rng, X, (w, m, c) = _problem("full", seed=8, n=60, K=2, d=2)
    resp = gmmlib.observed_responsibilities(X, w, m, c)
    new = gmmlib.m_step_missing(X, resp, m, c)
    best = gmmlib.q_function_missing(X, resp, *new, m, c)
    for _ in range(20):
        weights = new[0] + rng.normal(scale=0.02, size=2)
        weights = np.abs(weights) / np.abs(weights).sum()
        means = new[1] + rng.normal(scale=0.05, size=new[1].shape)
        A = rng.normal(scale=0.05, size=new[2].shape)
        covs = new[2] + A @ A.transpose(0, 2, 1)
        assert gmmlib.q_function_missing(X, resp, weights, means, covs, m, c) < best


def test_q_missing_by_numerical_integration_over_the_missing_coordinate():
    """Q = Σ_i Σ_k γ_ik ∫ log(p_k φ(x | θ_k)) φ(x_m | x_o, θ⁽ᵗ⁾_k) dx_m, integrated by quad."""
    rng = np.random.default_rng(9)
    old_w, old_m, old_c = h.random_params(rng, 2, 2, "full")
    w, m, c = h.random_params(rng, 2, 2, "full")
    X = np.array([[0.5, np.nan], [np.nan, -1.0], [1.0, 2.0]])
    resp = gmmlib.observed_responsibilities(X, old_w, old_m, old_c)
    total = 0.0
    for i, x in enumerate(X):
        for k in range(2):
            if not np.isnan(x).any():
                total += resp[i, k] * (np.log(w[k]) + multivariate_normal(m[k], c[k]).logpdf(x))
                continue
            j = int(np.flatnonzero(np.isnan(x))[0])
            moments = gmmlib.conditional_moments(x[None], old_m[k], old_c[k])
            centre = moments.expected_X[0, j]
            spread = np.sqrt(moments.conditional_covariances[0, j, j])

            def integrand(t, x=x, j=j, k=k, centre=centre, spread=spread):
                full = x.copy()
                full[j] = t
                log_p = np.log(w[k]) + multivariate_normal(m[k], c[k]).logpdf(full)
                return log_p * norm(centre, spread).pdf(t)

            total += resp[i, k] * integrate.quad(integrand, -np.inf, np.inf)[0]
    got = gmmlib.q_function_missing(X, resp, w, m, c, old_m, old_c)
    np.testing.assert_allclose(got, total, rtol=1e-8)


# -- the estimator ---------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_without_nan_missing_em_is_exactly_the_ordinary_fit(covariance_type):
    rng = np.random.default_rng(10)
    X, _, _ = h.blobs(rng, 300, 3, 2, covariance_type)
    sw = rng.uniform(0.5, 2.0, size=300)
    kwargs = {"covariance_type": covariance_type, "n_init": 2, "random_state": 0}
    a = gmmlib.GaussianMixture(3, **kwargs).fit(X, sample_weight=sw)
    b = gmmlib.GaussianMixture(3, missing="em", **kwargs).fit(X, sample_weight=sw)
    for name in ("weights_", "means_", "covariances_", "log_likelihood_history_", "n_iter_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.score_samples(X), b.score_samples(X))


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_agrees_with_a_plain_loop_from_the_same_start(covariance_type, backend):
    rng, X, params = _problem(covariance_type, seed=11, n=120, d=3, rate=0.35)
    sw = rng.uniform(0.5, 2.0, size=X.shape[0])
    n_iter, reg_covar = 4, 1e-3
    history, expected = _loop_em(X, params, covariance_type, n_iter, reg_covar, sw)
    gm = gmmlib.GaussianMixture(
        3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=n_iter,
        reg_covar=reg_covar,
        weights_init=params[0],
        means_init=params[1],
        covariances_init=params[2],
        missing="em",
        backend=backend,
    )
    _quietly(gm, X, sample_weight=sw)
    assert gm.n_iter_ == n_iter and not gm.converged_
    np.testing.assert_allclose(gm.lower_bounds_, history, rtol=1e-10)
    assert gm.lower_bound_ == gm.lower_bounds_[-1]
    for name, value in zip(("weights_", "means_", "covariances_"), expected, strict=True):
        np.testing.assert_allclose(getattr(gm, name), value, rtol=1e-10, atol=1e-10)
    final = gmmlib.observed_log_likelihood(
        X, gm.weights_, gm.means_, gm.covariances_, covariance_type, sample_weight=sw
    )
    np.testing.assert_allclose(gm.log_likelihood_history_[-1], final / sw.sum(), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_engine_threads_and_kernels_agree(covariance_type):
    rng, X, (w, m, c) = _problem(covariance_type, seed=12, n=3000, K=4, d=5, rate=0.25)
    prec_chol = gmmlib.precision_cholesky(c, covariance_type)
    resp = gmmlib.observed_responsibilities(X, w, m, c, covariance_type)
    expected = gmmlib.m_step_missing(X, resp, m, c, covariance_type, 1e-6)
    for backend in ("numpy", "auto"):
        for n_threads in (1, 2):
            engine = MissingEngine(X, covariance_type, 1e-6, n_threads=n_threads, backend=backend)
            with engine:
                _, *got = engine.step(w, m, prec_chol)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not _kernels.have_numba(), reason="Numba is not installed")
@pytest.mark.parametrize("tied", [False, True], ids=["full", "tied"])
@pytest.mark.parametrize("d", [1, 3, 6])
def test_compiled_pattern_constants_are_the_numpy_ones(d, tied):
    """The Numba backend's constants of the patterns (``compiled_full_constants``, each
    matrix worked on its observed block) against the NumPy version (the whole matrices,
    the missing block made the identity), into buffers left dirty by a previous use:
    every pattern of d features, tied covariances as a broadcast view, and a component
    whose covariance is not positive definite in one coordinate (NaN in both)."""
    from gmmlib._engine import _HALF
    from gmmlib._gaussian import LOG_2PI
    from gmmlib._missing_engine import _full_constants
    from gmmlib._missing_kernels import compiled_full_constants

    rng = np.random.default_rng(21)
    K = 3
    A = rng.normal(size=(K, d, d))
    cov = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    cov[2, 0, 0] = -1.0  # not positive definite wherever coordinate 0 is observed
    if tied:
        cov = np.broadcast_to(cov[0], (K, d, d))
    means, ref = rng.normal(size=(K, d)), rng.normal(size=d)
    log_weights = np.log(rng.dirichlet(np.ones(K)))
    # every pattern with at least one observed coordinate
    observed = ((np.arange(1, 2**d)[:, None] >> np.arange(d)) & 1).astype(np.float64)
    P = observed.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        constants, (H, C) = _full_constants(log_weights, means, cov, observed, ref)
    buffers = [np.full((P, K, d, d + 1), 7.0), np.full((P, K), 7.0)]
    buffers += [np.full((P, K, d, d), 7.0) for _ in range(3)]
    compiled_full_constants(log_weights, means, cov, observed, ref, _HALF, LOG_2PI, *buffers)
    expected = [constants.whitening.reshape(P, K, d, d + 1), constants.log_const]
    expected += [constants.whitening_matrices, H, C]
    good = slice(None) if tied else slice(0, 2)  # the positive-definite components
    for got, want in zip(buffers, expected, strict=True):
        np.testing.assert_allclose(got[:, good], want[:, good], rtol=1e-12, atol=1e-13)
    # the other one: NaN in log p_k + log φ wherever coordinate 0 is observed, as there
    # (the kernels then flag its rows, and the fit raises the not-positive-definite error)
    bad = np.isnan(buffers[1])
    assert np.array_equal(bad, np.isnan(constants.log_const))
    assert np.array_equal(bad[:, 2], (observed[:, 0] == 1) & (not tied))
    assert not bad[:, :2].any()


def test_threads_share_the_patterns_by_rows():
    """Every pattern goes to one thread, and the threads get about as many rows: with 20 %
    of the entries missing at d = 8, sorted patterns cut into consecutive runs gave the
    first thread 97 % of the rows."""
    _, X, _ = _problem("full", seed=15, n=20_000, K=2, d=8, rate=0.2)
    engine = MissingEngine(X, "full", 1e-6, n_threads=2)
    shares = engine._pattern_shares()
    assert len(shares) == 2
    every = np.sort(np.concatenate(shares))
    np.testing.assert_array_equal(every, np.arange(engine.patterns.n_patterns))
    rows = [int(engine._sizes[share].sum()) for share in shares]
    assert sum(rows) == X.shape[0] and max(rows) - min(rows) <= 0.01 * X.shape[0]
    assert len(MissingEngine(X[:50], "full", n_threads=64)._pattern_shares()) <= 50


def test_a_start_far_from_the_data_sums_again_about_the_new_means():
    """The means move by thousands of standard deviations: the update about the old means
    would lose its digits, and the engine recomputes the sums about the new ones."""
    rng, X, (w, m, c) = _problem("full", seed=13, n=200, K=2, d=2)
    m = m + 1e4
    resp = gmmlib.observed_responsibilities(X, w, m, c)
    expected = gmmlib.m_step_missing(X, resp, m, c, "full", 1e-6)
    with MissingEngine(X, "full", 1e-6) as engine:
        _, *got = engine.step(w, m, gmmlib.precision_cholesky(c))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(not _kernels.have_numba(), reason="needs numba")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("far", [False, True], ids=["expanded", "beyond-the-guard"])
def test_eight_components_expand_each_pattern(monkeypatch, weighted, far):
    """Full covariances with 8 components: each pattern's log-densities through the
    expanded kernel (coefficients zero on its missing coordinates), as the complete-data
    engine; a mean far from the others (beyond ``_EXPANSION_MAX``) keeps the whitening
    kernel. Either way the step is ``m_step_missing``'s."""
    rng, X, (w, m, c) = _problem("full", seed=14, n=3000, K=8, d=5, rate=0.25)
    sw = rng.uniform(0.5, 2.0, size=X.shape[0]) if weighted else None
    if far:
        m = m.copy()
        m[0] += 300.0 * np.sqrt(np.diagonal(c[0]))
    expanded = []
    original = MissingEngine._expansion

    def spied(self, *args):
        coefficients = original(self, *args)
        expanded.append(coefficients is not None)
        return coefficients

    monkeypatch.setattr(MissingEngine, "_expansion", spied)
    # the step's own sums, not the second pass about the new means (which would mask them)
    again = []
    about = MissingEngine._about
    monkeypatch.setattr(
        MissingEngine, "_about", lambda self, *a: again.append(1) or about(self, *a)
    )
    resp = gmmlib.observed_responsibilities(X, w, m, c)
    expected = gmmlib.m_step_missing(X, resp, m, c, "full", 1e-6, sample_weight=sw)
    total = X.shape[0] if sw is None else sw.sum()
    log_likelihood = gmmlib.observed_log_likelihood(X, w, m, c, sample_weight=sw) / total
    with MissingEngine(X, "full", 1e-6, sw, backend="numba") as engine:
        got_ll, *got = engine.step(w, m, gmmlib.precision_cholesky(c))
    assert expanded and all(expanded) == (not far) and any(expanded) == (not far)
    assert not again
    assert got_ll == pytest.approx(log_likelihood, rel=1e-12)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_components=st.integers(1, 3),
    n_features=st.integers(2, 4),
    n_per_component=st.integers(10, 30),
    rate=st.floats(0.05, 0.5),
    init_params=st.sampled_from(INIT_METHODS),
    weighted=st.booleans(),
)
def test_em_never_decreases_the_observed_log_likelihood(
    covariance_type, seed, n_components, n_features, n_per_component, rate, init_params, weighted
):
    rng = np.random.default_rng(seed)
    n = n_components * n_per_component
    X, _, _ = h.blobs(rng, n, n_components, n_features, covariance_type, spread=3.0)
    X = _knock_out(rng, X, rate)
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    gm = gmmlib.GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        reg_covar=0.0,
        tol=0.0,
        max_iter=15,
        init_params=init_params,
        random_state=seed,
        missing="em",
    )
    try:
        _quietly(gm, X, sample_weight=sw)
    except ValueError:  # a component collapsed (reg_covar=0): not this test's question
        reject()
    history = gm.log_likelihood_history_
    assert history.shape == (16,) and np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-10 * np.maximum(1.0, np.abs(history[1:])))


def test_iteration_semantics_warm_start_and_n_init():
    rng, X, params = _problem("full", seed=14, n=300, K=3, d=3)
    start = dict(zip(("weights_init", "means_init", "covariances_init"), params, strict=True))
    six = _quietly(gmmlib.GaussianMixture(3, tol=0.0, max_iter=6, missing="em", **start), X)
    assert six.n_iter_ == 6 and six.lower_bounds_.shape == (6,)
    assert six.log_likelihood_history_.shape == (7,)
    warm = gmmlib.GaussianMixture(3, tol=0.0, max_iter=3, missing="em", warm_start=True, **start)
    _quietly(warm, X)
    _quietly(warm, X)
    np.testing.assert_allclose(warm.means_, six.means_, rtol=1e-12)
    np.testing.assert_allclose(warm.covariances_, six.covariances_, rtol=1e-12)
    converged = gmmlib.GaussianMixture(3, tol=1e-4, max_iter=500, missing="em", **start).fit(X)
    assert converged.converged_ and converged.n_iter_ < 500
    assert abs(converged.lower_bounds_[-1] - converged.lower_bounds_[-2]) < 1e-4
    one = gmmlib.GaussianMixture(3, n_init=1, random_state=0, missing="em").fit(X)
    best = gmmlib.GaussianMixture(3, n_init=4, random_state=0, missing="em").fit(X)
    assert best.log_likelihood_history_[-1] >= one.log_likelihood_history_[-1] - 1e-9


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_every_init_params_copes_with_nan(init_params):
    rng, X, _ = _problem("full", seed=15, n=300, K=3, d=3, rate=0.3)
    gm = gmmlib.GaussianMixture(3, init_params=init_params, random_state=1, missing="em")
    gm.fit(X)
    assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
    # the start is the M-step of the method's responsibilities on the column-mean-filled data
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    first = gmmlib.GaussianMixture(3, init_params=init_params, random_state=1, max_iter=0)
    np.testing.assert_allclose(
        gm.set_params(max_iter=0).fit(X).means_, first.fit(filled).means_, rtol=1e-12
    )


def test_integer_sample_weights_are_repeated_rows():
    rng, X, params = _problem("diag", seed=16, n=100, K=2, d=3)
    counts = rng.integers(0, 3, size=X.shape[0])
    counts[:5] = 1
    start = dict(zip(("weights_init", "means_init", "covariances_init"), params, strict=True))
    kwargs = {"covariance_type": "diag", "tol": 0.0, "max_iter": 5, "missing": "em", **start}
    weighted = _quietly(gmmlib.GaussianMixture(2, **kwargs), X, sample_weight=counts)
    repeated = _quietly(gmmlib.GaussianMixture(2, **kwargs), np.repeat(X, counts, axis=0))
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10)


# -- predictions and impute ------------------------------------------------------------------
def _fitted(covariance_type="full", seed=17):
    rng, X, _ = _problem(covariance_type, seed=seed, n=400, K=3, d=3)
    gm = gmmlib.GaussianMixture(3, covariance_type=covariance_type, random_state=0, missing="em")
    return rng, X, gm.fit(X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_predictions_use_the_observed_coordinates(covariance_type):
    rng, X, gm = _fitted(covariance_type)
    theta = (gm.weights_, gm.means_, gm.covariances_, covariance_type)
    Xp = X[:50].copy()
    Xp[0] = np.nan  # nothing observed: density 1, the weights as responsibilities
    log_norm, resp, _, _ = _loop_e_step(
        Xp, *theta[:2], h.to_full(gm.covariances_, covariance_type, 3, 3)
    )
    np.testing.assert_allclose(gm.score_samples(Xp), log_norm, rtol=1e-11, atol=1e-14)
    assert gm.score_samples(Xp)[0] == 0.0
    np.testing.assert_allclose(gm.predict_proba(Xp), resp, atol=1e-12)
    np.testing.assert_allclose(gm.predict_proba(Xp)[0], gm.weights_, rtol=1e-12)
    assert np.array_equal(gm.predict(Xp), np.argmax(resp, axis=1))
    np.testing.assert_allclose(gm.score(Xp), log_norm.mean(), rtol=1e-11)
    complete = ~np.isnan(Xp).any(axis=1)
    plain = gm.get_params()
    plain["missing"] = "raise"
    without = gmmlib.GaussianMixture(**plain)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "n_features_in_"):
        setattr(without, name, getattr(gm, name))
    assert np.array_equal(gm.score_samples(Xp)[complete], without.score_samples(Xp[complete]))
    np.testing.assert_allclose(
        gm.bic(X), -2 * gm.score(X) * len(X) + gm._n_parameters() * np.log(len(X))
    )


def test_impute_fills_only_the_holes_with_the_posterior_conditional_mean():
    rng, X, gm = _fitted("full")
    before = X.copy()
    imputed = gm.impute(X)
    assert np.array_equal(X, before, equal_nan=True)  # X is not changed
    observed = ~np.isnan(X)
    assert np.array_equal(imputed[observed], X[observed])  # bit-identical
    assert not np.isnan(imputed).any()
    _, resp, xhat, _ = _loop_e_step(X, gm.weights_, gm.means_, gm.covariances_)
    expected = np.einsum("ik,ikd->id", resp, xhat)
    np.testing.assert_allclose(imputed[~observed], expected[~observed], rtol=1e-10)
    empty = gm.impute(np.full((1, 3), np.nan))
    np.testing.assert_allclose(empty[0], gm.weights_ @ gm.means_, rtol=1e-12)
    single = gm.impute(X.astype(np.float32))
    assert single.dtype == np.float32
    assert np.array_equal(single[observed], X.astype(np.float32)[observed])


def test_fit_does_not_change_x():
    rng, X, _ = _problem("tied", seed=18, n=200)
    before = X.copy()
    gmmlib.GaussianMixture(3, covariance_type="tied", missing="em", random_state=0).fit(X)
    assert np.array_equal(X, before, equal_nan=True)


# -- bad inputs --------------------------------------------------------------------------------
def test_clear_errors_for_bad_inputs():
    rng, X, params = _problem("full", seed=19, n=60)
    em = {"missing": "em", "random_state": 0}
    empty_row = X.copy()
    empty_row[[4, 9]] = np.nan
    with pytest.raises(
        ValueError, match=r"2 row\(s\) with every feature missing \(NaN\) \(row 4, 9\)"
    ):
        gmmlib.GaussianMixture(2, **em).fit(empty_row)
    empty_column = np.where(np.isnan(X), 0.0, X)
    empty_column[:, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"Feature\(s\) \[1\] of X are missing \(NaN\) in every row"
    ):
        gmmlib.GaussianMixture(2, **em).fit(empty_column)
    with pytest.raises(ValueError, match=r"sample_weight is NaN at sample\(s\) \[3\]"):
        gmmlib.GaussianMixture(2, **em).fit(X, sample_weight=np.r_[np.ones(3), np.nan, np.ones(56)])
    w, m, c = params
    for name, value in (
        ("weights_init", np.r_[np.nan, w[1:]]),
        ("means_init", np.where(np.eye(3, dtype=bool), np.nan, m)),
        ("covariances_init", np.where(np.eye(3, dtype=bool)[None], np.nan, c)),
        ("precisions_init", np.where(np.eye(3, dtype=bool)[None], np.nan, np.linalg.inv(c))),
    ):
        with pytest.raises(ValueError, match=rf"{name} contains NaN|{name[:-5]}.*NaN"):
            gmmlib.GaussianMixture(3, **{name: value}, **em).fit(X)
    infinite = X.copy()
    infinite[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"X contains infinity in 1 row\(s\) \(row 7\)"):
        gmmlib.GaussianMixture(2, **em).fit(infinite)
    with pytest.raises(ValueError, match=r"missing must be 'raise'.*or 'em'"):
        gmmlib.GaussianMixture(2, missing="drop").fit(X)
    with pytest.raises(ValueError, match=r'NaN or infinity in .*GaussianMixture\(missing="em"\)'):
        gmmlib.GaussianMixture(2).fit(X)
    fitted = gmmlib.GaussianMixture(2, random_state=0).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match=r'missing="em"'):
        fitted.predict(X)
    with pytest.raises(ValueError, match=r"contains infinity"):
        fitted.impute(infinite)
    with pytest.raises(ValueError, match=r"contains infinity"):
        gmmlib.observed_log_density(infinite, np.zeros(3), np.eye(3))


def test_a_dask_array_with_nan_is_refused_by_fit():
    da = pytest.importorskip("dask.array")
    rng, X, _ = _problem("full", seed=20, n=100)
    with pytest.raises(ValueError, match=r"Dask array with NaN entries.*X\.compute\(\)"):
        gmmlib.GaussianMixture(2, missing="em").fit(da.from_array(X, chunks=50))
    gm = gmmlib.GaussianMixture(2, missing="em", random_state=0).fit(X)
    lazy = da.from_array(X, chunks=40)
    np.testing.assert_allclose(gm.score_samples(lazy).compute(), gm.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(gm.predict_proba(lazy).compute(), gm.predict_proba(X), rtol=1e-12)
    np.testing.assert_allclose(gm.impute(lazy).compute(), gm.impute(X), rtol=1e-12)


def test_missing_is_a_parameter_for_scikit_learn():
    gm = gmmlib.GaussianMixture(2, missing="em")
    assert gm.get_params()["missing"] == "em"
    assert "missing='em'" in repr(gm)
    assert gm.set_params(missing="raise").missing == "raise"
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone

    assert clone(gmmlib.GaussianMixture(missing="em")).missing == "em"
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 6):
        from sklearn.utils import get_tags

        assert get_tags(gmmlib.GaussianMixture(missing="em")).input_tags.allow_nan
        assert not get_tags(gmmlib.GaussianMixture()).input_tags.allow_nan
