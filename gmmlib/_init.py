"""Starting points for EM: initial responsibilities, then one M-step.

Every method produces responsibilities; the initial (p, μ, Σ) are the M-step
of those (:func:`gmmlib.m_step`), which is also how scikit-learn starts, so a
user-given ``weights_init``, ``means_init`` or ``covariances_init`` simply
replaces the corresponding part.

References
----------
The book, chapter 7, "The EM algorithm" (chapters/07_em_algorithm.ipynb); the
methods compared, part two, chapter 3, "Initialisation and local optima"
(chapters/practice/03_initialisation.ipynb).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.vq import kmeans2

from ._validation import check_data, check_enough_samples, check_init_params, check_int


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


def _initial_responsibilities(X, n_components, method, rng):
    """Core of :func:`gmmlib.initial_responsibilities`; no argument checking.

    ``method`` is one of ``INIT_METHODS`` (anything else runs k-means) and
    ``rng`` a ``numpy.random.Generator``.
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
    for _ in range(10):
        with warnings.catch_warnings():
            # an empty cluster is handled below by another try
            warnings.simplefilter("ignore")
            _, labels = kmeans2(X, n_components, minit="++", seed=rng, missing="warn", iter=30)
        if np.unique(labels).size == n_components:
            break
    return _one_hot(labels, n_components)


def initial_responsibilities(X, n_components: int, method: str, rng):
    """Initial responsibilities (n_samples, n_components) for EM.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    n_components : int
        At most the number of samples.
    method : {"kmeans", "k-means++", "random", "random_from_data"}
        * ``kmeans``: hard labels of a k-means clustering (scipy's ``kmeans2``
          seeded by k-means++), the usual and most robust start;
        * ``k-means++``: k-means++ seeds, each sample given to its nearest seed;
        * ``random``: uniform random responsibilities, normalised per row;
        * ``random_from_data``: K distinct data points as seeds, each sample given
          to its nearest seed.
    rng : None, int or numpy.random.Generator
        The random numbers; a generator is used (and advanced) as it is, a seed
        gives a fresh generator.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Every row sums to 1; all methods but ``random`` give rows of 0 and 1.

    Notes
    -----
    scikit-learn gives each seed of ``k-means++`` and ``random_from_data`` a
    single point, so its initial covariances are ``reg_covar * I``; assigning
    every sample to its nearest seed gives data-sized covariances instead and
    works with ``reg_covar=0``.

    Examples
    --------
    Two well separated pairs of points: k-means gives each pair a component,
    and :func:`gmmlib.m_step` turns that into a starting θ:

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [9.0, 9.0], [9.0, 8.0]])
    >>> resp = gmmlib.initial_responsibilities(X, 2, "kmeans", np.random.default_rng(0))
    >>> print(resp.sum(axis=0), resp.sum(axis=1))
    [2. 2.] [1. 1. 1. 1.]
    >>> print(resp[0] @ resp[1], resp[0] @ resp[2])
    1.0 0.0
    >>> weights, means, covariances = gmmlib.m_step(X, resp, reg_covar=1e-6)
    >>> print(np.round(weights, 4))
    [0.5 0.5]
    """
    X = check_data(X)
    n_components = check_int(n_components, "n_components", minimum=1)
    method = check_init_params(method)
    check_enough_samples(n_components, X.shape[0])
    return _initial_responsibilities(X, n_components, method, np.random.default_rng(rng))
