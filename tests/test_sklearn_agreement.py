"""From the same start, gmmlib and scikit-learn run the same EM iterations.

scikit-learn is a test-only dependency; these tests are skipped without it.
"""

import warnings

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES

import gmmlib

sklearn_mixture = pytest.importorskip("sklearn.mixture")
sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """scikit-learn inverts tiny triangular matrices with SciPy's threaded solver, which
    costs milliseconds per call on busy cores; one thread (BLAS and OpenMP) keeps this
    module fast."""
    with threadpoolctl.threadpool_limits(limits=1):
        yield


def _problem(covariance_type, seed=81, n=150, K=3, d=3):
    rng = np.random.default_rng(seed)
    X, _, _ = h.blobs(rng, n, K, d, spread=2.5)
    # a deliberately rough start: one M-step from soft responsibilities around K random
    # data points (a soft random_from_data)
    seeds = X[rng.choice(n, size=K, replace=False)]
    logits = -0.5 * ((X[:, None, :] - seeds[None]) ** 2).sum(-1) / X.var()
    resp = np.exp(logits - logits.max(1, keepdims=True))
    resp /= resp.sum(1, keepdims=True)
    w, m, c = gmmlib.m_step(X, resp, covariance_type)
    return X, (w, m, c)


def _fit_both(X, start, covariance_type, *, max_iter, tol, reg_covar=1e-6):
    w, m, c = start
    K = len(w)
    ours = gmmlib.GaussianMixture(
        K,
        covariance_type=covariance_type,
        weights_init=w,
        means_init=m,
        covariances_init=c,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        init_params="random",  # unused (every parameter is given); the cheapest
    )
    theirs = sklearn_mixture.GaussianMixture(
        K,
        covariance_type=covariance_type,
        weights_init=w,
        means_init=m,
        precisions_init=h.precisions_for_sklearn(c, covariance_type),
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        init_params="random",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
        ours.fit(X)
        theirs.fit(X)
    return ours, theirs


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_same_start_same_iterations_same_parameters(covariance_type):
    X, start = _problem(covariance_type)
    ours, theirs = _fit_both(X, start, covariance_type, max_iter=25, tol=0.0)
    assert ours.n_iter_ == theirs.n_iter_ == 25
    assert not ours.converged_ and not theirs.converged_
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        ours.precisions_cholesky_, theirs.precisions_cholesky_, rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_one_iteration_agrees_to_rounding(covariance_type):
    X, start = _problem(covariance_type, seed=82)
    ours, theirs = _fit_both(X, start, covariance_type, max_iter=1, tol=0.0, reg_covar=0.0)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-12)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_with_a_tolerance_both_follow_the_same_path_and_stop(covariance_type):
    # The two libraries sum in different orders, so near the threshold a last change of
    # 1e-6 can fall on either side of tol depending on the BLAS: the stopping iteration
    # is not compared exactly. The paths are: every log-likelihood both computed.
    X, start = _problem(covariance_type, seed=83)
    ours, theirs = _fit_both(X, start, covariance_type, max_iter=500, tol=1e-6)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ > 2  # the start was rough: EM had work to do
    # scikit-learn's lower_bounds_[i] is the log-likelihood of the parameters that
    # iteration i starts from, as our history[i] (history[0] is the start's)
    theirs_history = np.asarray(theirs.lower_bounds_)
    n = min(len(ours.log_likelihood_history_), len(theirs_history))
    assert n >= ours.n_iter_ - 1
    np.testing.assert_allclose(
        ours.log_likelihood_history_[:n], theirs_history[:n], rtol=1e-10, atol=0
    )
    assert abs(ours.n_iter_ - theirs.n_iter_) <= 1
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_predictions_and_scores_equal_sklearns_for_the_same_parameters(covariance_type):
    X, start = _problem(covariance_type, seed=84)
    ours, theirs = _fit_both(X, start, covariance_type, max_iter=10, tol=0.0)
    # give scikit-learn exactly our fitted parameters
    theirs.weights_ = ours.weights_.copy()
    theirs.means_ = ours.means_.copy()
    theirs.covariances_ = np.copy(ours.covariances_)
    theirs.precisions_cholesky_ = np.copy(ours.precisions_cholesky_)
    Xnew = np.vstack([X[:20], np.random.default_rng(5).normal(0, 4, size=(30, X.shape[1]))])
    np.testing.assert_array_equal(ours.predict(Xnew), theirs.predict(Xnew))
    np.testing.assert_allclose(
        ours.predict_proba(Xnew), theirs.predict_proba(Xnew), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(ours.score_samples(Xnew), theirs.score_samples(Xnew), rtol=1e-12)
    np.testing.assert_allclose(ours.score(Xnew), theirs.score(Xnew), rtol=1e-12)
    np.testing.assert_allclose(ours.bic(Xnew), theirs.bic(Xnew), rtol=1e-12)
    np.testing.assert_allclose(ours.aic(Xnew), theirs.aic(Xnew), rtol=1e-12)


def test_article_data_with_defaults_reaches_the_same_fit():
    """Different initialisations, same data: both land on the same optimum."""
    X, _ = gmmlib.article_samples()
    ours = gmmlib.GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    theirs = sklearn_mixture.GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    order_ours, order_theirs = np.argsort(ours.means_[:, 0]), np.argsort(theirs.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order_ours], theirs.means_[order_theirs], atol=1e-5)
    np.testing.assert_allclose(ours.score(X), theirs.score(X), rtol=1e-9)
