r"""The E-step: responsibilities by Bayes' rule, and the log-likelihood (chapter 3).

Equation :eq:`eq-responsibility`:

.. math::

    \gamma_{ik} = P(z_i = k \mid x_i, \theta)
        = \frac{p_k \phi(x_i \mid \mu_k, \Sigma_k)}
               {\sum_{j} p_j \phi(x_i \mid \mu_j, \Sigma_j)}.

References
----------
The book, chapter 3, "The E-step" (chapters/03_e_step.ipynb).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._gaussian import _log_resp_beyond_overflow
from ._mixture import _log_joint, _prepare
from ._validation import check_sample_weight


def _e_step(X, weights, means, prec_chol, covariance_type):
    """Core E-step: (log γ of shape (N, K), log P(x_i | θ) of shape (N,)).

    No argument checking: the public functions check X and θ first.
    """
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    log_norm = logsumexp(log_joint, axis=1)
    lost = np.isneginf(log_norm)  # every density underflowed: no component explains the row
    if not np.any(lost):
        return log_joint - log_norm[:, None], log_norm
    # such a row still has responsibilities: computed without the densities' common factor
    log_resp = np.empty_like(log_joint)
    log_resp[~lost] = log_joint[~lost] - log_norm[~lost, None]
    log_resp[lost] = _log_resp_beyond_overflow(X[lost], weights, means, prec_chol, covariance_type)
    return log_resp, log_norm


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
        Entry (i, k) is :math:`\log\gamma_{ik}`; each row's exponentials sum to 1.

    Notes
    -----
    .. math::

        \log\gamma_{ik} = \log p_k + \log\phi_{ik}
            - \operatorname{logsumexp}_j(\log p_j + \log\phi_{ij}).

    The ratio of :eq:`eq-responsibility` is a difference of logs, so it stays exact
    where every density :math:`\phi_{ij}` would underflow to 0 (then the direct
    formula gives 0/0).

    Examples
    --------
    Far from both components the log-responsibilities are still exact: at
    x = 60 the first one is -59.5, half the difference of the two squared
    distances:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means, covariances = [0.5, 0.5], [[0.0], [1.0]], np.ones((2, 1, 1))
    >>> X = np.array([[0.5], [60.0]])
    >>> log_resp = gmmlib.log_responsibilities(X, weights, means, covariances)
    >>> print(np.round(log_resp[:, 0], 4))
    [ -0.6931 -59.5   ]
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    return _e_step(X, weights, means, prec_chol, covariance_type)[0]


def responsibilities(X, weights, means, covariances, covariance_type: str = "full"):
    r"""Responsibilities γ_ik = P(z_i = k | x_i, θ) (:eq:`eq-responsibility`).

    Each row is a probability distribution over the components: non-negative,
    summing to 1. ``exp`` of :func:`gmmlib.log_responsibilities`, which says how
    it is computed.

    Parameters
    ----------
    X, weights, means, covariances, covariance_type
        The data and the current parameters θ⁽ᵗ⁾, as in
        :func:`gmmlib.log_responsibilities`.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Entry (i, k) is :math:`\gamma_{ik}`; every row sums to 1.

    Examples
    --------
    Between two unit-variance components a point is shared equally; at x = 60
    both densities underflow to 0 and the direct ratio of Bayes' rule is
    0/0 = nan, while the responsibilities, computed in log space, give the
    point to the nearer component:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means, covariances = [0.5, 0.5], [[0.0], [1.0]], np.ones((2, 1, 1))
    >>> X = np.array([[0.5], [60.0]])
    >>> print(np.round(gmmlib.responsibilities(X, weights, means, covariances), 4))
    [[0.5 0.5]
     [0.  1. ]]
    >>> phi = np.exp(-0.5 * (X - np.array(means).T) ** 2) / np.sqrt(2 * np.pi)
    >>> with np.errstate(invalid="ignore"):
    ...     print(np.round(phi * weights / (phi @ weights)[:, None], 4))
    [[0.5 0.5]
     [nan nan]]
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

    Examples
    --------
    An integer sample weight counts a sample that many times:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means, covariances = [0.5, 0.5], [[0.0], [3.0]], np.ones((2, 1, 1))
    >>> X = np.array([[0.0], [1.0], [1.0]])
    >>> print(f"{gmmlib.log_likelihood(X, weights, means, covariances):.4f}")
    -5.4224
    >>> ll = gmmlib.log_likelihood(X[:2], weights, means, covariances, sample_weight=[1, 2])
    >>> print(f"{ll:.4f}")
    -5.4224
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    log_norm = _e_step(X, weights, means, prec_chol, covariance_type)[1]
    return float(log_norm.sum()) if w is None else float(w @ log_norm)
