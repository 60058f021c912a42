r"""The mixture density and the generative process (chapter 1).

Equation :eq:`eq-marginal-density`:

.. math::

    P(x \mid \theta) = \sum_{k=1}^K p_k \, \phi(x \mid \mu_k, \Sigma_k),

computed as a log-sum-exp over components so that it never underflows.

References
----------
The book, chapter 1, "The generative model" (chapters/01_generative_model.ipynb).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._gaussian import _log_component_densities, _precision_cholesky
from ._validation import check_data, check_int, check_parameters


def _prepare(X, weights, means, covariances, covariance_type):
    """The first line of the public functions taking X and θ (chapters 1 to 3).

    Checks X and θ with ``gmmlib._validation``, then factors the covariances;
    returns (X, weights, means, precision Cholesky factors) for the cores.
    """
    X = check_data(X)
    weights, means, covariances = check_parameters(
        weights, means, covariances, covariance_type, X.shape[1]
    )
    return X, weights, means, _precision_cholesky(covariances, covariance_type)


def _log_joint(X, weights, means, prec_chol, covariance_type):
    """log p_k + log φ(x_i | μ_k, Σ_k), shape (N, K): log P(x_i, z_i = k | θ).

    A core: no argument checking.
    """
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        log_weights = np.log(weights)
    return _log_component_densities(X, means, prec_chol, covariance_type) + log_weights


def log_mixture_density(X, weights, means, covariances, covariance_type: str = "full"):
    r"""Log of the marginal density, log P(x_i | θ), for every sample.

    Implements :eq:`eq-marginal-density`.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    weights : array_like of shape (n_components,)
        Mixture weights :math:`p_k = P(z = k)`, summing to 1.
    means : array_like of shape (n_components, n_features)
    covariances : array_like
        Shaped per ``covariance_type`` as in scikit-learn (see
        :func:`gmmlib.precision_cholesky`).
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

    Returns
    -------
    ndarray of shape (n_samples,)
        :math:`\log P(x_i \mid \theta)` of every sample.

    Notes
    -----
    .. math::

        \log P(x_i \mid \theta) = \log \sum_k \exp\bigl(\log p_k
            + \log \phi(x_i \mid \mu_k, \Sigma_k)\bigr),

    evaluated with the log-sum-exp trick (the largest term is factored out), so
    the result is finite even where every :math:`\phi` underflows.

    Examples
    --------
    Two unit-variance components in one dimension. At x = 40 both densities
    underflow to 0, so the textbook log of the weighted sum is ``-inf``; the
    log-sum-exp is not:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means = np.array([0.5, 0.5]), np.array([[0.0], [1.0]])
    >>> covariances = np.ones((2, 1, 1))
    >>> X = np.array([[0.5], [40.0]])
    >>> print(np.round(gmmlib.log_mixture_density(X, weights, means, covariances), 4))
    [  -1.0439 -762.1121]
    >>> phi = np.exp(-0.5 * (X - means.T) ** 2) / np.sqrt(2 * np.pi)
    >>> with np.errstate(divide="ignore"):
    ...     print(np.round(np.log(phi @ weights), 4))
    [-1.0439    -inf]
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    return logsumexp(_log_joint(X, weights, means, prec_chol, covariance_type), axis=1)


def mixture_density(X, weights, means, covariances, covariance_type: str = "full"):
    r"""The marginal density P(x | θ) = Σ_k p_k φ(x | μ_k, Σ_k) (:eq:`eq-marginal-density`).

    ``exp`` of :func:`gmmlib.log_mixture_density`, for plotting.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    weights, means, covariances, covariance_type
        The mixture θ, as in :func:`gmmlib.log_mixture_density`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    The mixture density is the weighted sum of the component densities:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means = np.array([0.25, 0.75]), np.array([[0.0], [2.0]])
    >>> covariances = np.ones((2, 1, 1))
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> print(np.round(gmmlib.mixture_density(X, weights, means, covariances), 4))
    [0.1402 0.242  0.3127]
    >>> phi = np.exp(-0.5 * (X - means.T) ** 2) / np.sqrt(2 * np.pi)
    >>> print(np.round(phi @ weights, 4))
    [0.1402 0.242  0.3127]
    """
    return np.exp(log_mixture_density(X, weights, means, covariances, covariance_type))


def _draw_component(rng, n, mean, cov, covariance_type):
    d = mean.shape[0]
    if covariance_type in ("full", "tied"):
        return mean + rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    return mean + rng.standard_normal((n, d)) * np.sqrt(cov)


def _sample_mixture(n_samples, weights, means, covariances, covariance_type, random_state):
    """Core of :func:`gmmlib.sample_mixture`; no argument checking."""
    rng = np.random.default_rng(random_state)
    counts = rng.multinomial(n_samples, weights)
    parts, labels = [], []
    for k, n_k in enumerate(counts):
        cov = covariances if covariance_type == "tied" else covariances[k]
        parts.append(_draw_component(rng, n_k, means[k], cov, covariance_type))
        labels.append(np.full(n_k, k))
    X, labels = np.concatenate(parts), np.concatenate(labels)
    order = rng.permutation(n_samples)
    return X[order], labels[order]


def sample_mixture(
    n_samples: int,
    weights,
    means,
    covariances,
    covariance_type: str = "full",
    random_state=None,
):
    r"""Draw samples by the generative process of :eq:`eq-generative-model`.

    For each sample, pick a component :math:`z_i = k` with probability
    :math:`p_k`, then draw :math:`x_i \sim \mathcal N(\mu_k, \Sigma_k)`.

    Parameters
    ----------
    n_samples : int
    weights, means, covariances, covariance_type
        The mixture θ, as in :func:`gmmlib.log_mixture_density`.
    random_state : None, int or numpy.random.Generator
        Seed or generator; the same seed gives the same samples.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        The hidden component :math:`z_i` of each sample.

    Notes
    -----
    The component counts are drawn at once from the multinomial
    :math:`(n_1, \dots, n_K) \sim \mathrm{Mult}(N, p)`, which has the same law
    as N independent categorical draws; each Gaussian is drawn as
    :math:`\mu_k + L_k \varepsilon` with :math:`\Sigma_k = L_k L_k^\top`,
    :math:`\varepsilon \sim \mathcal N(0, I)`. The samples are then shuffled so
    that their order carries no information about the labels.

    Examples
    --------
    The label frequencies follow the weights, and each component's samples
    centre on its mean:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means = [0.3, 0.7], [[1.0, 1.0], [5.0, 5.0]]
    >>> covariances = np.array([np.eye(2), np.eye(2)])
    >>> X, labels = gmmlib.sample_mixture(10_000, weights, means, covariances, random_state=0)
    >>> X.shape, labels.shape
    ((10000, 2), (10000,))
    >>> print(np.round(np.bincount(labels) / len(labels), 1))
    [0.3 0.7]
    >>> print(np.round(X[labels == 1].mean(axis=0)))
    [5. 5.]
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    weights, means, covariances = check_parameters(weights, means, covariances, covariance_type)
    return _sample_mixture(n_samples, weights, means, covariances, covariance_type, random_state)
