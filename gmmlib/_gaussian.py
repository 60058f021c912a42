r"""The d-variate normal density, computed in log space through Cholesky factors.

Equation :eq:`eq-normal-density` of chapter 1:

.. math::

    \phi(x \mid \mu, \Sigma) = (2\pi)^{-d/2} |\Sigma|^{-1/2}
        \exp\!\left(-\tfrac12 (x-\mu)^\top \Sigma^{-1} (x-\mu)\right).

With the Cholesky factorisation :math:`\Sigma = L L^\top` the quadratic form is
:math:`\lVert L^{-1}(x-\mu) \rVert^2` (a triangular solve) and
:math:`\log|\Sigma| = 2 \sum_j \log L_{jj}`; neither :math:`\Sigma^{-1}` nor
:math:`|\Sigma|` is ever formed, so a nearly singular covariance loses no accuracy
to an explicit inverse and its determinant cannot underflow to zero.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from ._validation import check_covariance_type, check_covariances, check_data, check_means

LOG_2PI = np.log(2.0 * np.pi)

_COLLAPSE_HINT = (
    "This happens when a component collapses onto a single point or a lower-dimensional "
    "set (too few samples in it, or duplicated samples). Increase reg_covar (e.g. 1e-6 "
    "or more, relative to the scale of the data), use fewer components, or standardise "
    "the data."
)

#: A variance at or below (this × |mean|)² is rounding noise, not spread: the
#: component sits on a single value of that feature (its likelihood → +∞).
_COLLAPSE_RTOL = 1e-13
#: A correlation matrix whose smallest eigenvalue is at or below this is singular
#: up to rounding: the component lies on a line or plane (likelihood → +∞).
_COLLAPSE_CORR_EIG = 1e-12


def _check_not_collapsed(means, covariances, covariance_type: str = "full") -> None:
    r"""Raise if a fitted component has collapsed onto a point, a line or a plane.

    When a component's samples all share one value of a feature, its variance in
    that feature should be 0; in floating point it comes out as rounding noise of
    order :math:`(\varepsilon |\mu|)^2` (e.g. 1e-31), a positive-definite matrix
    whose likelihood is meaninglessly large. A variance
    :math:`\sigma^2_{kj} \le (10^{-13}\,|\mu_{kj}|)^2` is treated as that collapse,
    and so (full and tied) is a correlation matrix whose smallest eigenvalue is
    at most :math:`10^{-12}`: the samples lie on a line or plane.

    Raises
    ------
    ValueError
        Naming the component(s) and suggesting ``reg_covar``.
    """
    mag = np.abs(np.asarray(means, dtype=np.float64))
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        var = np.diagonal(cov, axis1=1, axis2=2)
    elif covariance_type == "tied":
        var, mag = np.diag(cov)[None], mag.max(axis=0, keepdims=True)
    elif covariance_type == "diag":
        var = cov
    else:
        var, mag = cov[:, None], mag.max(axis=1, keepdims=True)
    bad = np.any(var <= (_COLLAPSE_RTOL * mag) ** 2, axis=1)
    if covariance_type in ("full", "tied"):
        # A component squeezed onto a line or plane has normal-sized variances but a
        # correlation matrix that is singular up to rounding; the scale-free test
        # is its smallest eigenvalue.
        stack = cov[None] if covariance_type == "tied" else cov
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.sqrt(np.diagonal(stack, axis1=1, axis2=2))
            corr = stack * scale[:, :, None] * scale[:, None, :]
        flat = ~np.all(np.isfinite(corr), axis=(1, 2))
        flat[~flat] = np.linalg.eigvalsh(corr[~flat])[:, 0] <= _COLLAPSE_CORR_EIG
        bad |= flat
    bad = np.flatnonzero(bad)
    if bad.size:
        if covariance_type == "tied":
            who = "The tied covariance has"
        else:
            who = f"Component(s) {bad.tolist()} have"
        raise ValueError(
            f"{who} collapsed: its covariance is singular up to rounding (a zero variance, "
            "or all its samples on a line or plane), so the likelihood → +inf. " + _COLLAPSE_HINT
        )


def precision_cholesky(covariances, covariance_type: str = "full") -> np.ndarray:
    r"""Cholesky factor of each precision matrix, from the covariances.

    Parameters
    ----------
    covariances : ndarray
        Shaped per ``covariance_type`` as in scikit-learn: full (K, d, d),
        tied (d, d), diag (K, d), spherical (K,).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        Same shape as ``covariances``. For full and tied, the upper-triangular
        :math:`U = L^{-\top}` with :math:`\Sigma = L L^\top`, so that
        :math:`U U^\top = \Sigma^{-1}`; for diag and spherical,
        :math:`1/\sqrt{\sigma^2}`.

    Raises
    ------
    ValueError
        If a covariance is not positive definite; the message names the component
        and suggests ``reg_covar``.

    Notes
    -----
    :math:`U` is the transposed inverse of the triangular factor,
    :math:`U^\top = L^{-1}` (LAPACK ``trtri``); only the triangular factor is
    inverted, never :math:`\Sigma`.
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stack = covariances[None] if covariance_type == "tied" else covariances
        out = np.empty_like(stack)
        for k, cov in enumerate(stack):
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                who = "The tied covariance" if covariance_type == "tied" else f"Component {k}"
                raise ValueError(
                    f"{who} has a covariance matrix that is not positive definite. "
                    + _COLLAPSE_HINT
                ) from None
            # LAPACK's triangular inverse (trtri). scipy.linalg.solve_triangular(chol, I)
            # gives the same U but goes through a threaded solver that costs milliseconds
            # even for a 2x2 matrix when the cores are busy.
            inv_chol, _ = lapack.dtrtri(chol, lower=1)
            out[k] = inv_chol.T
        return out[0] if covariance_type == "tied" else out
    if np.any(covariances <= 0) or not np.all(np.isfinite(covariances)):
        bad = np.flatnonzero(np.any(~(covariances.reshape(covariances.shape[0], -1) > 0), axis=1))
        raise ValueError(
            f"Component(s) {bad.tolist()} have a zero or negative variance. " + _COLLAPSE_HINT
        )
    return 1.0 / np.sqrt(covariances)


def _log_det_precision_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int):
    """log|U| per component, that is -(1/2) log|Σ_k|."""
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(prec_chol)).sum()
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


def _log_component_densities(X, means, prec_chol, covariance_type):
    """Core of :func:`log_component_densities`; no validation."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_det = _log_det_precision_cholesky(prec_chol, covariance_type, n_features)
    maha = np.empty((n_samples, n_components))
    for k in range(n_components):
        if covariance_type in ("full", "tied"):
            u = prec_chol[k] if covariance_type == "full" else prec_chol
            # (x - μ) U computed as xU - μU: one matrix product, no (x - μ) copy.
            y = X @ u
            y -= means[k] @ u
            maha[:, k] = np.einsum("ij,ij->i", y, y)
        else:
            scale = prec_chol[k]
            y = (X - means[k]) * scale
            maha[:, k] = np.einsum("ij,ij->i", y, y)
    return -0.5 * (n_features * LOG_2PI + maha) + log_det


def log_component_densities(X, means, covariances, covariance_type: str = "full"):
    r"""Log-density of every sample under every component, log φ(x_i | μ_k, Σ_k).

    Implements :eq:`eq-normal-density` for all components at once.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    means : array_like of shape (n_components, n_features)
    covariances : array_like
        Shaped per ``covariance_type`` (full (K, d, d), tied (d, d), diag (K, d),
        spherical (K,)).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray of shape (n_samples, n_components)

    Notes
    -----
    .. math::

        \log \phi(x_i \mid \mu_k, \Sigma_k) = -\tfrac{d}{2}\log 2\pi
            + \log|U_k| - \tfrac12 \lVert (x_i - \mu_k)^\top U_k \rVert^2,
        \qquad U_k U_k^\top = \Sigma_k^{-1}.
    """
    check_covariance_type(covariance_type)
    X = check_data(X)
    means = check_means(means, n_features=X.shape[1])
    covariances = check_covariances(covariances, covariance_type, means.shape[0], X.shape[1])
    return _log_component_densities(
        X, means, precision_cholesky(covariances, covariance_type), covariance_type
    )


def log_gaussian_density(X, mean, covariance) -> np.ndarray:
    r"""Log-density of the d-variate normal, log φ(x | μ, Σ), for many points.

    Implements :eq:`eq-normal-density`.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    mean : array_like of shape (n_features,)
    covariance : array_like of shape (n_features, n_features)
        Symmetric positive definite.

    Returns
    -------
    ndarray of shape (n_samples,)

    Notes
    -----
    .. math::

        \log\phi(x \mid \mu, \Sigma) = -\tfrac{d}{2}\log 2\pi - \sum_j \log L_{jj}
            - \tfrac12 \lVert L^{-1}(x-\mu) \rVert^2, \qquad \Sigma = L L^\top.
    """
    X = check_data(X)
    mean = np.asarray(mean, dtype=np.float64)
    if mean.shape != (X.shape[1],):
        raise ValueError(f"mean must have shape ({X.shape[1]},) to match X; got {mean.shape}.")
    covariance = np.asarray(covariance, dtype=np.float64)
    return log_component_densities(X, mean[None], covariance[None], "full")[:, 0]


def gaussian_density(X, mean, covariance) -> np.ndarray:
    """The d-variate normal density φ(x | μ, Σ) (:eq:`eq-normal-density`).

    ``exp`` of :func:`log_gaussian_density`; prefer the log form for anything but
    plotting, since φ underflows to 0 far from the mean or in high dimension.
    """
    return np.exp(log_gaussian_density(X, mean, covariance))
