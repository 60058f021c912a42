r"""The complete-data log-likelihood and the Q function (chapter 2).

:eq:`eq-q-definition` is the expectation of the complete-data log-likelihood
:eq:`eq-complete-log-likelihood` under the posterior of the hidden assignments:

.. math::

    Q(\theta, \theta^{(t)}) = \sum_Z \log P(X, Z \mid \theta)\, P(Z \mid X, \theta^{(t)}),

a sum over all :math:`K^N` assignments. Because the posterior factorises over
samples and each factor sums to one, it collapses to :eq:`eq-q-collapsed`:

.. math::

    Q(\theta, \theta^{(t)}) = \sum_{i=1}^N \sum_{k=1}^K \gamma_{ik}
        \bigl(\log p_k + \log \phi(x_i \mid \mu_k, \Sigma_k)\bigr).

:func:`q_function_brute_force` evaluates the first form literally (tiny data
only), :func:`q_function` the second; the book and the tests show they agree.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._e_step import _e_step
from ._m_step import _check_resp
from ._mixture import _log_joint, _prepare
from ._validation import check_data

#: Largest number of assignments :func:`q_function_brute_force` will enumerate.
MAX_BRUTE_FORCE_ASSIGNMENTS = 2_000_000


def complete_data_log_likelihood(
    X, labels, weights, means, covariances, covariance_type: str = "full"
) -> float:
    r"""log P(X, Z | θ) for one given assignment Z (:eq:`eq-complete-log-likelihood`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    labels : array_like of int, shape (n_samples,)
        The assignment :math:`z_i \in \{0, \dots, K-1\}` of every sample.
    weights, means, covariances, covariance_type
        θ, as in :func:`gmmlib.log_mixture_density`.

    Returns
    -------
    float

    Notes
    -----
    The samples are independent, so the joint factorises and its log is a sum:

    .. math::

        \log P(X, Z \mid \theta) = \sum_{i=1}^N \bigl(\log p_{z_i}
            + \log\phi(x_i \mid \mu_{z_i}, \Sigma_{z_i})\bigr).
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({X.shape[0]},); got {labels.shape}.")
    if labels.min() < 0 or labels.max() >= means.shape[0]:
        raise ValueError(f"labels must lie in 0..{means.shape[0] - 1}.")
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    return float(log_joint[np.arange(X.shape[0]), labels].sum())


def _xlogy_sum(resp, log_joint):
    # γ = 0 times log p = -inf contributes 0 (the limit), not NaN.
    terms = np.where(resp > 0, resp * np.where(resp > 0, log_joint, 0.0), 0.0)
    return float(terms.sum())


def q_function(X, resp, weights, means, covariances, covariance_type: str = "full") -> float:
    r"""The Q function in its collapsed form (:eq:`eq-q-collapsed`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    resp : array_like of shape (n_samples, n_components)
        :math:`\gamma_{ik} = P(z_i = k \mid x_i, \theta^{(t)})`, computed from the
        *old* parameters by :func:`gmmlib.responsibilities`.
    weights, means, covariances, covariance_type
        The *new* parameters θ at which Q is evaluated.

    Returns
    -------
    float

    Notes
    -----
    .. math::

        Q(\theta, \theta^{(t)}) = \sum_{i=1}^N\sum_{k=1}^K \gamma_{ik}
            \bigl(\log p_k + \log\phi(x_i \mid \mu_k, \Sigma_k)\bigr).
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    resp = _check_resp(resp, X.shape[0])
    if resp.shape[1] != means.shape[0]:
        raise ValueError(
            f"resp has {resp.shape[1]} columns but there are {means.shape[0]} components."
        )
    return _xlogy_sum(resp, _log_joint(X, weights, means, prec_chol, covariance_type))


def q_function_brute_force(
    X,
    weights,
    means,
    covariances,
    old_weights,
    old_means,
    old_covariances,
    covariance_type: str = "full",
) -> float:
    r"""The Q function as defined, a sum over all K^N assignments (:eq:`eq-q-definition`).

    Only for tiny data: it enumerates every assignment Z and refuses more than
    ``MAX_BRUTE_FORCE_ASSIGNMENTS`` of them.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    weights, means, covariances
        The parameters θ at which Q is evaluated.
    old_weights, old_means, old_covariances
        The current parameters θ⁽ᵗ⁾ that define the posterior of Z.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    float

    Notes
    -----
    .. math::

        Q(\theta, \theta^{(t)}) = \sum_{z_1=1}^K\cdots\sum_{z_N=1}^K
            \Bigl(\sum_{i=1}^N \log P(x_i, z_i \mid \theta)\Bigr)
            \prod_{i=1}^N P(z_i \mid x_i, \theta^{(t)}).
    """
    X, weights, means, prec_chol = _prepare(X, weights, means, covariances, covariance_type)
    _, old_weights, old_means, old_prec = _prepare(
        X, old_weights, old_means, old_covariances, covariance_type
    )
    n_samples, n_components = X.shape[0], means.shape[0]
    if n_components**n_samples > MAX_BRUTE_FORCE_ASSIGNMENTS:
        raise ValueError(
            f"{n_components}**{n_samples} assignments is too many to enumerate; the brute "
            "force is a check for tiny data (use q_function for real data)."
        )
    log_joint = _log_joint(X, weights, means, prec_chol, covariance_type)
    log_post = _e_step(X, old_weights, old_means, old_prec, covariance_type)[0]
    rows = np.arange(n_samples)
    total = 0.0
    for z in itertools.product(range(n_components), repeat=n_samples):
        z = np.asarray(z)
        posterior = np.exp(log_post[rows, z].sum())
        if posterior > 0:
            total += log_joint[rows, z].sum() * posterior
    return float(total)


def _full_precisions(covariances):
    return np.linalg.inv(covariances)


def q_gradient_weights(resp, weights) -> np.ndarray:
    r"""∂Q/∂p_k = N_k / p_k, the gradient of Q in the weights (:eq:`eq-lagrange-multiplier`).

    Parameters
    ----------
    resp : array_like of shape (n_samples, n_components)
        Responsibilities :math:`\gamma_{ik}` from the E-step.
    weights : array_like of shape (n_components,)
        Strictly positive weights at which the gradient is taken.

    Returns
    -------
    ndarray of shape (n_components,)

    Notes
    -----
    Only :math:`\sum_k N_k \log p_k` of Q depends on the weights, so

    .. math::  \frac{\partial Q}{\partial p_k} = \frac{N_k}{p_k}.

    The Lagrangian's stationarity condition is :math:`N_k / p_k + \lambda = 0` for
    every k: at the constrained maximum every entry equals :math:`-\lambda = N`.
    """
    resp = _check_resp(resp)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (resp.shape[1],) or not np.all(weights > 0):
        raise ValueError(
            f"weights must be {resp.shape[1]} strictly positive numbers, one per column of "
            f"resp; got shape {weights.shape}."
        )
    return resp.sum(axis=0) / weights


def q_gradient_means(X, resp, means, covariances) -> np.ndarray:
    r"""∂Q/∂μ_k for full covariances (:eq:`eq-q-gradient-means`).

    Returns
    -------
    ndarray of shape (n_components, n_features)

    Notes
    -----
    .. math::

        \frac{\partial Q}{\partial \mu_k} = \sum_i \gamma_{ik}\,\Sigma_k^{-1}(x_i - \mu_k).

    Written with an explicit :math:`\Sigma_k^{-1}` because it transcribes the
    derivation; the fitting code never forms it.
    """
    X = check_data(X)
    resp = _check_resp(resp, X.shape[0])
    means = np.asarray(means, dtype=np.float64)
    prec = _full_precisions(np.asarray(covariances, dtype=np.float64))
    grad = np.empty_like(means)
    for k in range(means.shape[0]):
        grad[k] = prec[k] @ (resp[:, k] @ (X - means[k]))
    return grad


def q_gradient_covariances(X, resp, means, covariances) -> np.ndarray:
    r"""∂Q/∂Σ_k for full covariances (:eq:`eq-q-gradient-covariances`).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)

    Notes
    -----
    With :math:`S_k = \sum_i \gamma_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top` and
    :math:`N_k = \sum_i\gamma_{ik}`,

    .. math::

        \frac{\partial Q}{\partial \Sigma_k}
            = -\tfrac12 N_k \Sigma_k^{-1} + \tfrac12 \Sigma_k^{-1} S_k \Sigma_k^{-1},

    from :math:`\partial\log|\Sigma|/\partial\Sigma = \Sigma^{-1}` and
    :math:`\partial\,\mathrm{tr}(\Sigma^{-1}S)/\partial\Sigma = -\Sigma^{-1}S\Sigma^{-1}`
    (Σ and S symmetric; not :math:`-S\Sigma^{-2}`, which holds only when they
    commute). It is zero exactly at :eq:`eq-covariances-update`.
    """
    X = check_data(X)
    resp = _check_resp(resp, X.shape[0])
    means = np.asarray(means, dtype=np.float64)
    prec = _full_precisions(np.asarray(covariances, dtype=np.float64))
    grad = np.empty_like(prec)
    for k in range(means.shape[0]):
        diff = X - means[k]
        scatter = (resp[:, k] * diff.T) @ diff
        grad[k] = 0.5 * (prec[k] @ scatter @ prec[k] - resp[:, k].sum() * prec[k])
    return grad
