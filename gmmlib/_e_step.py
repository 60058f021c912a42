r"""The E-step: responsibilities by Bayes' rule, and the log-likelihood (chapter 3).

Equation :eq:`eq-responsibility`:

.. math::

    \gamma_{ik} = P(z_i = k \mid x_i, \theta)
        = \frac{p_k \phi(x_i \mid \mu_k, \Sigma_k)}
               {\sum_{j} p_j \phi(x_i \mid \mu_j, \Sigma_j)}.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._mixture import _log_joint, _prepare
from ._validation import check_sample_weight


def _e_step(X, weights, means, prec_chol, covariance_type):
    """Core E-step: (log γ of shape (N, K), log P(x_i | θ) of shape (N,))."""
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    log_norm = logsumexp(log_joint, axis=1)
    return log_joint - log_norm[:, None], log_norm


def log_responsibilities(X, weights, means, covariances, covariance_type: str = "full"):
    r"""Log-responsibilities log γ_ik, computed entirely in log space (:eq:`eq-responsibility`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    weights, means, covariances, covariance_type
        The current parameters θ⁽ᵗ⁾, as in :func:`gmmlib.log_mixture_density`.

    Returns
    -------
    ndarray of shape (n_samples, n_components)

    Notes
    -----
    .. math::

        \log\gamma_{ik} = \log p_k + \log\phi_{ik}
            - \operatorname{logsumexp}_j(\log p_j + \log\phi_{ij}).

    The ratio of :eq:`eq-responsibility` is a difference of logs, so it stays exact
    where every density :math:`\phi_{ij}` would underflow to 0 (then the direct
    formula gives 0/0).
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    return _e_step(X, weights, means, prec_chol, covariance_type)[0]


def responsibilities(X, weights, means, covariances, covariance_type: str = "full"):
    """Responsibilities γ_ik = P(z_i = k | x_i, θ) (:eq:`eq-responsibility`).

    Each row is a probability distribution over the components: non-negative,
    summing to 1. See :func:`log_responsibilities` for how it is computed.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    return np.exp(log_responsibilities(X, weights, means, covariances, covariance_type))


def log_likelihood(
    X, weights, means, covariances, covariance_type: str = "full", sample_weight=None
):
    r"""The log-likelihood of the data, L(θ) = Σ_i log P(x_i | θ) (:eq:`eq-log-likelihood`).

    Parameters
    ----------
    X, weights, means, covariances, covariance_type
        As in :func:`gmmlib.log_mixture_density`.
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each sample; the sum becomes
        :math:`\sum_i w_i \log P(x_i \mid \theta)` (:eq:`eq-weighted-log-likelihood`).

    Returns
    -------
    float
        The total (not the average) log-likelihood.

    Notes
    -----
    This is the quantity EM never decreases. Computed as a sum of log-sum-exps.
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    log_norm = _e_step(X, weights, means, prec_chol, covariance_type)[1]
    if sample_weight is None:
        return float(log_norm.sum())
    return float(check_sample_weight(sample_weight, X.shape[0]) @ log_norm)
