"""The source article's example: its parameters, its 2000 samples, and their recovery by EM."""

import helpers as h
import numpy as np

import gmmlib
from gmmlib import article


def test_sigma2_is_the_symmetric_part_of_the_printed_matrix():
    printed = article.SIGMA2_AS_PRINTED
    assert not np.allclose(printed, printed.T)  # the article's matrix is not a covariance
    sigma2 = article.COVARIANCES[1]
    np.testing.assert_array_equal(sigma2, sigma2.T)
    np.testing.assert_allclose(sigma2, [[3.0, 1.5], [1.5, 2.0]])
    np.testing.assert_allclose(sigma2, (printed + printed.T) / 2)
    assert np.all(np.linalg.eigvalsh(sigma2) > 0)
    for cov in article.COVARIANCES:
        np.testing.assert_array_equal(cov, cov.T)
        assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_article_parameters_are_the_printed_ones_and_fresh_copies():
    w, m, c = gmmlib.article_parameters()
    np.testing.assert_allclose(w, [0.3, 0.6, 0.1])
    np.testing.assert_allclose(m, [[2.5, 8.0], [8.0, 2.5], [10.0, 10.0]])
    np.testing.assert_allclose(c[0], [[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(c[2], [[2.0, 0.0], [0.0, 2.0]])
    assert np.isclose(w.sum(), 1.0, rtol=0, atol=1e-15)
    w[0] = 99.0
    m[0, 0] = 99.0
    c[0, 0, 0] = 99.0
    w2, m2, c2 = gmmlib.article_parameters()
    assert w2[0] == 0.3 and m2[0, 0] == 2.5 and c2[0, 0, 0] == 2.0


def test_article_samples_are_2000_reproducible_samples():
    X, labels = gmmlib.article_samples()
    assert X.shape == (2000, 2) and labels.shape == (2000,)
    assert X.dtype == np.float64
    assert set(np.unique(labels)) == {0, 1, 2}
    X2, labels2 = gmmlib.article_samples(random_state=article.SEED)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    X3, _ = gmmlib.article_samples(random_state=article.SEED + 1)
    assert not np.array_equal(X, X3)
    assert gmmlib.article_samples(n_samples=10)[0].shape == (10, 2)


def test_article_samples_follow_the_article_parameters():
    X, labels = gmmlib.article_samples()
    w, m, c = gmmlib.article_parameters()
    n = X.shape[0]
    freq = np.bincount(labels, minlength=3) / n
    np.testing.assert_array_less(np.abs(freq - w), 4 * np.sqrt(w * (1 - w) / n))
    for k in range(3):
        Xk = X[labels == k]
        # 4 standard errors of the mean, per coordinate
        se = np.sqrt(np.diag(c[k]) / len(Xk))
        np.testing.assert_array_less(np.abs(Xk.mean(0) - m[k]), 4 * se)
        np.testing.assert_allclose(np.cov(Xk.T), c[k], atol=0.5)


def test_estimator_recovers_the_article_parameters():
    X, _ = gmmlib.article_samples()
    w, m, c = gmmlib.article_parameters()
    gm = gmmlib.GaussianMixture(3, random_state=0, tol=1e-6, max_iter=500).fit(X)
    assert gm.converged_
    perm = h.match_components(gm.means_, m)
    np.testing.assert_allclose(gm.weights_[perm], w, atol=0.03)
    np.testing.assert_allclose(gm.means_[perm], m, atol=0.2)
    np.testing.assert_allclose(gm.covariances_[perm], c, atol=0.5)
    # the fit explains the data better than the true parameters (it maximises the likelihood)
    assert gm.score(X) * len(X) >= gmmlib.log_likelihood(X, w, m, c) - 1e-9
    # and sits close to the article's own reported weights and means
    np.testing.assert_allclose(gm.weights_[perm], article.REPORTED_WEIGHTS, atol=0.03)
    np.testing.assert_allclose(gm.means_[perm], article.REPORTED_MEANS, atol=0.35)
