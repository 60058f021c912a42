"""Starting points for EM: initial responsibilities, then one M-step.

Every method produces responsibilities; the initial (p, μ, Σ) are the M-step
of those (:func:`gmmlib.m_step`), which is also how scikit-learn starts, so a
user-given ``weights_init``, ``means_init`` or ``covariances_init`` simply
replaces the corresponding part.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.vq import kmeans2

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def _one_hot(labels, n_components):
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def _nearest(X, centres):
    d2 = (X**2).sum(1)[:, None] - 2 * X @ centres.T + (centres**2).sum(1)[None]
    return np.argmin(d2, axis=1)


def kmeans_plusplus_centres(X, n_components: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k-means++ seeds: each next seed drawn with probability ∝ D(x)²."""
    n_samples = X.shape[0]
    indices = [int(rng.integers(n_samples))]
    closest = ((X - X[indices[0]]) ** 2).sum(1)
    for _ in range(1, n_components):
        total = closest.sum()
        if total <= 0:  # every point coincides with a seed: pick any unused one
            unused = np.setdiff1d(np.arange(n_samples), indices)
            nxt = int(rng.choice(unused))
        else:
            nxt = int(rng.choice(n_samples, p=closest / total))
        indices.append(nxt)
        closest = np.minimum(closest, ((X - X[nxt]) ** 2).sum(1))
    return np.asarray(indices)


def initial_responsibilities(X, n_components: int, method: str, rng: np.random.Generator):
    """Initial responsibilities (n_samples, n_components) for EM.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {"kmeans", "k-means++", "random", "random_from_data"}
        * ``kmeans``: hard labels of a k-means clustering (scipy's ``kmeans2``
          seeded by k-means++), the usual and most robust start;
        * ``k-means++``: k-means++ seeds, each sample given to its nearest seed;
        * ``random``: uniform random responsibilities, normalised per row;
        * ``random_from_data``: K distinct data points as seeds, each sample given
          to its nearest seed.
    rng : numpy.random.Generator

    Notes
    -----
    scikit-learn gives each seed of ``k-means++`` and ``random_from_data`` a
    single point, so its initial covariances are ``reg_covar * I``; assigning
    every sample to its nearest seed gives data-sized covariances instead and
    works with ``reg_covar=0``.
    """
    n_samples = X.shape[0]
    if method == "random":
        resp = rng.uniform(size=(n_samples, n_components))
        return resp / resp.sum(axis=1, keepdims=True)
    if method == "random_from_data":
        seeds = rng.choice(n_samples, size=n_components, replace=False)
        return _one_hot(_nearest(X, X[seeds]), n_components)
    if method == "k-means++":
        seeds = kmeans_plusplus_centres(X, n_components, rng)
        return _one_hot(_nearest(X, X[seeds]), n_components)
    if method == "kmeans":
        for _ in range(10):
            with warnings.catch_warnings():
                # an empty cluster is handled below by another try
                warnings.simplefilter("ignore")
                _, labels = kmeans2(X, n_components, minit="++", seed=rng, missing="warn", iter=30)
            if np.unique(labels).size == n_components:
                break
        return _one_hot(labels, n_components)
    raise ValueError(
        f"init_params must be one of {', '.join(map(repr, INIT_METHODS))}; got {method!r}."
    )
