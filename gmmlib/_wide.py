r"""The engine's pass for full and tied covariances with many features: BLAS on big blocks.

The block kernels (``gmmlib._kernels``) whiten every component's rows with one matrix
product over a small block (sized for a core's cache) and run one block per thread,
BLAS held to one thread. With hundreds of features that product is a (K d, d + 1)
matrix read from memory for every few dozen rows: memory-bound. Here a block has
thousands of rows, and each step is one multi-threaded BLAS call on it:

* the E-step whitens each component's rows with a triangular product,
  :math:`z_{ik} = U_k^\top (x_i - \mu_k)` (``dtrmm``: N·d² floating-point operations
  per component instead of the dense product's 2·N·d²), or, given the covariances'
  factors :math:`\Sigma_k = L_k L_k^\top` (``CovarianceCholesky``, as the estimator's
  loop passes them), by the triangular solve :math:`z_{ik} = L_k^{-1}(x_i - \mu_k)`
  (``dtrsm``, as fast), which spares the loop a triangular inverse per component and
  iteration;
* the M-step's scatter about the old means, in the data's own frame,
  :math:`\sum_i w_i\gamma_{ik} (x_i - c_k)(x_i - c_k)^\top`, is a symmetric rank-B
  update (``dsyrk``: N·d² per component, half of a general product), so
  :func:`gmmlib._m_step.params_from_sums` needs no triangular inverses and no
  change of frame (``prec_chol=None``).

One component's scatter is not summed at all (``complement``): the responsibilities of
a row add up to 1, so the components' scatters about one point add up to the data's own,
:math:`\sum_k \sum_i w_i\gamma_{ik} (x_i - a)(x_i - a)^\top = \sum_i w_i (x_i - a)(x_i - a)^\top`,
which does not change from one iteration to the next (:func:`data_moments`, one pass per
fit). That component's scatter is this minus the others': K - 1 products instead of K,
at the price of digits when the data spread far more than that component (the engine
chooses the component, or none, and checks the result, ``gmmlib._engine``).

An iteration is thus about (2K - 1)·N·d² operations, less than half the dense count, in
one BLAS call per component and block (the chapter "Making EM fast" prints the time the
stored benchmark measured at d = 1000 beside the time this count takes at the machine's
matrix-product speed); extra memory is a few blocks of rows (``_BLOCK_BYTES``) and one
d × d matrix, whatever N is. The engine uses this pass from ``WIDE_FEATURES`` features
on (``gmmlib._engine``). No argument checking: the engine checks its data and parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import blas
from scipy.special import logsumexp

from ._gaussian import LOG_2PI, CovarianceCholesky

#: From this many features, full and tied covariances take this pass: below it the
#: block kernels are faster. Measured on this project's 2-core machine (K = 3 and 8,
#: N = 20 000): the blocked kernel 3 times faster at d = 32, even at d = 256, the wide
#: pass 1.1 times faster at d = 320 and 1.5 times at d = 512.
WIDE_FEATURES = 300

#: Responsibilities below this are summed as 0 (see ``gmmlib._kernels.exp_nonpositive``).
_SMALLEST_RESPONSIBILITY = float(np.exp(-460.0))

#: The rows of a block: their centred copy takes about this many bytes (8 MiB), enough
#: for the BLAS calls to run near their peak, a few such buffers in all.
_BLOCK_BYTES = 8 << 20


class DataMoments(NamedTuple):
    """The data's (weighted) moments about a point c near their mean: what the
    components' scatters add up to (``wide_sums``' ``complement``)."""

    centre: np.ndarray  # c, (n_features,)
    total_weight: float  # Σ_i w_i
    first: np.ndarray  # Σ_i w_i (x_i - c): zero but for rounding, kept to be exact
    upper: np.ndarray  # Σ_i w_i (x_i - c)(x_i - c)ᵀ: its upper triangle, Fortran-ordered


def data_moments(X, sample_weight, block=None) -> DataMoments:
    """:class:`DataMoments` about the data's weighted mean, in two passes of blocks.

    The mean is taken about the first row, so that data far from the origin (as
    timestamps) keep their digits; the second moments are one ``dsyrk`` per block.
    No argument checking.
    """
    n_samples, d = X.shape
    block = max(1, min(n_samples, block or _BLOCK_BYTES // (8 * d)))
    first_row = np.asarray(X[0], dtype=np.float64)
    total_weight = float(n_samples if sample_weight is None else np.sum(sample_weight))
    shift = np.zeros(d)
    for start in range(0, n_samples, block):
        y = np.asarray(X[start : start + block], dtype=np.float64) - first_row
        w = None if sample_weight is None else sample_weight[start : start + block]
        shift += y.sum(axis=0) if w is None else w @ y
    centre = first_row + shift / total_weight
    first, upper = np.zeros(d), np.zeros((d, d), order="F")
    for start in range(0, n_samples, block):
        y = np.asarray(X[start : start + block], dtype=np.float64) - centre
        if sample_weight is None:
            first += y.sum(axis=0)
        else:
            w = sample_weight[start : start + block]
            first += w @ y
            y *= np.sqrt(w)[:, None]
        blas.dsyrk(1.0, y.T, beta=1.0, c=upper, trans=0, lower=0, overwrite_c=1)
    return DataMoments(centre, total_weight, first, upper)


def moments_diagonal(moments: DataMoments, point) -> np.ndarray:
    """The diagonal of Σ_i w_i (x_i - a)(x_i - a)ᵀ about ``point`` a (from c: the
    shift δ = c - a adds 2 s_j δ_j + W δ_j²)."""
    delta = moments.centre - point
    diagonal = np.diagonal(moments.upper)
    return diagonal + delta * (2.0 * moments.first + moments.total_weight * delta)


def _complement_scatter(moments, complement, first, scatter_f, centres):
    """Component ``complement``'s scatter about its centre a, in the upper triangle of
    ``scatter_f[complement]``: the data's about a minus the other components' about a.

    A scatter about c moves to a by the shift δ = c - a: S(a) = S(c) + s δᵀ + δ sᵀ +
    N δδᵀ (s = Σ γ (x - c), N = Σ γ), a symmetric rank-2 update, (s + N δ / 2) δᵀ +
    δ (s + N δ / 2)ᵀ (``dsyr2``, upper triangle).
    """
    d = len(moments.centre)
    a = centres[complement]
    target = scatter_f[complement]
    target[...] = moments.upper
    terms = [(1.0, moments.first, moments.total_weight, moments.centre)]
    for k in range(len(scatter_f)):
        if k != complement:
            target -= scatter_f[k]
            terms.append((-1.0, first[:d, k], first[d, k], centres[k]))
    for sign, s, n, c in terms:
        delta = c - a
        updated = blas.dsyr2(sign, s + 0.5 * n * delta, delta, lower=0, a=target,
                             overwrite_a=1)  # fmt: skip
        if not np.shares_memory(updated, target):  # pragma: no cover - BLAS copied
            target[...] = updated


def wide_sums(
    X,
    sample_weight,
    weights,
    means,
    prec_chol,
    centres=None,
    scores_only=False,
    block=None,
    complement=None,
):
    """Σ_i w_i log P(x_i | θ) and the sums of the M-step, block by block.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Read ``X[start:stop]`` a block at a time (an ndarray, a memmap).
    sample_weight : ndarray of shape (n_samples,) or None
    weights, means : ndarray
    prec_chol : ndarray or CovarianceCholesky
        With them θ, whose responsibilities weight the sums: the precisions' factors
        U_k, or the covariances' L_k.
    centres : ndarray of shape (n_components, n_features), optional
        The points the sums are taken about (default: ``means``): the engine's second
        pass sums about the new means after a long move.
    scores_only : bool, default False
        Only the log-likelihood (``first`` and ``scatter`` are then zero).
    block : int, optional
        Rows per block; by default those of ``_BLOCK_BYTES``.
    complement : tuple of (int, DataMoments), optional
        (k, the data's moments): component k's scatter is not summed but taken as
        the data's scatter minus the other components' (module docstring).

    Returns
    -------
    log_likelihood : float
    first : ndarray of shape (n_features + 1, n_components)
        Σ_i w_i γ_ik [x_i - c_k; 1].
    scatter : ndarray of shape (n_components, n_features, n_features)
        Σ_i w_i γ_ik (x_i - c_k)(x_i - c_k)ᵀ.
    """
    n_samples, d = X.shape
    K = len(weights)
    means = np.asarray(means, dtype=np.float64)
    centres = means if centres is None else np.asarray(centres, dtype=np.float64)
    solve = isinstance(prec_chol, CovarianceCholesky)  # z = L⁻¹y, else z = Uᵀy
    factors = np.broadcast_to(
        np.asarray(prec_chol.upper if solve else prec_chol, dtype=np.float64), (K, d, d)
    )
    # BLAS reads Fortran-ordered matrices: L_k and U_kᵀ (lower triangular) are ones, as
    # views of the C-ordered L_kᵀ and U_k, so no copy is made
    factors_t = [np.ascontiguousarray(u).T for u in factors]
    triangular = blas.dtrsm if solve else blas.dtrmm
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        log_const = np.log(weights) - 0.5 * d * LOG_2PI
    log_det = np.log(np.abs(np.diagonal(factors, axis1=1, axis2=2))).sum(axis=1)
    log_const = log_const + (-log_det if solve else log_det)  # log|U_k| = -log|L_k|
    block = max(1, min(n_samples, block or _BLOCK_BYTES // (8 * d)))
    skipped = None if complement is None else complement[0]
    first = np.zeros((d + 1, K))
    scatter_f = [np.zeros((d, d), order="F") for _ in range(K)]  # upper triangles
    y = np.empty((block, d))
    loglik = 0.0
    # A row whose distances overflow makes the pass not finite (NaN or -inf): the engine
    # then takes the step with the blocked kernels, which give such rows their limits.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for start in range(0, n_samples, block):
            rows = np.asarray(X[start : start + block], dtype=np.float64)
            b = rows.shape[0]
            y_b = y[:b]
            log_joint = np.empty((b, K))
            for k in range(K):
                np.subtract(rows, means[k], out=y_b)
                # z = Uᵀ(x - μ_k) or L⁻¹(x - μ_k), for all rows at once: yᵀ is y_b read
                # in Fortran order
                z_t = triangular(1.0, factors_t[k], y_b.T, side=0, lower=1, trans_a=0,
                                 overwrite_b=1)  # fmt: skip
                log_joint[:, k] = log_const[k] - 0.5 * np.einsum("ji,ji->i", z_t, z_t)
            log_norm = logsumexp(log_joint, axis=1)
            w = None if sample_weight is None else sample_weight[start : start + b]
            loglik += float(log_norm.sum() if w is None else np.sum(w * log_norm))
            if scores_only:
                continue
            resp = np.exp(log_joint - log_norm[:, None])
            # as the compiled kernels' exp: responsibilities below e^-460 ≈ 1e-200 are 0,
            # or their products in dsyrk would be subnormal numbers, computed ~100x slower
            resp[resp < _SMALLEST_RESPONSIBILITY] = 0.0
            if w is not None:
                resp *= w[:, None]
            for k in range(K):
                np.subtract(rows, centres[k], out=y_b)
                gamma = np.ascontiguousarray(resp[:, k])
                # scipy's BLAS, as dtrmm and dsyrk: NumPy's is another OpenBLAS, whose idle
                # threads spin on the cores for a while after each call; a call to it here
                # made the next dsyrk twice as slow on this project's 2-core machine.
                first[:d, k] += blas.dgemv(1.0, y_b.T, gamma)
                first[d, k] += gamma.sum()
                if k == skipped:
                    continue
                y_b *= np.sqrt(gamma)[:, None]
                blas.dsyrk(1.0, y_b.T, beta=1.0, c=scatter_f[k], trans=0, lower=0,
                           overwrite_c=1)  # fmt: skip
    if skipped is not None and not scores_only:
        _complement_scatter(complement[1], skipped, first, scatter_f, centres)
    scatter = np.empty((K, d, d))
    for k in range(K):  # dsyrk fills the upper triangle; the lower one is still 0
        np.add(scatter_f[k], scatter_f[k].T, out=scatter[k])
        scatter[k].flat[:: d + 1] *= 0.5
    return loglik, first, scatter
