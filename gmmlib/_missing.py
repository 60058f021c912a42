r"""EM with missing values: the missing coordinates are one more hidden variable (part three).

NaN marks a missing entry. A row x splits into its observed coordinates o and its
missing ones m; under a Gaussian component the observed part is Gaussian with the
sub-vector of the mean and the sub-block of the covariance (:eq:`eq-observed-marginal`),

.. math::

    x_o \sim \mathcal N(\mu_o, \Sigma_{oo}),

and, given it, the missing part is Gaussian too (:eq:`eq-conditional-gaussian`):

.. math::

    x_m \mid x_o \sim \mathcal N\bigl(\mu_m + \Sigma_{mo}\Sigma_{oo}^{-1}(x_o - \mu_o),\;
        \Sigma_{mm} - \Sigma_{mo}\Sigma_{oo}^{-1}\Sigma_{om}\bigr).

The E-step takes the responsibilities from the observed coordinates only
(:eq:`eq-observed-responsibility`) and, per component, the conditional mean
:math:`\hat x_{ik}` and covariance :math:`C_{ik}` of the missing coordinates; the
M-step is the complete-data one on the expected statistics
(:eq:`eq-expected-statistics`, :eq:`eq-missing-m-step`). What EM increases is the
observed-data log-likelihood (:eq:`eq-observed-log-likelihood`).

The functions here compute these formulas directly, pattern of missing entries by
pattern (the rows that miss the same coordinates share :math:`\Sigma_{oo}` and its
Cholesky factor); :class:`gmmlib.GaussianMixture` (``missing="em"``) iterates them
on a faster path, ``gmmlib._missing_engine``, tested equal to these to 1e-10.

References
----------
The book, part three, "Extending the derivation": chapters/missing/01_model.ipynb,
chapters/missing/02_e_step.ipynb and chapters/missing/03_m_step.ipynb.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from ._blocks import blas_single_thread
from ._gaussian import LOG_2PI, _log_resp_beyond_overflow
from ._m_step import params_from_sums
from ._validation import (
    check_covariance_type,
    check_covariances,
    check_mean,
    check_means,
    check_missing_data,
    check_nonnegative,
    check_optional_sample_weight,
    check_parameters,
    check_resp,
    check_same_components,
)

#: Rows of a pattern handled at once by the direct computations (bounds their memory:
#: K x rows x d conditional means).
_ROWS = 4096


class ConditionalMoments(NamedTuple):
    """The conditional moments of every row's missing coordinates under one Gaussian.

    What :func:`gmmlib.conditional_moments` returns.

    Attributes
    ----------
    expected_X : ndarray of shape (n_samples, n_features)
        x̂: the observed entries as they are, the missing ones replaced by their
        conditional mean.
    conditional_covariances : ndarray of shape (n_samples, n_features, n_features)
        C: the conditional covariance in the block of the missing coordinates,
        zeros elsewhere.
    """

    expected_X: np.ndarray
    conditional_covariances: np.ndarray


class ExpectedStatistics(NamedTuple):
    """The expected sufficient statistics of the M-step, per component.

    What :func:`gmmlib.expected_statistics` returns.

    Attributes
    ----------
    Nk : ndarray of shape (n_components,)
        Σ_i w_i γ_ik.
    sum_x : ndarray of shape (n_components, n_features)
        Σ_i w_i γ_ik x̂_ik.
    sum_xx : ndarray of shape (n_components, n_features, n_features)
        Σ_i w_i γ_ik (x̂_ik x̂_ikᵀ + C_ik).
    """

    Nk: np.ndarray
    sum_x: np.ndarray
    sum_xx: np.ndarray


# -- patterns of missing entries --------------------------------------------------------
class Patterns(NamedTuple):
    """The rows grouped by their pattern of missing entries."""

    order: np.ndarray  # (N,): row indices, grouped by pattern
    bounds: np.ndarray  # (P + 1,): pattern p holds rows order[bounds[p]:bounds[p + 1]]
    observed: np.ndarray  # (P, d) bool: the coordinates each pattern observes

    @property
    def n_patterns(self) -> int:
        return self.observed.shape[0]

    def rows(self, p: int) -> np.ndarray:
        return self.order[self.bounds[p] : self.bounds[p + 1]]


def missingness_patterns(missing) -> Patterns:
    """The distinct rows of the mask ``missing`` (N, d) and the rows that have each.

    No argument checking. Patterns are in the lexicographic order of their packed bits,
    so the complete rows (nothing missing), if any, are pattern 0; within a pattern the
    rows keep their order.
    """
    missing = np.asarray(missing, dtype=bool)
    n_samples, n_features = missing.shape
    packed = np.packbits(missing, axis=1)
    unique, inverse = np.unique(packed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.zeros(unique.shape[0] + 1, dtype=np.intp)
    np.cumsum(np.bincount(inverse, minlength=unique.shape[0]), out=bounds[1:])
    observed = ~np.unpackbits(unique, axis=1, count=n_features).astype(bool)
    return Patterns(order, bounds, observed)


def full_covariances(covariances, covariance_type, n_components, n_features):
    """The covariances of any type as a (K, d, d) stack of full matrices (no checking)."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    full = np.zeros((n_components, n_features, n_features))
    diagonal = np.arange(n_features)
    full[:, diagonal, diagonal] = covariances if covariance_type == "diag" else covariances[:, None]
    return full


def filled_with_column_means(X, missing, sample_weight=None) -> np.ndarray:
    """A copy of ``X`` with each missing entry replaced by its column's mean over the rows
    that observe it, weighted by ``sample_weight`` (no argument checking).

    The start of a fit with missing values (``init_params`` runs on it). A column
    observed only in rows of weight 0 gets the unweighted mean of those rows.
    """
    filled = np.where(missing, 0.0, X)
    observed = ~missing
    plain = filled.sum(axis=0) / observed.sum(axis=0)
    if sample_weight is None:
        means = plain
    else:
        mass = sample_weight @ observed
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(mass > 0, (sample_weight @ filled) / mass, plain)
    rows, columns = np.nonzero(missing)
    filled[rows, columns] = means[columns]
    return filled


# -- the direct computations, one pattern at a time (no argument checking) ---------------
class _Blocks(NamedTuple):
    """One pattern's blocks of every component's covariance."""

    o: np.ndarray  # observed coordinates (indices)
    m: np.ndarray  # missing coordinates (indices)
    chol: np.ndarray  # (K, |o|, |o|): lower Cholesky factors of Σ_oo
    regression: np.ndarray  # (K, |m|, |o|): Σ_mo Σ_oo⁻¹
    conditional: np.ndarray  # (K, |m|, |m|): Σ_mm - Σ_mo Σ_oo⁻¹ Σ_om


def _one_blas_thread(core):
    """Run ``core`` with BLAS on one thread: its products and solves are per pattern and
    small, where BLAS threads only add synchronisation (and, on a busy machine, wait for
    a free core at every call)."""

    @functools.wraps(core)
    def wrapped(*args, **kwargs):
        with blas_single_thread():
            return core(*args, **kwargs)

    return wrapped


def _blocks(covariances, observed) -> _Blocks:
    """The sub-blocks of (K, d, d) covariances for the coordinates ``observed`` (d,) bool.

    Σ_oo is factored once per component; the regression Σ_mo Σ_oo⁻¹ comes from two
    triangular solves with that factor, never from an inverse.
    """
    o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
    K = covariances.shape[0]
    s_oo = covariances[:, o[:, None], o[None, :]]
    s_mo = covariances[:, m[:, None], o[None, :]]
    s_mm = covariances[:, m[:, None], m[None, :]]
    chol = np.linalg.cholesky(s_oo) if o.size else np.zeros((K, 0, 0))
    regression = np.empty((K, m.size, o.size))
    for k in range(K):
        if o.size and m.size:
            # Σ_mo Σ_oo⁻¹ = (L⁻ᵀ L⁻¹ Σ_om)ᵀ with Σ_oo = L Lᵀ
            half = solve_triangular(chol[k], s_mo[k].T, lower=True)
            regression[k] = solve_triangular(chol[k], half, lower=True, trans="T").T
        else:
            regression[k] = 0.0
    conditional = s_mm - regression @ s_mo.transpose(0, 2, 1)
    conditional = 0.5 * (conditional + conditional.transpose(0, 2, 1))
    return _Blocks(o, m, chol, regression, conditional)


def _pattern_log_densities(x_o, means_o, chol):
    """log φ(x_o | μ_k,o, Σ_k,oo), shape (n, K), for rows that observe the same coordinates."""
    n, n_obs = x_o.shape
    K = means_o.shape[0]
    if n_obs == 0:
        return np.zeros((n, K))  # nothing observed: the density of nothing is 1
    out = np.empty((n, K))
    for k in range(K):
        y = solve_triangular(chol[k], (x_o - means_o[k]).T, lower=True, check_finite=False)
        log_det = 2.0 * np.log(np.diagonal(chol[k])).sum()
        out[:, k] = -0.5 * (n_obs * LOG_2PI + log_det + np.einsum("ij,ij->j", y, y))
    return out


def _pattern_log_resp(x_o, weights, means_o, chol, log_joint):
    """log γ of a pattern's rows from their log joint (n, K), as ``gmmlib._e_step._e_step``:
    a row that no component explains (every density underflows) goes to its nearest."""
    log_norm = logsumexp(log_joint, axis=1)
    lost = np.isneginf(log_norm)
    log_resp = log_joint - np.where(lost, 0.0, log_norm)[:, None]
    if np.any(lost):
        eye = np.eye(chol.shape[1])
        prec_chol = np.stack([solve_triangular(c, eye, lower=True).T for c in chol])
        log_resp[lost] = _log_resp_beyond_overflow(x_o[lost], weights, means_o, prec_chol, "full")
    return log_resp, log_norm


def _chunks(patterns: Patterns):
    """(pattern, rows) pairs, a large pattern split into chunks of ``_ROWS`` rows."""
    for p in range(patterns.n_patterns):
        rows = patterns.rows(p)
        for start in range(0, rows.size, _ROWS):
            yield p, rows[start : start + _ROWS]


@_one_blas_thread
def _observed_e_step(X, weights, means, covariances, patterns):
    """(log γ (N, K), log P(x_i,o | θ) (N,)) from the observed coordinates of every row.

    ``covariances`` is the (K, d, d) stack of full matrices.
    """
    N, K = X.shape[0], means.shape[0]
    log_resp, log_norm = np.empty((N, K)), np.empty(N)
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        log_weights = np.log(weights)
    blocks = {}
    for p, rows in _chunks(patterns):
        if p not in blocks:
            blocks = {p: _blocks(covariances, patterns.observed[p])}
        b = blocks[p]
        x_o = X[rows][:, b.o]
        log_joint = _pattern_log_densities(x_o, means[:, b.o], b.chol) + log_weights
        log_resp[rows], log_norm[rows] = _pattern_log_resp(
            x_o, weights, means[:, b.o], b.chol, log_joint
        )
        if not b.o.size:
            log_norm[rows] = 0.0  # nothing observed: probability 1, whatever θ (not Σ p_k)
    return log_resp, log_norm


def _conditional_means(x, means, b: _Blocks):
    """x̂_ik of a pattern's rows ``x`` (n, d), shape (K, n, d): observed entries kept."""
    K, n = means.shape[0], x.shape[0]
    xhat = np.empty((K, n, x.shape[1]))
    xhat[:, :, b.o] = x[:, b.o]
    if b.m.size:
        diff = x[None, :, b.o] - means[:, None, b.o]  # (K, n, |o|)
        xhat[:, :, b.m] = means[:, None, b.m] + diff @ b.regression.transpose(0, 2, 1)
    return xhat


@_one_blas_thread
def _expected_sums(X, resp, means, covariances, patterns, centres):
    """(N_k, Σ_i γ_ik y_ik, Σ_i γ_ik (y_ik y_ikᵀ + C_ik)) with y_ik = x̂_ik - c_k.

    ``resp`` is already weighted (w_i γ_ik); x̂ and C come from ``means`` and the
    (K, d, d) ``covariances``; ``centres`` (K, d) are the points the sums are taken
    about (zeros: the raw moments; the current means: what the M-step needs, with
    no digits lost to data far from the origin).
    """
    K, d = means.shape
    counts, sum_y, sum_yy = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))
    blocks = {}
    for p, rows in _chunks(patterns):
        if p not in blocks:
            blocks = {p: _blocks(covariances, patterns.observed[p])}
        b = blocks[p]
        g = resp[rows].T  # (K, n)
        y = _conditional_means(X[rows], means, b) - centres[:, None, :]
        mass = g.sum(axis=1)
        counts += mass
        sum_y += np.einsum("kn,knd->kd", g, y)
        sum_yy += (y * g[:, :, None]).transpose(0, 2, 1) @ y
        if b.m.size:
            # the conditional covariance: what "impute, then fit" forgets
            sum_yy[:, b.m[:, None], b.m[None, :]] += mass[:, None, None] * b.conditional
    return counts, sum_y, sum_yy


@_one_blas_thread
def _impute(X, weights, means, covariances, patterns):
    """Σ_k γ_ik x̂_ik for every row (N, d), γ from the observed coordinates."""
    out = np.empty_like(X)
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    blocks = {}
    for p, rows in _chunks(patterns):
        if p not in blocks:
            blocks = {p: _blocks(covariances, patterns.observed[p])}
        b = blocks[p]
        x = X[rows]
        x_o = x[:, b.o]
        log_joint = _pattern_log_densities(x_o, means[:, b.o], b.chol) + log_weights
        log_resp, _ = _pattern_log_resp(x_o, weights, means[:, b.o], b.chol, log_joint)
        out[rows] = np.einsum("nk,knd->nd", np.exp(log_resp), _conditional_means(x, means, b))
        out[rows[:, None], b.o[None, :]] = x_o  # observed entries exactly as they were
    return out


def _mean_weight(resp):
    """The mean weight of the rows that take part (as ``gmmlib._m_step._counts``)."""
    return float(resp.sum() / max(np.count_nonzero(resp.any(axis=1)), 1))


def _identity_factors(covariance_type, n_components, n_features):
    """Precision factors U = I: ``params_from_sums`` then reads its sums as they are."""
    return {
        "full": np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]


def _params_from_expected_sums(
    counts, sum_y, sum_yy, centres, covariance_type, reg_covar, mean_weight
):
    """The M-step from expected sums about ``centres``: (weights, means, covariances)."""
    K, d = centres.shape
    second = sum_yy if covariance_type in ("full", "tied") else np.diagonal(sum_yy, 0, 1, 2)
    return params_from_sums(
        counts,
        sum_y,
        second,
        centres,
        _identity_factors(covariance_type, K, d),
        covariance_type,
        reg_covar,
        mean_weight,
    )


def _m_step_missing(X, resp, means, covariances, covariance_type, reg_covar, patterns):
    """Core of :func:`gmmlib.m_step_missing` on (already weighted) responsibilities."""
    K, d = means.shape
    full = full_covariances(covariances, covariance_type, K, d)
    counts, sum_y, sum_yy = _expected_sums(X, resp, means, full, patterns, means)
    return _params_from_expected_sums(
        counts, sum_y, sum_yy, means, covariance_type, reg_covar, _mean_weight(resp)
    )


# -- the public functions ----------------------------------------------------------------
def _checked_mixture(X, weights, means, covariances, covariance_type):
    X = check_missing_data(X)
    weights, means, covariances = check_parameters(
        weights, means, covariances, covariance_type, X.shape[1]
    )
    K, d = means.shape
    return X, weights, means, full_covariances(covariances, covariance_type, K, d)


def _checked_gaussian(X, mean, covariance):
    X = check_missing_data(X)
    mean = check_mean(mean, X.shape[1])
    covariance = check_covariances(np.asarray(covariance)[None], "full", 1, X.shape[1])
    return X, mean[None], covariance


def _patterns_of(X) -> Patterns:
    return missingness_patterns(np.isnan(X))


def observed_log_density(X, mean, covariance) -> np.ndarray:
    r"""Log-density of each observed part, log φ(x_o; μ_o, Σ_oo) (:eq:`eq-observed-marginal`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry; infinity is refused.
    mean : array_like of shape (n_features,)
    covariance : array_like of shape (n_features, n_features)
        Symmetric positive definite.

    Returns
    -------
    ndarray of shape (n_samples,)
        The Gaussian marginal of the observed coordinates at each row; 0.0 for a
        row with nothing observed (the density of no observation is 1).

    Notes
    -----
    Integrating the missing coordinates out of :math:`\phi(x \mid \mu, \Sigma)`
    leaves the normal density of the observed ones with the sub-vector
    :math:`\mu_o` and the sub-block :math:`\Sigma_{oo}`:

    .. math::

        \log\phi(x_o \mid \mu_o, \Sigma_{oo}) = -\tfrac{|o|}{2}\log 2\pi
            - \tfrac12\log|\Sigma_{oo}|
            - \tfrac12 (x_o - \mu_o)^\top \Sigma_{oo}^{-1} (x_o - \mu_o).

    :math:`\Sigma_{oo}` gets its own Cholesky factor and log-determinant. A slice of
    the precision matrix :math:`\Sigma^{-1}` would be the precision of the
    *conditional* of :math:`x_o` given :math:`x_m`, not of the marginal. Rows are
    grouped by their pattern of missing entries, so each :math:`\Sigma_{oo}` is
    factored once.

    Examples
    --------
    With the second coordinate missing, the density is the one-dimensional normal
    of the first coordinate, with variance Σ₁₁ = 4:

    >>> import numpy as np
    >>> import gmmlib
    >>> from scipy.stats import norm
    >>> mean, covariance = np.array([1.0, -1.0]), np.array([[4.0, 1.5], [1.5, 1.0]])
    >>> X = np.array([[2.0, np.nan], [2.0, 0.0], [np.nan, np.nan]])
    >>> print(np.round(gmmlib.observed_log_density(X, mean, covariance), 4))
    [-1.7371 -2.6891  0.    ]
    >>> print(round(norm(1.0, 2.0).logpdf(2.0), 4))
    -1.7371

    A slice of the precision matrix holds the variance of x₁ *given* x₂
    (4 - 1.5² = 1.75, not 4) and gives another number:

    >>> precision = np.linalg.inv(covariance)[:1, :1]
    >>> print(round(norm(1.0, 1 / np.sqrt(precision[0, 0])).logpdf(2.0), 4))
    -1.4845
    """
    X, means, covariances = _checked_gaussian(X, mean, covariance)
    _, log_norm = _observed_e_step(X, np.ones(1), means, covariances, _patterns_of(X))
    return log_norm


def observed_log_likelihood(
    X, weights, means, covariances, covariance_type: str = "full", sample_weight=None
) -> float:
    r"""The observed-data log-likelihood of a mixture (:eq:`eq-observed-log-likelihood`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    weights, means, covariances, covariance_type
        The mixture θ, as in :func:`gmmlib.log_mixture_density`.
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each row (1 by default).

    Returns
    -------
    float
        The total (not the average) log-likelihood of the observed entries.

    Notes
    -----
    .. math::

        L_{\mathrm{obs}}(\theta) = \sum_{i=1}^N w_i \log \sum_{k=1}^K
            p_k\,\phi(x_{i,o_i} \mid \mu_{k,o_i}, \Sigma_{k,o_i o_i}),

    each row with its own observed coordinates :math:`o_i`. This is the quantity
    EM with missing values never decreases (with ``reg_covar=0``); with nothing
    missing it is :func:`gmmlib.log_likelihood`.

    Examples
    --------
    Without NaN it is the ordinary log-likelihood:

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means, covariances = gmmlib.article_parameters()
    >>> X, _ = gmmlib.article_samples()
    >>> full = gmmlib.observed_log_likelihood(X, weights, means, covariances)
    >>> print(round(full, 4), round(gmmlib.log_likelihood(X, weights, means, covariances), 4))
    -8663.6635 -8663.6635

    Knocking out the second coordinate of the first 100 rows leaves those rows
    their first coordinate's marginal likelihood, which is larger (one density
    factor fewer):

    >>> X_missing = X.copy()
    >>> X_missing[:100, 1] = np.nan
    >>> part = gmmlib.observed_log_likelihood(X_missing, weights, means, covariances)
    >>> print(round(part, 4))
    -8481.9176
    """
    X, weights, means, covariances = _checked_mixture(
        X, weights, means, covariances, covariance_type
    )
    w = check_optional_sample_weight(sample_weight, X.shape[0])
    _, log_norm = _observed_e_step(X, weights, means, covariances, _patterns_of(X))
    return float(log_norm.sum()) if w is None else float(w @ log_norm)


def observed_responsibilities(
    X, weights, means, covariances, covariance_type: str = "full"
) -> np.ndarray:
    r"""Responsibilities from the observed coordinates only (:eq:`eq-observed-responsibility`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    weights, means, covariances, covariance_type
        The current parameters θ⁽ᵗ⁾, as in :func:`gmmlib.responsibilities`.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        :math:`\gamma_{ik} = P(z_i = k \mid x_{i,o}, \theta)`; every row sums to 1.

    Notes
    -----
    .. math::

        \gamma_{ik} = \frac{p_k\,\phi(x_{i,o} \mid \mu_{k,o}, \Sigma_{k,oo})}
            {\sum_j p_j\,\phi(x_{i,o} \mid \mu_{j,o}, \Sigma_{j,oo})},

    computed in log space as :func:`gmmlib.log_responsibilities`. A row with
    nothing observed gets the weights :math:`p_k`.

    Examples
    --------
    Two components that differ in their second coordinate only: a row that misses
    it cannot tell them apart and gets the prior weights.

    >>> import numpy as np
    >>> import gmmlib
    >>> weights, means = [0.3, 0.7], [[0.0, -2.0], [0.0, 2.0]]
    >>> covariances = np.stack([np.eye(2), np.eye(2)])
    >>> X = np.array([[0.5, np.nan], [0.5, -1.0]])
    >>> print(np.round(gmmlib.observed_responsibilities(X, weights, means, covariances), 4))
    [[0.3   0.7  ]
     [0.959 0.041]]
    """
    X, weights, means, covariances = _checked_mixture(
        X, weights, means, covariances, covariance_type
    )
    log_resp, _ = _observed_e_step(X, weights, means, covariances, _patterns_of(X))
    return np.exp(log_resp)


def conditional_moments(X, mean, covariance) -> ConditionalMoments:
    r"""Conditional moments of each row's missing coordinates (:eq:`eq-conditional-gaussian`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    mean : array_like of shape (n_features,)
    covariance : array_like of shape (n_features, n_features)
        One Gaussian, symmetric positive definite.

    Returns
    -------
    ConditionalMoments
        ``expected_X`` (n_samples, n_features): x̂, the observed entries as they
        are and the missing ones replaced by their conditional mean;
        ``conditional_covariances`` (n_samples, n_features, n_features): C, the
        conditional covariance in the block of the missing coordinates, zeros
        elsewhere (a complete row gets all zeros).

    Notes
    -----
    Writing the joint Gaussian in blocks and completing the square in
    :math:`x_m` (the Schur complement of :math:`\Sigma_{oo}`):

    .. math::

        x_m \mid x_o \sim \mathcal N\bigl(\mu_m + \Sigma_{mo}\Sigma_{oo}^{-1}(x_o - \mu_o),\;
            \Sigma_{mm} - \Sigma_{mo}\Sigma_{oo}^{-1}\Sigma_{om}\bigr).

    Then :math:`E[x \mid x_o] = \hat x` and
    :math:`E[x x^\top \mid x_o] = \hat x \hat x^\top + C`. Σ_oo⁻¹ is never formed:
    two triangular solves with its Cholesky factor, once per pattern of missing
    entries.

    Examples
    --------
    Unit variances and correlation 0.8: knowing x₁ = 1 moves the missing x₂ to
    0.8 and shrinks its variance to 1 - 0.8² = 0.36; with nothing observed the
    conditional moments are the prior ones.

    >>> import numpy as np
    >>> import gmmlib
    >>> mean, covariance = np.zeros(2), np.array([[1.0, 0.8], [0.8, 1.0]])
    >>> X = np.array([[1.0, np.nan], [np.nan, np.nan], [1.0, 2.0]])
    >>> moments = gmmlib.conditional_moments(X, mean, covariance)
    >>> print(np.round(moments.expected_X, 4))
    [[1.  0.8]
     [0.  0. ]
     [1.  2. ]]
    >>> print(np.round(moments.conditional_covariances[0], 4))
    [[0.   0.  ]
     [0.   0.36]]
    """
    X, means, covariances = _checked_gaussian(X, mean, covariance)
    N, d = X.shape
    expected = np.empty_like(X)
    conditional = np.zeros((N, d, d))
    patterns = _patterns_of(X)
    for p in range(patterns.n_patterns):
        rows = patterns.rows(p)
        b = _blocks(covariances, patterns.observed[p])
        expected[rows] = _conditional_means(X[rows], means, b)[0]
        if b.m.size:
            conditional[rows[:, None, None], b.m[None, :, None], b.m[None, None, :]] = (
                b.conditional[0]
            )
    return ConditionalMoments(expected, conditional)


def expected_statistics(
    X, resp, means, covariances, covariance_type: str = "full", sample_weight=None
) -> ExpectedStatistics:
    r"""Expected statistics N_k, Σ wγ x̂ and Σ wγ (x̂ x̂ᵀ + C) (:eq:`eq-expected-statistics`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    resp : array_like of shape (n_samples, n_components)
        Responsibilities :math:`\gamma_{ik}`, from
        :func:`gmmlib.observed_responsibilities` under the current parameters.
    means, covariances, covariance_type
        The current parameters: they give each component's :math:`\hat x_{ik}` and
        :math:`C_{ik}` (:func:`gmmlib.conditional_moments`).
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each row.

    Returns
    -------
    ExpectedStatistics
        ``Nk`` (n_components,), ``sum_x`` (n_components, n_features) and
        ``sum_xx`` (n_components, n_features, n_features).

    Notes
    -----
    The E-step's expectations, over the missing coordinates given the observed
    ones and the label :math:`z_i = k`:

    .. math::

        N_k = \sum_i w_i\gamma_{ik}, \qquad
        \sum_i w_i\gamma_{ik}\,\hat x_{ik}, \qquad
        \sum_i w_i\gamma_{ik}\bigl(\hat x_{ik}\hat x_{ik}^\top + C_{ik}\bigr).

    :math:`\hat x_{ik}` is per component: each component imputes the row
    differently. For "diag" and "spherical" covariances :math:`\Sigma_{mo} = 0`,
    so :math:`\hat x_{ik,m} = \mu_{k,m}` and :math:`C_{ik}` is the diagonal of the
    current variances of the missing coordinates.

    Examples
    --------
    One component, one row missing x₂ (unit variances, correlation 0.5): x̂₂ = 1,
    C₂₂ = 0.75, so the second moment of x₂ is 1² + 0.75:

    >>> import numpy as np
    >>> import gmmlib
    >>> means, covariances = np.zeros((1, 2)), np.array([[[1.0, 0.5], [0.5, 1.0]]])
    >>> X = np.array([[2.0, np.nan]])
    >>> stats = gmmlib.expected_statistics(X, np.ones((1, 1)), means, covariances)
    >>> print(stats.Nk, stats.sum_x[0])
    [1.] [2. 1.]
    >>> print(stats.sum_xx[0])
    [[4.   2.  ]
     [2.   1.75]]
    """
    check_covariance_type(covariance_type)
    X = check_missing_data(X)
    resp = check_resp(resp, X.shape[0])
    means = check_means(means, resp.shape[1], X.shape[1])
    K, d = means.shape
    covariances = check_covariances(covariances, covariance_type, K, d)
    w = check_optional_sample_weight(sample_weight, X.shape[0])
    resp = resp if w is None else resp * w[:, None]
    full = full_covariances(covariances, covariance_type, K, d)
    counts, sum_x, sum_xx = _expected_sums(X, resp, means, full, _patterns_of(X), np.zeros((K, d)))
    return ExpectedStatistics(counts, sum_x, sum_xx)


def q_function_missing(X, resp, weights, means, covariances, old_means, old_covariances) -> float:
    r"""The Q function with both hidden parts, labels and missing coordinates (:eq:`eq-q-missing`).

    Full covariances.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    resp : array_like of shape (n_samples, n_components)
        :math:`\gamma_{ik}` under the old parameters
        (:func:`gmmlib.observed_responsibilities`).
    weights, means, covariances
        The new parameters θ at which Q is evaluated (covariances (K, d, d)).
    old_means, old_covariances
        The old means and covariances θ⁽ᵗ⁾: they give :math:`\hat x_{ik}` and
        :math:`C_{ik}`.

    Returns
    -------
    float
        :math:`Q(\theta, \theta^{(t)})`, a sum over the rows.

    Notes
    -----
    The expectation of the complete-data log-likelihood over the labels and the
    missing coordinates, given the observed ones, under θ⁽ᵗ⁾:

    .. math::

        Q(\theta, \theta^{(t)}) = \sum_i\sum_k \gamma_{ik}\Bigl[\log p_k
            - \tfrac d2\log 2\pi - \tfrac12\log|\Sigma_k|
            - \tfrac12\operatorname{tr}\Bigl(\Sigma_k^{-1}\bigl((\hat x_{ik} - \mu_k)
              (\hat x_{ik} - \mu_k)^\top + C_{ik}\bigr)\Bigr)\Bigr],

    with :math:`\hat x_{ik}` and :math:`C_{ik}` from the *old* parameters. The
    trace term is :math:`E[(x - \mu_k)^\top\Sigma_k^{-1}(x - \mu_k)]` over the
    conditional of the missing coordinates. With nothing missing this is
    :func:`gmmlib.q_function`. A term with :math:`\gamma_{ik} = 0` counts 0.

    Examples
    --------
    With nothing missing, Q is the complete-data one:

    >>> import numpy as np
    >>> import gmmlib
    >>> theta = ([0.5, 0.5], [[0.0, 0.0], [4.0, 4.0]], np.stack([np.eye(2)] * 2))
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 3.0]])
    >>> resp = gmmlib.responsibilities(X, *theta)
    >>> q = gmmlib.q_function_missing(X, resp, *theta, *theta[1:])
    >>> print(round(q, 4), round(gmmlib.q_function(X, resp, *theta), 4))
    -9.0933 -9.0933
    """
    X = check_missing_data(X)
    weights, means, covariances = check_parameters(weights, means, covariances, "full", X.shape[1])
    K, d = means.shape
    old_means = check_means(old_means, n_features=d)
    check_same_components(old_means.shape[0], K)
    old_covariances = check_covariances(old_covariances, "full", K, d)
    resp = check_resp(resp, X.shape[0], K)
    counts, _, scatter = _expected_sums(X, resp, old_means, old_covariances, _patterns_of(X), means)
    chol = np.linalg.cholesky(covariances)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    # tr(Σ_k⁻¹ S_k) = tr(L⁻¹ S_k L⁻ᵀ) with Σ_k = L Lᵀ: two triangular solves, no inverse
    trace = np.array(
        [
            np.trace(solve_triangular(c, solve_triangular(c, s, lower=True).T, lower=True))
            for c, s in zip(chol, scatter, strict=True)
        ]
    )
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    terms = np.where(counts > 0, counts * log_weights, 0.0)  # 0 log 0 counts 0
    return float(terms.sum() - 0.5 * (counts * (d * LOG_2PI + log_det)).sum() - 0.5 * trace.sum())


def m_step_missing(
    X,
    resp,
    means,
    covariances,
    covariance_type: str = "full",
    reg_covar: float = 0.0,
    sample_weight=None,
):
    r"""The M-step from the expected statistics (:eq:`eq-missing-m-step`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        NaN marks a missing entry.
    resp : array_like of shape (n_samples, n_components)
        :math:`\gamma_{ik}` from :func:`gmmlib.observed_responsibilities` under the
        current parameters.
    means, covariances
        The *current* means and covariances (shaped for ``covariance_type``): they
        give :math:`\hat x_{ik}` and :math:`C_{ik}`.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 0
        Added once to the diagonal of every new covariance (never in the E-step).
    sample_weight : array_like of shape (n_samples,), optional
        Weight :math:`w_i` of each row; :math:`\gamma_{ik}` becomes
        :math:`w_i\gamma_{ik}`.

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        full (K, d, d), tied (d, d), diag (K, d) or spherical (K,).

    Notes
    -----
    Maximising :func:`gmmlib.q_function_missing` over θ is the complete-data
    M-step on the expected statistics:

    .. math::

        p_k = \frac{N_k}{\sum_i w_i}, \qquad
        \mu_k = \frac{\sum_i w_i\gamma_{ik}\hat x_{ik}}{N_k}, \qquad
        \Sigma_k = \frac{1}{N_k}\sum_i w_i\gamma_{ik}\bigl[(\hat x_{ik} - \mu_k)
            (\hat x_{ik} - \mu_k)^\top + C_{ik}\bigr].

    "tied" pools the scatter, :math:`\sum_k S_k / \sum_k N_k`; "diag" keeps its
    diagonal; "spherical" the mean of that diagonal over all d coordinates
    (:math:`C_{ik}` included), as in :func:`gmmlib.update_covariances`. With nothing
    missing this is :func:`gmmlib.m_step` (the same floor on :math:`N_k`).

    Examples
    --------
    One component, two rows, one of them missing x₂: the new variance of x₂
    counts the conditional variance of the imputed entry (0.75 here), which
    imputing the conditional mean and refitting would drop.

    >>> import numpy as np
    >>> import gmmlib
    >>> means, covariances = np.zeros((1, 2)), np.array([[[1.0, 0.5], [0.5, 1.0]]])
    >>> X = np.array([[2.0, np.nan], [0.0, 1.0]])
    >>> weights, new_means, new_covariances = gmmlib.m_step_missing(
    ...     X, np.ones((2, 1)), means, covariances
    ... )
    >>> print(np.round(new_means, 4))
    [[1. 1.]]
    >>> print(np.round(new_covariances[0], 4))
    [[1.    0.   ]
     [0.    0.375]]
    >>> filled = np.array([[2.0, 1.0], [0.0, 1.0]])
    >>> print(np.round(gmmlib.m_step(filled, np.ones((2, 1)))[2][0], 4))
    [[1. 0.]
     [0. 0.]]
    """
    check_covariance_type(covariance_type)
    X = check_missing_data(X)
    resp = check_resp(resp, X.shape[0])
    means = check_means(means, resp.shape[1], X.shape[1])
    K, d = means.shape
    covariances = check_covariances(covariances, covariance_type, K, d)
    reg_covar = check_nonnegative(reg_covar, "reg_covar")
    w = check_optional_sample_weight(sample_weight, X.shape[0])
    resp = resp if w is None else resp * w[:, None]
    used = resp.any(axis=1)  # rows of weight 0 take no part, as in gmmlib.m_step
    patterns = _patterns_of(X[used])
    return _m_step_missing(
        X[used], resp[used], means, covariances, covariance_type, reg_covar, patterns
    )
