r"""The M-step: the maximisers of the Q function (chapters 4, 5 and 6).

Each update is its own function, named after the parameter it updates:

* :eq:`eq-weights-update` (chapter 4, the Lagrange multiplier λ = −N):
  :math:`p_k = N_k / N`, with :math:`N_k = \sum_i \gamma_{ik}`;
* :eq:`eq-means-update` (chapter 5): :math:`\mu_k = \sum_i \gamma_{ik} x_i / N_k`;
* :eq:`eq-covariances-update` (chapter 6):
  :math:`\Sigma_k = \sum_i \gamma_{ik} (x_i - \mu_k)(x_i - \mu_k)^\top / N_k`,
  with the *new* means.

Per-sample weights
------------------
With a weight :math:`w_i` per sample the log-likelihood becomes
:math:`\sum_i w_i \log P(x_i \mid \theta)`, so every term of Q that belongs to
sample i is multiplied by :math:`w_i`:
:math:`Q = \sum_i \sum_k w_i\gamma_{ik}(\log p_k + \log\phi_{ik})`. The
derivation goes through unchanged with :math:`\gamma_{ik}` replaced by
:math:`w_i\gamma_{ik}` and N by :math:`\sum_i w_i`; an integer weight is
exactly a repeated row. That is the one line (``_weighted``) every update
shares.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    check_covariance_type,
    check_data,
    check_means,
    check_nonnegative,
    check_sample_weight,
)

# Added to every N_k (as scikit-learn does) so that a component which lost all
# its samples gives a finite mean instead of 0/0; its covariance is then
# reg_covar * I, which precision_cholesky rejects with a clear message if 0.
_NK_FLOOR = 10 * np.finfo(np.float64).eps


def _weighted(resp, sample_weight):
    return resp if sample_weight is None else resp * sample_weight[:, None]


def _update_weights(resp):
    nk = resp.sum(axis=0) + _NK_FLOOR
    return nk / nk.sum()


def _update_means(X, resp):
    nk = resp.sum(axis=0) + _NK_FLOOR
    return (resp.T @ X) / nk[:, None]


def _update_covariances(X, resp, means, covariance_type, reg_covar):
    n_features = X.shape[1]
    nk = resp.sum(axis=0) + _NK_FLOOR
    if covariance_type == "full":
        cov = np.empty((means.shape[0], n_features, n_features))
        for k in range(means.shape[0]):
            diff = X - means[k]
            cov[k] = (resp[:, k] * diff.T) @ diff / nk[k]
            cov[k].flat[:: n_features + 1] += reg_covar
        return cov
    if covariance_type == "tied":
        cov = np.zeros((n_features, n_features))
        for k in range(means.shape[0]):
            diff = X - means[k]
            cov += (resp[:, k] * diff.T) @ diff
        cov /= nk.sum()
        cov.flat[:: n_features + 1] += reg_covar
        return cov
    var = np.empty((means.shape[0], n_features))
    for k in range(means.shape[0]):
        var[k] = resp[:, k] @ (X - means[k]) ** 2 / nk[k]
    var += reg_covar
    return var if covariance_type == "diag" else var.mean(axis=1)


def _check_resp(resp, n_samples=None):
    resp = np.asarray(resp, dtype=np.float64)
    if resp.ndim != 2:
        raise ValueError(f"resp must be 2-D of shape (n_samples, n_components); got {resp.shape}.")
    if n_samples is not None and resp.shape[0] != n_samples:
        raise ValueError(f"resp has {resp.shape[0]} rows but X has {n_samples} samples.")
    if not np.all(np.isfinite(resp)) or np.any(resp < 0):
        raise ValueError("resp must be finite and non-negative (probabilities γ_ik).")
    return resp


def update_weights(resp, sample_weight=None) -> np.ndarray:
    r"""Mixture weights that maximise Q under Σ p_k = 1 (:eq:`eq-weights-update`).

    Parameters
    ----------
    resp : array_like of shape (n_samples, n_components)
        Responsibilities :math:`\gamma_{ik}` from the E-step.
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each sample; :math:`N_k = \sum_i w_i\gamma_{ik}` and
        :math:`p_k = N_k / \sum_i w_i` (:eq:`eq-weighted-m-step`).

    Returns
    -------
    ndarray of shape (n_components,)

    Notes
    -----
    The Lagrangian :math:`\sum_i\sum_k \gamma_{ik}\log p_k + \lambda(\sum_k p_k - 1)`
    is stationary where :math:`N_k / p_k + \lambda = 0`; summing over k gives
    :math:`\lambda = -N`, hence

    .. math::  p_k = \frac{N_k}{N}, \qquad N_k = \sum_{i=1}^N \gamma_{ik}.
    """
    resp = _check_resp(resp)
    w = None if sample_weight is None else check_sample_weight(sample_weight, resp.shape[0])
    return _update_weights(_weighted(resp, w))


def update_means(X, resp, sample_weight=None) -> np.ndarray:
    r"""Component means where the gradient of Q vanishes (:eq:`eq-means-update`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    resp : array_like of shape (n_samples, n_components)
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each sample; every :math:`\gamma_{ik}` becomes
        :math:`w_i\gamma_{ik}` (:eq:`eq-weighted-m-step`).

    Returns
    -------
    ndarray of shape (n_components, n_features)

    Notes
    -----
    :math:`\partial Q / \partial \mu_k = \sum_i \gamma_{ik}\Sigma_k^{-1}(x_i - \mu_k) = 0`;
    multiplying on the left by :math:`\Sigma_k` (once, not by :math:`\Sigma_k^2`):

    .. math::  \mu_k = \frac{\sum_i \gamma_{ik} x_i}{\sum_i \gamma_{ik}}.
    """
    X = check_data(X)
    resp = _check_resp(resp, X.shape[0])
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    return _update_means(X, _weighted(resp, w))


def update_covariances(
    X,
    resp,
    means,
    covariance_type: str = "full",
    reg_covar: float = 0.0,
    sample_weight=None,
) -> np.ndarray:
    r"""Covariances where the gradient of Q vanishes (:eq:`eq-covariances-update`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    resp : array_like of shape (n_samples, n_components)
    means : array_like of shape (n_components, n_features)
        The *updated* means from :func:`update_means` (the exact M-step; using the
        old means gives a different, non-maximising matrix).
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float, default 0
        Added to the diagonal of every covariance (:eq:`eq-covariances-regularised`).
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each sample; every :math:`\gamma_{ik}` becomes
        :math:`w_i\gamma_{ik}` (:eq:`eq-weighted-m-step`).

    Returns
    -------
    ndarray
        full (K, d, d), tied (d, d), diag (K, d) or spherical (K,).

    Notes
    -----
    With :math:`\partial\log|\Sigma|/\partial\Sigma = \Sigma^{-1}` and
    :math:`\partial\,\mathrm{tr}(\Sigma^{-1}A)/\partial\Sigma = -\Sigma^{-1}A\Sigma^{-1}`
    (symmetric Σ and A), setting the gradient to zero and multiplying by
    :math:`\Sigma_k` on both sides gives

    .. math::

        \Sigma_k = \frac{\sum_i \gamma_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top}{\sum_i\gamma_{ik}}.

    *tied* shares one matrix, the pooled :math:`\sum_k\sum_i\gamma_{ik}(\cdot)(\cdot)^\top / N`;
    *diag* keeps the diagonal of the full update; *spherical* the mean of that
    diagonal, :math:`\sigma_k^2 I`. Each is the maximiser of Q within its family
    (:eq:`eq-covariance-types`).
    """
    check_covariance_type(covariance_type)
    X = check_data(X)
    resp = _check_resp(resp, X.shape[0])
    means = check_means(means, resp.shape[1], X.shape[1])
    reg_covar = check_nonnegative(reg_covar, "reg_covar")
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    return _update_covariances(X, _weighted(resp, w), means, covariance_type, reg_covar)


def _m_step(X, resp, covariance_type, reg_covar):
    """Core M-step on (already weighted) responsibilities."""
    weights = _update_weights(resp)
    means = _update_means(X, resp)
    return weights, means, _update_covariances(X, resp, means, covariance_type, reg_covar)


def m_step(X, resp, covariance_type: str = "full", reg_covar: float = 0.0, sample_weight=None):
    r"""The whole M-step: (weights, means, covariances) from the responsibilities.

    :func:`update_weights`, :func:`update_means`, then :func:`update_covariances`
    with the new means. With ``sample_weight`` every :math:`\gamma_{ik}` is
    replaced by :math:`w_i\gamma_{ik}` (:eq:`eq-weighted-m-step`).
    """
    check_covariance_type(covariance_type)
    X = check_data(X)
    resp = _check_resp(resp, X.shape[0])
    reg_covar = check_nonnegative(reg_covar, "reg_covar")
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    return _m_step(X, _weighted(resp, w), covariance_type, reg_covar)
