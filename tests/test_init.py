"""Initialisation: every method gives valid responsibilities and a valid starting θ."""

import helpers as h
import numpy as np
import pytest
from scipy.cluster.vq import kmeans2

import gmmlib
from gmmlib._init import kmeans_plusplus_centres
from gmmlib._validation import INIT_METHODS

HARD_METHODS = ["kmeans", "k-means++", "random_from_data"]


def _separated(seed=51, n_per=40, K=3, d=2, sep=20.0):
    rng = np.random.default_rng(seed)
    centres = sep * np.eye(K, d) + rng.uniform(-1, 1, size=(K, d))
    labels = np.repeat(np.arange(K), n_per)
    X = centres[labels] + rng.standard_normal((K * n_per, d))
    order = rng.permutation(len(X))
    return X[order], labels[order]


@pytest.mark.parametrize("method", INIT_METHODS)
def test_initial_responsibilities_are_distributions(method):
    X, _ = _separated()
    resp = gmmlib.initial_responsibilities(X, 3, method, np.random.default_rng(0))
    assert resp.shape == (X.shape[0], 3)
    assert np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-14)
    if method in HARD_METHODS:
        assert set(np.unique(resp)) <= {0.0, 1.0}
        assert np.all(resp.sum(axis=0) > 0)  # no empty component
    # one M-step of them is a valid θ (PD covariances, weights summing to 1) for every type
    for covariance_type in ("full", "diag", "spherical", "tied"):
        w, m, c = gmmlib.m_step(X, resp, covariance_type)
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-14)
        assert np.isfinite(gmmlib.log_likelihood(X, w, m, c, covariance_type))


@pytest.mark.parametrize("method", INIT_METHODS)
def test_initial_responsibilities_are_reproducible(method):
    X, _ = _separated()
    a = gmmlib.initial_responsibilities(X, 3, method, np.random.default_rng(3))
    b = gmmlib.initial_responsibilities(X, 3, method, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["kmeans", "k-means++"])
def test_kmeans_inits_find_well_separated_clusters(method):
    # far apart, so that D² seeding puts two seeds in one cluster with probability ~1e-3
    X, labels = _separated(sep=100.0)
    for seed in range(3):
        resp = gmmlib.initial_responsibilities(X, 3, method, np.random.default_rng(seed))
        assert h.same_partition(resp.argmax(1), labels)


def test_kmeans_init_agrees_with_scipy_kmeans2():
    X, labels = _separated(seed=52)
    resp = gmmlib.initial_responsibilities(X, 3, "kmeans", np.random.default_rng(5))
    centroids, scipy_labels = kmeans2(X, 3, minit="++", seed=np.random.default_rng(123))
    assert h.same_partition(resp.argmax(1), scipy_labels)
    assert h.same_partition(scipy_labels, labels)
    means = gmmlib.update_means(X, resp)
    perm = h.match_components(means, centroids)
    np.testing.assert_allclose(means[perm], centroids, rtol=1e-10, atol=1e-10)


def _nearest_seed_labels(X, seeds):
    d2 = ((X[:, None, :] - X[seeds][None, :, :]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


def test_seeded_inits_give_every_sample_to_its_nearest_seed():
    X = np.random.default_rng(53).standard_normal((60, 2))
    K = 4
    seeds = kmeans_plusplus_centres(X, K, np.random.default_rng(6))
    resp = gmmlib.initial_responsibilities(X, K, "k-means++", np.random.default_rng(6))
    np.testing.assert_array_equal(resp.argmax(1), _nearest_seed_labels(X, seeds))
    assert np.all(resp[seeds, np.arange(K)] == 1.0)  # each seed owns its own component
    # random_from_data: K distinct data points drawn uniformly without replacement
    seeds = np.random.default_rng(7).choice(60, size=K, replace=False)
    resp = gmmlib.initial_responsibilities(X, K, "random_from_data", np.random.default_rng(7))
    np.testing.assert_array_equal(resp.argmax(1), _nearest_seed_labels(X, seeds))


def test_kmeans_plusplus_draws_seeds_proportional_to_squared_distance():
    """Points 0, 1, 10 on a line, two seeds: the pair {0, 1} has probability
    (1/3)(1/101 + 1/82) under D² sampling, 1/3 under uniform sampling."""
    X = np.array([[0.0], [1.0], [10.0]])
    rng = np.random.default_rng(8)
    n = 4000
    without_far = sum(2 not in kmeans_plusplus_centres(X, 2, rng) for _ in range(n))
    p = (1 / 101 + 1 / 82) / 3
    assert abs(without_far / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_kmeans_plusplus_centres_are_distinct_data_points_even_with_duplicates():
    # three distinct values repeated many times: D(x)^2 is zero for most points
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), 20, axis=0)
    for seed in range(5):
        idx = kmeans_plusplus_centres(X, 3, np.random.default_rng(seed))
        assert len(set(idx.tolist())) == 3
        assert len({tuple(X[i]) for i in idx}) == 3  # one seed on each distinct value
    # more components than distinct points: still distinct indices, no error
    idx = kmeans_plusplus_centres(X, 4, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 4


def test_unknown_method_is_rejected():
    X, _ = _separated()
    with pytest.raises(ValueError, match=r"init_params must be one of 'kmeans'.*got 'kmean'"):
        gmmlib.initial_responsibilities(X, 3, "kmean", np.random.default_rng(0))


@pytest.mark.parametrize("method", INIT_METHODS)
def test_estimator_fits_from_every_init(method):
    X, labels = gmmlib.article_samples(n_samples=300)
    gm = gmmlib.GaussianMixture(3, init_params=method, random_state=1, max_iter=200).fit(X)
    assert gm.converged_
    for a in (gm.weights_, gm.means_, gm.covariances_):
        assert np.all(np.isfinite(a))
    assert np.all(np.diff(gm.log_likelihood_history_) >= -1e-10)
