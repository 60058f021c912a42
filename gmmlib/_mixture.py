r"""The mixture density and the generative process (chapter 1).

Equation :eq:`eq-marginal-density`:

.. math::

    P(x \mid \theta) = \sum_{k=1}^K p_k \, \phi(x \mid \mu_k, \Sigma_k),

computed as a log-sum-exp over components so that it never underflows.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._gaussian import _log_component_densities, precision_cholesky
from ._validation import (
    check_covariance_type,
    check_covariances,
    check_data,
    check_int,
    check_means,
    check_weights,
)


def check_parameters(weights, means, covariances, covariance_type, n_features=None):
    """Validate a full parameter set θ = (p, μ, Σ); return float64 arrays."""
    check_covariance_type(covariance_type)
    means = check_means(means, n_features=n_features)
    n_components, n_features = means.shape
    weights = check_weights(weights, n_components)
    covariances = check_covariances(covariances, covariance_type, n_components, n_features)
    return weights, means, covariances


def _prepare(X, weights, means, covariances, covariance_type):
    """Validate X and θ at the public boundary; return them with the precision factors."""
    X = check_data(X)
    weights, means, covariances = check_parameters(
        weights, means, covariances, covariance_type, X.shape[1]
    )
    return X, weights, means, precision_cholesky(covariances, covariance_type)


def _log_joint(X, weights, means, prec_chol, covariance_type):
    """log p_k + log φ(x_i | μ_k, Σ_k), shape (N, K): log P(x_i, z_i = k | θ)."""
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
        Shaped per ``covariance_type`` as in scikit-learn.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray of shape (n_samples,)

    Notes
    -----
    .. math::

        \log P(x_i \mid \theta) = \log \sum_k \exp\bigl(\log p_k
            + \log \phi(x_i \mid \mu_k, \Sigma_k)\bigr),

    evaluated with the log-sum-exp trick (the largest term is factored out), so
    the result is finite even where every :math:`\phi` underflows.
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    return logsumexp(_log_joint(X, weights, means, prec_chol, covariance_type), axis=1)


def mixture_density(X, weights, means, covariances, covariance_type: str = "full"):
    """The marginal density P(x | θ) = Σ_k p_k φ(x | μ_k, Σ_k) (:eq:`eq-marginal-density`).

    ``exp`` of :func:`log_mixture_density`, for plotting.
    """
    return np.exp(log_mixture_density(X, weights, means, covariances, covariance_type))


def _draw_component(rng, n, mean, cov, covariance_type):
    d = mean.shape[0]
    if covariance_type in ("full", "tied"):
        return mean + rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    return mean + rng.standard_normal((n, d)) * np.sqrt(cov)


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
        The mixture θ, as in :func:`log_mixture_density`.
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
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    weights, means, covariances = check_parameters(weights, means, covariances, covariance_type)
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
