"""GaussianMixture: EM never decreases the likelihood, sample weights, invariances,
warm starts, n_init, and the scikit-learn-style API."""

import warnings

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import gmmlib
from gmmlib._validation import INIT_METHODS


def _fit_quietly(gm, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        return gm.fit(X, **kwargs)


def _start(X, K, covariance_type, seed=0):
    """A data-driven start (one M-step from random hard labels), as user-given parameters."""
    rng = np.random.default_rng(seed)
    resp = np.eye(K)[rng.permutation(np.arange(len(X)) % K)]
    w, m, c = gmmlib.m_step(X, resp, covariance_type)
    return {"weights_init": w, "means_init": m, "covariances_init": c}


# -- EM never decreases the log-likelihood ----------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_components=st.integers(1, 4),
    n_features=st.integers(1, 3),
    n_per_component=st.integers(4, 25),
    spread=st.floats(0.0, 6.0),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    init_params=st.sampled_from(INIT_METHODS),
    weighted=st.booleans(),
)
def test_em_never_decreases_the_log_likelihood(
    covariance_type,
    seed,
    n_components,
    n_features,
    n_per_component,
    spread,
    scale,
    init_params,
    weighted,
):
    rng = np.random.default_rng(seed)
    n = n_components * n_per_component + n_features + 1
    X, _, _ = h.blobs(rng, n, n_components, n_features, spread=spread)
    X *= scale
    sample_weight = rng.uniform(0.1, 3.0, size=n) if weighted else None
    gm = gmmlib.GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        reg_covar=0.0,  # the exact M-step: reg_covar > 0 is not the maximiser of Q
        tol=0.0,
        max_iter=25,
        init_params=init_params,
        random_state=seed,
    )
    try:
        _fit_quietly(gm, X, sample_weight=sample_weight)
    except ValueError as err:  # a component collapsed (the likelihood was heading to +inf)
        assert "reg_covar" in str(err)
        reject()
    history = gm.log_likelihood_history_
    assert history.shape == (gm.n_iter_ + 1,) and gm.n_iter_ == 25
    assert np.all(np.isfinite(history))
    drops = np.diff(history)
    assert np.all(drops >= -1e-10 * np.maximum(1.0, np.abs(history[1:])))
    # the last entry is the mean log-likelihood of the fitted parameters
    sw = np.ones(n) if sample_weight is None else sample_weight
    total = gmmlib.log_likelihood(
        X, gm.weights_, gm.means_, gm.covariances_, covariance_type, sample_weight=sw
    )
    np.testing.assert_allclose(history[-1], total / sw.sum(), rtol=1e-10, atol=1e-12)


def test_history_lower_bound_and_iteration_count():
    X, _ = gmmlib.article_samples(n_samples=400)
    gm = gmmlib.GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert gm.converged_
    assert len(gm.log_likelihood_history_) == gm.n_iter_ + 1
    assert gm.lower_bound_ == gm.log_likelihood_history_[-2]
    np.testing.assert_allclose(gm.score(X), gm.log_likelihood_history_[-1], rtol=1e-12)
    # it stopped because the last change fell below tol, and not earlier
    changes = np.abs(np.diff(gm.log_likelihood_history_[:-1]))
    assert changes[-1] < 1e-8 and np.all(changes[:-1] >= 1e-8)


# -- sample weights ----------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_sample_weights_equal_repeated_rows(covariance_type):
    rng = np.random.default_rng(61)
    X, _, _ = h.blobs(rng, 40, 3, 2)
    reps = rng.integers(0, 4, size=40)
    reps[:3] = 1  # keep a few rows for sure
    start = _start(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=15, **start)
    weighted = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X, sample_weight=reps)
    repeated = _fit_quietly(gmmlib.GaussianMixture(3, **kw), np.repeat(X, reps, axis=0))
    h.assert_params_close(weighted, repeated, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        weighted.log_likelihood_history_, repeated.log_likelihood_history_, rtol=1e-10
    )
    assert weighted.n_iter_ == repeated.n_iter_
    # scaling every weight by the same factor changes nothing
    scaled = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X, sample_weight=0.37 * reps)
    h.assert_params_close(weighted, scaled, rtol=1e-10, atol=1e-10)


def test_zero_weight_equals_dropping_the_row():
    rng = np.random.default_rng(62)
    X, _, _ = h.blobs(rng, 30, 2, 2)
    X[4] = [1e3, -1e3]  # an outlier that would matter if it were not dropped
    sw = np.ones(30)
    sw[4] = 0.0
    keep = np.arange(30) != 4
    start = _start(X[keep], 2, "full")
    kw = dict(tol=0.0, max_iter=10, **start)
    a = _fit_quietly(gmmlib.GaussianMixture(2, **kw), X, sample_weight=sw)
    b = _fit_quietly(gmmlib.GaussianMixture(2, **kw), X[keep])
    h.assert_params_close(a, b, rtol=1e-10, atol=1e-10)


# -- invariances ---------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_permuting_rows_changes_nothing(covariance_type):
    rng = np.random.default_rng(63)
    X, _, _ = h.blobs(rng, 50, 3, 2)
    perm = rng.permutation(50)
    start = _start(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, **start)
    a = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X)
    b = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X[perm])
    h.assert_params_close(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.log_likelihood_history_, b.log_likelihood_history_, rtol=1e-12)
    np.testing.assert_array_equal(a.predict(X)[perm], b.predict(X[perm]))


def test_affine_change_of_data_moves_a_full_covariance_fit_the_same_way():
    rng = np.random.default_rng(64)
    X, _, _ = h.blobs(rng, 80, 3, 3)
    A = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    b = rng.standard_normal(3) * 5
    Y = X @ A.T + b
    start = _start(X, 3, "full")
    w0, m0, c0 = start["weights_init"], start["means_init"], start["covariances_init"]
    kw = dict(tol=0.0, max_iter=12, reg_covar=0.0)
    fx = _fit_quietly(
        gmmlib.GaussianMixture(3, weights_init=w0, means_init=m0, covariances_init=c0, **kw), X
    )
    fy = _fit_quietly(
        gmmlib.GaussianMixture(
            3,
            weights_init=w0,
            means_init=m0 @ A.T + b,
            covariances_init=A @ c0 @ A.T,
            **kw,
        ),
        Y,
    )
    np.testing.assert_allclose(fy.weights_, fx.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fy.means_, fx.means_ @ A.T + b, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fy.covariances_, A @ fx.covariances_ @ A.T, rtol=1e-8, atol=1e-8)
    # the likelihood picks up the Jacobian: log p_Y(y) = log p_X(x) − log|det A|
    log_det = np.log(abs(np.linalg.det(A)))
    np.testing.assert_allclose(
        fy.log_likelihood_history_, fx.log_likelihood_history_ - log_det, rtol=1e-10
    )
    np.testing.assert_allclose(
        gmmlib.log_likelihood(Y, fy.weights_, fy.means_, fy.covariances_),
        gmmlib.log_likelihood(X, fx.weights_, fx.means_, fx.covariances_) - 80 * log_det,
        rtol=1e-10,
    )


# -- warm start and n_init -----------------------------------------------------------------
def test_warm_start_continues_from_the_previous_solution():
    rng = np.random.default_rng(65)
    X, _, _ = h.blobs(rng, 60, 3, 2)
    start = _start(X, 3, "full")
    warm = gmmlib.GaussianMixture(3, tol=0.0, max_iter=5, warm_start=True, **start)
    _fit_quietly(warm, X)
    first_history = warm.log_likelihood_history_.copy()
    _fit_quietly(warm, X)
    cold = _fit_quietly(gmmlib.GaussianMixture(3, tol=0.0, max_iter=10, **start), X)
    h.assert_params_close(warm, cold, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        np.r_[first_history[:-1], warm.log_likelihood_history_],
        cold.log_likelihood_history_,
        rtol=1e-12,
    )
    # without warm_start a second fit starts afresh and repeats the first
    again = gmmlib.GaussianMixture(3, tol=0.0, max_iter=5, **start)
    _fit_quietly(again, X)
    _fit_quietly(again, X)
    np.testing.assert_allclose(again.log_likelihood_history_, first_history, rtol=1e-12)


def test_n_init_keeps_the_best_final_log_likelihood():
    rng = np.random.default_rng(66)
    X, _, _ = h.blobs(rng, 90, 4, 2, spread=2.0)
    kw = dict(init_params="random", max_iter=30, tol=0.0)
    best = _fit_quietly(
        gmmlib.GaussianMixture(4, n_init=5, random_state=np.random.default_rng(7), **kw), X
    )
    # the same five starts, one fit each, drawn in turn from one generator
    shared = np.random.default_rng(7)
    singles = [
        _fit_quietly(gmmlib.GaussianMixture(4, n_init=1, random_state=shared, **kw), X)
        for _ in range(5)
    ]
    finals = np.array([s.log_likelihood_history_[-1] for s in singles])
    assert np.ptp(finals) > 1e-6  # the starts really end in different places
    np.testing.assert_allclose(best.log_likelihood_history_[-1], finals.max(), rtol=1e-12)
    h.assert_params_close(best, singles[int(np.argmax(finals))], rtol=1e-10, atol=1e-12)
    # and never worse than the first start alone (same seed)
    first = _fit_quietly(gmmlib.GaussianMixture(4, random_state=np.random.default_rng(7), **kw), X)
    assert best.log_likelihood_history_[-1] >= first.log_likelihood_history_[-1]


# -- the API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fitted_model_methods_agree_with_the_formula_functions(covariance_type):
    X, _ = gmmlib.article_samples(n_samples=300)
    Xnew = gmmlib.article_samples(n_samples=50, random_state=1)[0]
    gm = gmmlib.GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, gm.predict(X))
    theta = (gm.weights_, gm.means_, gm.covariances_)
    proba = gm.predict_proba(Xnew)
    np.testing.assert_allclose(
        proba, gmmlib.responsibilities(Xnew, *theta, covariance_type), rtol=1e-12, atol=1e-300
    )
    np.testing.assert_array_equal(gm.predict(Xnew), proba.argmax(1))
    np.testing.assert_allclose(
        gm.score_samples(Xnew),
        gmmlib.log_mixture_density(Xnew, *theta, covariance_type),
        rtol=1e-12,
    )
    assert gm.score(Xnew) == pytest.approx(gm.score_samples(Xnew).mean(), rel=1e-14)
    # precisions_cholesky_ factors the inverse of covariances_
    K, d = gm.means_.shape
    full = h.to_full(gm.covariances_, covariance_type, K, d)
    prec = h.to_full(
        gm.precisions_cholesky_**2
        if covariance_type in ("diag", "spherical")
        else gm.precisions_cholesky_,
        covariance_type,
        K,
        d,
    )
    if covariance_type in ("full", "tied"):
        prec = prec @ np.swapaxes(prec, -1, -2)
    np.testing.assert_allclose(prec, np.linalg.inv(full), rtol=1e-9)
    # information criteria with an independent parameter count
    n_cov = {"full": K * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": K * d, "spherical": K}
    p = n_cov[covariance_type] + K * d + K - 1
    ll = gmmlib.log_likelihood(Xnew, *theta, covariance_type)
    assert gm.bic(Xnew) == pytest.approx(-2 * ll + p * np.log(len(Xnew)), rel=1e-12)
    assert gm.aic(Xnew) == pytest.approx(-2 * ll + 2 * p, rel=1e-12)


def test_sample_from_the_fitted_model():
    X, _ = gmmlib.article_samples(n_samples=300)
    gm = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    S, labels = gm.sample(5000, random_state=3)
    assert S.shape == (5000, 2) and labels.shape == (5000,)
    np.testing.assert_array_equal(S, gm.sample(5000, random_state=3)[0])
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 5000, gm.weights_, atol=0.03)
    for k in range(3):
        np.testing.assert_allclose(S[labels == k].mean(0), gm.means_[k], atol=0.25)


def test_fit_returns_self_and_params_round_trip():
    gm = gmmlib.GaussianMixture(2, covariance_type="diag", tol=1e-4)
    assert gm.get_params()["covariance_type"] == "diag"
    assert gm.set_params(n_components=3, max_iter=7) is gm
    assert gm.n_components == 3 and gm.max_iter == 7
    with pytest.raises(ValueError, match="Unknown parameter 'n_compnents'"):
        gm.set_params(n_compnents=2)
    assert "n_components=3" in repr(gm) and "max_iter=7" in repr(gm)
    X, _ = gmmlib.article_samples(n_samples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        assert gm.fit(X) is gm
    assert gm.n_features_in_ == 2


def test_verbose_prints_every_iteration(capsys):
    X, _ = gmmlib.article_samples(n_samples=200)
    gm = gmmlib.GaussianMixture(3, verbose=1, tol=0.0, max_iter=4, random_state=0)
    _fit_quietly(gm, X)
    lines = [line for line in capsys.readouterr().out.splitlines() if "iteration" in line]
    assert len(lines) == 4
    assert f"{gm.log_likelihood_history_[0]:.6f}" in lines[0]
