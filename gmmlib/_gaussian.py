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

References
----------
The book, chapter 1, "The generative model" (chapters/01_generative_model.ipynb).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import lapack

from ._validation import (
    check_covariance_layout,
    check_covariance_type,
    check_covariances,
    check_data,
    check_mean,
    check_means,
    check_positive_variances,
    not_positive_definite,
)

LOG_2PI = np.log(2.0 * np.pi)


class CovarianceCholesky(NamedTuple):
    """The covariances' Cholesky factors Σ_k = L_k L_kᵀ, held as L_kᵀ.

    ``upper`` is (K, d, d), or (d, d) for tied covariances: C-ordered upper triangles,
    so that each L_k is a Fortran-ordered view that BLAS and LAPACK read without a
    copy. What a pass that solves with L_k (``gmmlib._wide``) takes in place of the
    precisions' factors U_k = L_k⁻ᵀ: the estimator then inverts the triangles once
    per fit (:func:`_precision_from_cholesky`), not at every iteration.
    """

    upper: np.ndarray


def _covariance_cholesky(covariances, covariance_type) -> CovarianceCholesky:
    """L_kᵀ of each full or tied covariance (LAPACK potrf); no argument checking.

    When a factorisation fails, this raises the ValueError of
    ``gmmlib._validation.not_positive_definite``, which names the component.
    """
    stack = covariances[None] if covariance_type == "tied" else covariances
    upper = np.empty_like(stack)
    for k, cov in enumerate(stack):
        # SciPy's LAPACK: NumPy's cholesky is another OpenBLAS, whose idle threads then
        # compete with SciPy's for the cores. cov.T: the same symmetric matrix, and for
        # a C-ordered cov the Fortran-ordered array LAPACK reads, so no transposed copy
        # is made (half of potrf's time at d = 1000).
        chol, info = lapack.dpotrf(cov.T, lower=1, clean=1)
        if info != 0 or not np.all(np.isfinite(np.diagonal(chol))):
            raise not_positive_definite(k, covariance_type)
        upper[k] = chol.T  # a Fortran-ordered L: its transpose is a C-ordered copy
    return CovarianceCholesky(upper[0] if covariance_type == "tied" else upper)


def _precision_from_cholesky(factors: CovarianceCholesky) -> np.ndarray:
    """U_k = L_k⁻ᵀ from the covariances' factors (LAPACK trtri); no argument checking.

    scipy.linalg.solve_triangular(L, I) gives the same U but goes through a threaded
    solver that costs milliseconds even for a 2x2 matrix when the cores are busy.
    """
    upper = factors.upper
    stack = upper[None] if upper.ndim == 2 else upper
    out = np.empty_like(stack)
    for k, u in enumerate(stack):
        inv_chol, _ = lapack.dtrtri(u.T, lower=1)
        out[k] = inv_chol.T
    return out[0] if upper.ndim == 2 else out


def _precision_cholesky(covariances, covariance_type):
    """Core of :func:`gmmlib.precision_cholesky`; no argument checking.

    ``covariances`` is a float64 array in the layout of ``covariance_type``, with
    positive diagonal or spherical variances. Whether a full or tied matrix is
    positive definite only its factorisation can tell: when that fails, this
    raises the ValueError of ``gmmlib._validation.not_positive_definite``, which
    names the component.
    """
    if covariance_type in ("full", "tied"):
        return _precision_from_cholesky(_covariance_cholesky(covariances, covariance_type))
    return 1.0 / np.sqrt(covariances)


def precision_cholesky(covariances, covariance_type: str = "full") -> np.ndarray:
    r"""Cholesky factor of each precision matrix, from the covariances.

    Parameters
    ----------
    covariances : array_like
        Shaped per ``covariance_type`` as in scikit-learn: full (K, d, d),
        tied (d, d), diag (K, d), spherical (K,).
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

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

    Examples
    --------
    >>> import numpy as np
    >>> import gmmlib
    >>> covariances = np.array([[[4.0, 2.0], [2.0, 3.0]]])
    >>> U = gmmlib.precision_cholesky(covariances)
    >>> print(np.round(U[0], 4))
    [[ 0.5    -0.3536]
     [ 0.      0.7071]]
    >>> bool(np.allclose(U[0] @ U[0].T, np.linalg.inv(covariances[0])))
    True

    A covariance that is not positive definite is named, with what to do:

    >>> gmmlib.precision_cholesky(np.array([np.eye(2), np.zeros((2, 2))]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: Component 1 has a covariance matrix that is not positive definite. ...
    """
    covariances = check_covariance_layout(covariances, covariance_type)
    if covariance_type in ("diag", "spherical"):
        check_positive_variances(covariances)
    return _precision_cholesky(covariances, covariance_type)


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
    """Core of :func:`gmmlib.log_component_densities`; no argument checking."""
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


def _log_resp_beyond_overflow(X, weights, means, prec_chol, covariance_type) -> np.ndarray:
    """Log-responsibilities (n, K) of rows that no component can explain; no argument checking.

    Far enough from every component (a whitened distance beyond about 1e154) every
    squared distance overflows, every log-density is -inf and Bayes' rule gives
    -inf - (-inf) = NaN. The limit as the distances grow is that the component at
    the smallest whitened distance takes all the responsibility (exact ties share
    it; a component of weight 0 takes none). The distances are compared through
    their logs, computed without overflow: rows and means scaled by one power of
    two, each norm as its largest entry times the norm of the ratios.
    """
    X = np.asarray(X, dtype=np.float64)
    n_features = X.shape[1]
    size = max(float(np.max(np.abs(X), initial=0.0)), float(np.max(np.abs(means), initial=0.0)))
    exponent = -int(np.frexp(size)[1]) if size > 0 else 0
    X, means = np.ldexp(X, exponent), np.ldexp(np.asarray(means, dtype=np.float64), exponent)
    log_dist = np.empty((X.shape[0], means.shape[0]))
    for k in range(means.shape[0]):
        if covariance_type in ("full", "tied"):
            u = prec_chol[k] if covariance_type == "full" else prec_chol
            y = (X - means[k]) @ u
        else:
            y = (X - means[k]) * (prec_chol[k] * np.ones(n_features))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            largest = np.max(np.abs(y), axis=1)
            log_dist[:, k] = np.log(largest) + 0.5 * np.log(
                np.sum((y / largest[:, None]) ** 2, axis=1)
            )
    log_dist = np.nan_to_num(log_dist, nan=np.inf)
    log_dist[:, np.asarray(weights) == 0] = np.inf
    nearest = log_dist == log_dist.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(nearest / nearest.sum(axis=1, keepdims=True))


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
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Entry (i, k) is :math:`\log\phi(x_i \mid \mu_k, \Sigma_k)`.

    Notes
    -----
    .. math::

        \log \phi(x_i \mid \mu_k, \Sigma_k) = -\tfrac{d}{2}\log 2\pi
            + \log|U_k| - \tfrac12 \lVert (x_i - \mu_k)^\top U_k \rVert^2,
        \qquad U_k U_k^\top = \Sigma_k^{-1}.

    Examples
    --------
    Two points under two round components (diagonal variances 1 and 4):

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0]])
    >>> means = np.array([[0.0, 0.0], [2.0, 0.0]])
    >>> variances = np.array([[1.0, 1.0], [4.0, 4.0]])
    >>> print(np.round(gmmlib.log_component_densities(X, means, variances, "diag"), 4))
    [[-1.8379 -3.7242]
     [-3.8379 -3.2242]]
    """
    check_covariance_type(covariance_type)
    X = check_data(X)
    means = check_means(means, n_features=X.shape[1])
    covariances = check_covariances(covariances, covariance_type, means.shape[0], X.shape[1])
    prec_chol = _precision_cholesky(covariances, covariance_type)
    return _log_component_densities(X, means, prec_chol, covariance_type)


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

    Examples
    --------
    Forty standard deviations from the mean the density itself is
    exp(-800) / 2π, below the smallest float: the textbook formula underflows
    to 0 and its log is ``-inf``. The log-density is computed without ever
    forming the density:

    >>> import numpy as np
    >>> import gmmlib
    >>> X = np.array([[0.0, 0.0], [40.0, 0.0]])
    >>> mean, covariance = np.zeros(2), np.eye(2)
    >>> print(np.round(gmmlib.log_gaussian_density(X, mean, covariance), 4))
    [  -1.8379 -801.8379]
    >>> diff = X - mean
    >>> maha = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(covariance), diff)
    >>> naive = np.exp(-0.5 * maha) / np.sqrt((2 * np.pi) ** 2 * np.linalg.det(covariance))
    >>> with np.errstate(divide="ignore"):
    ...     print(np.round(np.log(naive), 4))
    [-1.8379    -inf]
    """
    X = check_data(X)
    mean = check_mean(mean, X.shape[1])
    covariance = check_covariances(np.asarray(covariance)[None], "full", 1, X.shape[1])
    prec_chol = _precision_cholesky(covariance, "full")
    return _log_component_densities(X, mean[None], prec_chol, "full")[:, 0]


def gaussian_density(X, mean, covariance) -> np.ndarray:
    r"""The d-variate normal density φ(x | μ, Σ) (:eq:`eq-normal-density`).

    ``exp`` of :func:`gmmlib.log_gaussian_density`; prefer the log form for
    anything but plotting, since φ underflows to 0 far from the mean or in high
    dimension.

    Parameters
    ----------
    X, mean, covariance
        As in :func:`gmmlib.log_gaussian_density`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    At the mean of the standard normal in two dimensions the density is 1/2π:

    >>> import numpy as np
    >>> import gmmlib
    >>> print(np.round(gmmlib.gaussian_density([[0.0, 0.0]], [0.0, 0.0], np.eye(2)), 4))
    [0.1592]
    >>> print(f"{1 / (2 * np.pi):.4f}")
    0.1592
    """
    return np.exp(log_gaussian_density(X, mean, covariance))
