r"""The EM engine: the formula functions' iterations, in one blocked pass over the data.

:class:`EMEngine` computes the same EM iterations as :func:`gmmlib.responsibilities`
followed by :func:`gmmlib.m_step` (to rounding), in memory that does not grow with the
number of samples; :class:`gmmlib.GaussianMixture` fits through it. Each iteration is
one pass: every block of rows gets its E-step and adds its share of a few sums per
component, from which ``params_from_sums`` (in ``gmmlib._m_step``) computes the new
parameters. The sums are taken about the old means, in the old whitened frame, so the
one pass is as accurate as two, as long as the means move by less than thousands of
their standard deviations; an iteration that moves them further (from a start far from
the data) sums again about the new means (``_cancellation``). The chapter "Making EM
fast" (chapters/practice/11_fast_em_and_scale.ipynb) explains the method and how a
block is computed.

A row so far from every component that its squared distances overflow (beyond about
1e154 standard deviations) has log P = -inf; a row of weight 0 adds nothing, wherever
it is. Covariances that overflow are refused with a ValueError that says so.

This module holds the engine and the named types it passes around; the rest is in
``gmmlib._kernels`` (the block kernels, NumPy and compiled), ``gmmlib._blocks`` (block
sizes, threads, BLAS limits), ``gmmlib._wide`` (full and tied covariances with many
features: BLAS on big blocks) and ``gmmlib._dask`` (Dask arrays).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple

import numpy as np

from ._blocks import (
    MAX_BLOCK,
    BlockThreads,
    block_starts,
    default_block_size,
    default_threads,
    in_this_thread,
)
from ._gaussian import (
    LOG_2PI,
    CovarianceCholesky,
    _log_det_precision_cholesky,
    _precision_from_cholesky,
)
from ._m_step import params_from_sums
from ._validation import (
    check_backend,
    check_covariance_type,
    check_finite_covariances,
    check_int,
    check_nonnegative,
    check_rows,
    check_sample_weight,
    is_dask_array,
)
from ._wide import WIDE_FEATURES, data_moments, moments_diagonal, wide_sums

#: The whitened vectors are stored divided by √2: their squares sum to half the
#: Mahalanobis distance, which is what the log-density needs.
_HALF = np.sqrt(0.5)


class FullConstants(NamedTuple):
    """An iteration's E-step constants, full and tied covariances, in the kernels' order."""

    whitening: np.ndarray  # (K d, d + 1): row block k maps [x - r; 1] to U_kᵀ (x - μ_k) / √2
    ref: np.ndarray  # (d,): the reference point r = Σ_k p_k μ_k; rows are read as x - r
    log_const: np.ndarray  # (K,): log p_k + log|U_k| - (d/2) log 2π


class DiagConstants(NamedTuple):
    """An iteration's E-step constants, diagonal and spherical ones, in the kernels' order."""

    scale: np.ndarray  # (K, d): U_kj / √2, so that z_kj = scale_kj (x_j - r_j) - shift_kj
    shift: np.ndarray  # (K, d): U_kj (μ_kj - r_j) / √2
    ref: np.ndarray  # (d,): as FullConstants
    log_const: np.ndarray  # (K,): as FullConstants


class Sums(NamedTuple):
    """What a pass adds up over the samples, each term weighted by w_i."""

    log_likelihood: float  # Σ_i w_i log P(x_i | θ)
    first: np.ndarray  # (d + 1, K): Σ_i w_i γ_ik [x_i - r; 1], so N_k in its last row
    second: np.ndarray  # Σ_i w_i γ_ik z_ik z_ikᵀ (K, d, d), or z_ik² (K, d); z = U_kᵀ(x - μ_k)/√2

    @classmethod
    def total(cls, parts):
        """The sums of several parts (threads, chunks), field by field."""
        return cls(*(sum(field) for field in zip(*parts, strict=True)))


def e_step_constants(weights, means, prec_chol, covariance_type):
    """The E-step's constants for θ = (weights, means, prec_chol).

    Rows are read relative to the reference point r, the mixture's mean Σ_k p_k μ_k:
    x - r is nearly exact, so data far from the origin lose no digits when
    U_kᵀ (x - μ_k) is computed as U_kᵀ (x - r) - U_kᵀ (μ_k - r).
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    prec_chol = np.asarray(prec_chol, dtype=np.float64)
    K, d = means.shape
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        log_const = np.log(weights) + _log_det_precision_cholesky(prec_chol, covariance_type, d)
    log_const = np.asarray(log_const - 0.5 * d * LOG_2PI, dtype=np.float64) * np.ones(K)
    ref = weights @ means
    centred = means - ref
    if covariance_type in ("full", "tied"):
        U = prec_chol if covariance_type == "full" else np.broadcast_to(prec_chol, (K, d, d))
        whitening = np.empty((K, d, d + 1))
        whitening[:, :, :d] = U.transpose(0, 2, 1)
        whitening[:, :, d] = -np.einsum("kji,kj->ki", U, centred)
        whitening *= _HALF
        return FullConstants(whitening.reshape(K * d, d + 1), ref, log_const)
    scale = prec_chol[:, None] * np.ones((1, d)) if covariance_type == "spherical" else prec_chol
    return DiagConstants(_HALF * scale, _HALF * centred * scale, ref, log_const)


#: The expanded kernels (tied: one whitening for all components; diagonal and
#: spherical: log-densities as one matrix product) sum about the reference point r and
#: subtract terms of size N·|c_k|², c_k = Uᵀ(μ_k - r)/√2, to get the sums about each
#: mean: that loses about log10(1 + 2|c_k|²) digits. Beyond this |c_k|² (a mean more
#: than ~100 standard deviations from r) the per-component kernels are used instead.
_EXPANSION_MAX = 1e4


def _tied_parts(constants, d):
    """(shared, centres) of the tied kernel, read from full constants of a tied model."""
    whitening = constants.whitening
    shared = whitening[:d].copy()
    shared[:, d] = 0.0  # y = Uᵀ(x - r)/√2: the same for every component
    centres = -whitening[:, d].reshape(-1, d)  # c_k = Uᵀ(μ_k - r)/√2
    return shared, np.ascontiguousarray(centres)


def tied_second(scatter, first, shared, centres):
    """Σ_k Σ_i w_i γ_ik z_ik z_ikᵀ from the tied kernel's Σ_i w_i y_i y_iᵀ, as (K, d, d).

    z_ik = y_i - c_k, so the sum is Σ w y yᵀ - Σ_k (c_k t_kᵀ + t_k c_kᵀ) + Σ_k N_k c_k c_kᵀ
    with t_k = Σ_i w_i γ_ik y_i (from ``first``). Only the sum over k enters the tied
    M-step (``params_from_sums``) and its cancellation test: it is returned as the
    first component's entry, the others zero.
    """
    d = scatter.shape[0]
    counts = first[d]
    t = (shared[:, :d] @ first[:d]).T  # (K, d)
    cross = centres.T @ t
    total = scatter - cross - cross.T + (centres.T * counts) @ centres
    second = np.zeros((centres.shape[0], d, d))
    second[0] = total
    return second


#: Full covariances are expanded up to this many features (their expanded vectors
#: [u; 1; u_a u_b] have d + 1 + d(d + 1)/2 entries) and from this many components
#: (the products are made once per row, whatever K: with few components they cost
#: more than the whitening they replace). Measured on this project's 2-core machine,
#: one step on 100 000 rows, expanded over whitened: K = 8 to 24 and d = 4 to 32, 0.53
#: to 0.93 of the time (0.66 at K = d = 8, 0.70 at K = d = 16); K = 6, about 1; K = 3,
#: 1.4 at d = 8 and 1.9 at d = 16.
_FULL_EXPANSION_MAX_FEATURES = 32
_FULL_EXPANSION_MIN_COMPONENTS = 8


@lru_cache(maxsize=_FULL_EXPANSION_MAX_FEATURES)
def _upper_triangle(d: int):
    """np.triu_indices(d): the order of the products u_a u_b in ``_load_expanded``."""
    return np.triu_indices(d)


def full_expansion_coefficients(constants):
    """The expanded full kernel's coefficients, or None where they would lose digits.

    With W_k = [A_k | b_k] a component's rows of the whitening (A_k = U_kᵀ/√2,
    b_k = -U_kᵀ(μ_k - r)/√2), log p_k + log φ(x | θ_k) = log_const_k - |A_k u + b_k|²
    is linear in [u; 1; u_a u_b (a ≤ b)], u = x - r, with coefficients -2 A_kᵀ b_k,
    log_const_k - |b_k|², and -(A_kᵀ A_k)_aa on the squares, -2 (A_kᵀ A_k)_ab on the
    products: (K, d + 1 + d(d + 1)/2), ordered as ``_load_expanded`` writes them.
    None when a component's |b_k|² exceeds ``_EXPANSION_MAX`` (see there).

    Stacked constants (whitening (P, K d, d + 1), log_const (P, K): the patterns of
    missing entries, ``gmmlib._missing_engine``) give (P, K, width), or None if any
    pattern would lose digits.
    """
    whitening, _, log_const = constants
    d = whitening.shape[-1] - 1
    W = whitening.reshape(*log_const.shape, d, d + 1)
    A, b = W[..., :d], W[..., d]
    centre_sq = np.sum(b**2, axis=-1)
    if not np.max(centre_sq) <= _EXPANSION_MAX:
        return None
    gram = np.swapaxes(A, -1, -2) @ A  # A_kᵀ A_k
    rows, columns = _upper_triangle(d)
    quadratic = -gram[..., rows, columns] * np.where(rows == columns, 1.0, 2.0)
    linear = -2.0 * np.einsum("...ji,...j->...i", A, b)
    parts = [linear, (log_const - centre_sq)[..., None], quadratic]
    return np.ascontiguousarray(np.concatenate(parts, axis=-1))


def expanded_full_sums(loglik, first, constants) -> Sums:
    """The full kernels' ``Sums`` from the expanded kernel's Σ_i w_i γ_ik [u_i; 1; u_a u_b].

    With M_k = Σ_i w_i γ_ik [u_i; 1][u_i; 1]ᵀ (rebuilt from the products), the sum of
    the whitened vectors' squares is W_k M_k W_kᵀ: what the whitening kernels add up,
    so the M-step and its cancellation test take these sums unchanged. Stacked (first
    (P, width, K) and the patterns' constants, as ``full_expansion_coefficients``):
    each pattern's, first (P, d + 1, K) and second (P, K, d, d).
    """
    whitening = constants.whitening
    d = whitening.shape[-1] - 1
    first_t = np.swapaxes(first, -1, -2)  # (..., K, width)
    moments = np.empty((*first_t.shape[:-1], d + 1, d + 1))
    rows, columns = _upper_triangle(d)
    moments[..., rows, columns] = first_t[..., d + 1 :]
    moments[..., columns, rows] = first_t[..., d + 1 :]
    moments[..., :, d] = first_t[..., : d + 1]
    moments[..., d, :] = first_t[..., : d + 1]
    W = whitening.reshape(*first_t.shape[:-1], d, d + 1)
    second = W @ moments @ np.swapaxes(W, -1, -2)
    return Sums(loglik, np.ascontiguousarray(first[..., : d + 1, :]), second)


def expansion_coefficients(constants, spherical: bool = False):
    """The expanded diagonal kernels' coefficients, or None where they would lose digits.

    log p_k + log φ(x | θ_k) = log_const_k - Σ_j (s_kj u_j - c_kj)², with u = x - r,
    s = ``scale`` and c = ``shift``; expanded, it is linear in [u; 1; u²], with
    coefficients 2 s_kj c_kj, log_const_k - Σ_j c_kj² and -s_kj²: (K, 2d + 1). For
    spherical covariances s_kj = s_k, so the squares enter through |u|² alone, with
    coefficient -s_k²: (K, d + 2). None when a component's Σ_j c_kj² exceeds
    ``_EXPANSION_MAX`` (see there).
    """
    scale, shift, _, log_const = constants
    centre_sq = np.sum(shift**2, axis=1)
    if not np.max(centre_sq) <= _EXPANSION_MAX:
        return None
    squares = -(scale[:, :1] ** 2) if spherical else -(scale**2)
    return np.ascontiguousarray(
        np.hstack([2.0 * scale * shift, (log_const - centre_sq)[:, None], squares])
    )


def expanded_sums(loglik, first, constants) -> Sums:
    """The diagonal kernels' ``Sums`` from the expanded kernel's Σ_i w_i γ_ik [u_i; 1; u_i²].

    Σ_i w_i γ_ik z_ikj² with z = s u - c is s² Σγu² - 2 s c Σγu + c² N_k, per k and j.
    From a spherical kernel's Σγ|u|² only the sum over j is known: each of a
    component's d entries holds its mean, which is all the spherical M-step uses
    (``params_from_sums`` averages the d variances; ``_cancellation`` tests their sum).
    """
    scale, shift = constants[:2]
    d = scale.shape[1]
    sum_u, counts = first[:d].T, first[d]
    if first.shape[0] == 2 * d + 1:
        second = scale**2 * first[d + 1 :].T - 2.0 * scale * shift * sum_u
        second += shift**2 * counts[:, None]
    else:  # spherical: one scale per component, and Σγ|u|² in the last row
        total = scale[:, 0] ** 2 * first[d + 1] - 2.0 * np.sum(scale * shift * sum_u, axis=1)
        total += np.sum(shift**2, axis=1) * counts
        second = np.repeat(total[:, None] / d, d, axis=1)
    return Sums(loglik, np.ascontiguousarray(first[: d + 1]), second)


def block_sums(
    X, sample_weight, constants, scores_only, backend, block_size, run, recentred=None,
    covariance_type=None,
) -> Sums:  # fmt: skip
    """The sums over the rows of ``X``, block by block.

    ``run(work, starts)`` calls ``work`` on shares of the block starts, each with a
    workspace, and returns the list of its results: ``BlockThreads.map`` (threads) or
    ``in_this_thread`` (both in ``gmmlib._blocks``). With ``recentred`` (constants of
    the same factors about other means) the responsibilities are those of
    ``constants`` but the vectors summed are those of ``recentred`` (NumPy's
    ``numpy_recentred_sums``: the engine's rare second pass).
    """
    # not with gmmlib: it imports Numba, when installed
    from ._kernels import kernels_for, numpy_recentred_sums

    kernels, X = kernels_for(X, backend if recentred is None else "numpy")
    full = isinstance(constants, FullConstants)
    kernel = kernels.full if full else kernels.diag
    n_samples, d = (int(s) for s in X.shape)
    K = constants.log_const.shape[0]
    block = min(block_size or default_block_size(K, d, kernels.backend), n_samples)

    if covariance_type == "tied" and recentred is None and kernels.backend == "numba":
        shared, centres = _tied_parts(constants, d)
        if np.max(np.sum(centres**2, axis=1)) <= _EXPANSION_MAX:
            from ._kernels import compiled_tied_sums

            def tied_work(starts, workspace):
                del workspace
                first, scatter = np.zeros((d + 1, K)), np.zeros((d, d))
                args = (shared, centres, constants.ref, constants.log_const, first, scatter)
                loglik = compiled_tied_sums(X, sample_weight, starts, block, *args, scores_only)
                return Sums(loglik, first, tied_second(scatter, first, shared, centres))

            return Sums.total(run(tied_work, block_starts(n_samples, block)))

    coefficients = None
    if recentred is None and kernels.backend == "numba":
        if not full:
            coefficients = expansion_coefficients(constants, covariance_type == "spherical")
        elif (
            covariance_type == "full"
            and d <= _FULL_EXPANSION_MAX_FEATURES
            and K >= _FULL_EXPANSION_MIN_COMPONENTS
        ):
            coefficients = full_expansion_coefficients(constants)
    if coefficients is not None:
        from ._kernels import compiled_expanded_sums

        def expanded_work(starts, workspace):
            del workspace
            first = np.zeros((coefficients.shape[1], K))
            args = (coefficients, constants.ref, first, scores_only)
            loglik = compiled_expanded_sums(X, sample_weight, starts, block, *args)
            return loglik, first

        parts = run(expanded_work, block_starts(n_samples, block))
        loglik, first = sum(part[0] for part in parts), sum(part[1] for part in parts)
        return (expanded_full_sums if full else expanded_sums)(loglik, first, constants)

    def work(starts, workspace):
        first, second = np.zeros((d + 1, K)), np.zeros((K, d, d) if full else (K, d))
        if recentred is None:
            args = (*constants, first, second, scores_only)
            loglik = kernel(X, sample_weight, starts, block, *args, workspace=workspace)
        else:
            args = (constants, recentred, first, second)
            loglik = numpy_recentred_sums(X, sample_weight, starts, block, *args)
        return Sums(loglik, first, second)

    return Sums.total(run(work, block_starts(n_samples, block)))


#: Mean log-likelihoods this close (relative) are the same to the engine's rounding: its
#: kernels add in different orders (NumPy's, the compiled ones, any number of threads),
#: so the last bits of a log-likelihood depend on the backend.
SAME_LOG_LIKELIHOOD_RTOL = 1e-10


def improves(candidate: float, best: float) -> bool:
    """Whether a start's mean log-likelihood beats the best so far beyond rounding.

    Two starts that reach the same optimum (the same clusters, labelled in another
    order) end with log-likelihoods that differ in their last bits only, and which
    one is larger depends on the backend. Keeping the earlier start unless the later
    one is larger by more than ``SAME_LOG_LIKELIHOOD_RTOL`` makes the kept model the
    same with and without Numba.
    """
    if not np.isfinite(best):
        return candidate > best
    return candidate > best + SAME_LOG_LIKELIHOOD_RTOL * max(1.0, abs(best))


def _all_finite(sums: Sums) -> bool:
    return bool(
        np.isfinite(sums.log_likelihood)
        and np.all(np.isfinite(sums.first))
        and np.all(np.isfinite(sums.second))
    )


class EMEngine:
    r"""Blocked, one-pass, multi-threaded EM iterations for a Gaussian mixture.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Any 2-D array that supports ``X[start:stop]`` (an ndarray or a
        ``numpy.memmap``); it is read block by block and never copied whole.
        Or a ``dask.array`` chunked along rows (columns are rechunked whole):
        each chunk's sums are computed by Dask, with the scheduler configured
        in Dask. Assumed finite (the estimator checks it).
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float, default 0
        Added to the diagonal of every new covariance.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative weight per sample; ``None`` means all ones.
    block_size : int, optional
        Rows per block; by default sized for the cache (see
        ``default_block_size`` in ``gmmlib._blocks``, at most 4096 rows), so a
        small problem is a single block.
    n_threads : int, optional
        Threads sharing a pass's blocks; by default the cores this process may
        run on (one without threadpoolctl). The result does not depend on it
        beyond rounding.
    backend : {"auto", "numba", "numpy"}, default "auto"
        The block kernel: compiled by Numba or NumPy calls (both in
        ``gmmlib._kernels``). "auto" takes Numba when it is installed. The
        compiled kernel reads NumPy arrays and memmaps of float64 or float32;
        other inputs (and Dask chunks of other types) go through the NumPy kernel.

    Notes
    -----
    :meth:`step` performs one EM iteration from ``(weights, means,
    prec_chol)`` and returns the mean log-likelihood of those parameters
    (weighted by ``sample_weight``) together with the new ``(weights, means,
    covariances)``: the same numbers as
    :func:`gmmlib.m_step` applied to :func:`gmmlib.responsibilities`.
    Extra memory is a few blocks per thread, whatever ``n_samples`` is.

    Used as a context manager, the engine holds BLAS to one thread from its
    first pass of more than one block until the ``with`` block ends (otherwise
    around each such pass)::

        engine = EMEngine(X, "full", reg_covar=1e-6)
        with engine:
            for _ in range(n_iter):
                prec_chol = precision_cholesky(covariances, "full")
                mean_ll, weights, means, covariances = engine.step(weights, means, prec_chol)
    """

    def __init__(
        self,
        X,
        covariance_type: str = "full",
        reg_covar: float = 0.0,
        sample_weight=None,
        *,
        block_size: int | None = None,
        n_threads: int | None = None,
        backend: str = "auto",
    ):
        from ._kernels import resolve_backend  # not with gmmlib: it imports Numba, when installed

        self.covariance_type = check_covariance_type(covariance_type)
        X = check_rows(X)
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.reg_covar = check_nonnegative(reg_covar, "reg_covar")
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, self.n_samples)
            if np.all(sample_weight == 1.0):
                sample_weight = None  # the unweighted kernels' path
        self.sample_weight = sample_weight
        self.total_weight = (
            float(self.n_samples) if sample_weight is None else float(sample_weight.sum())
        )
        # Σw over the rows that take part: the floor on N_k scales with it (``nk_floor``)
        self._mean_weight = (
            1.0 if sample_weight is None else self.total_weight / np.count_nonzero(sample_weight)
        )
        self._block_size = None if block_size is None else check_int(block_size, "block_size")
        self.n_threads = (
            default_threads() if n_threads is None else check_int(n_threads, "n_threads")
        )
        self.backend = resolve_backend(check_backend(backend))
        self._dask = None
        if is_dask_array(X):  # without importing Dask
            from ._dask import DaskRows

            self._dask = DaskRows(X, sample_weight)
            X = self._dask.X
        self.X = X
        self._threads = BlockThreads(self.n_threads)
        # many features, full or tied: BLAS on big blocks (gmmlib._wide), its own threads
        self._wide = (
            self._dask is None
            and self.covariance_type in ("full", "tied")
            and self.n_features >= WIDE_FEATURES
        )
        self._moments = None  # the wide pass's DataMoments, made at its first step

    def __enter__(self):
        """Hold BLAS to one thread for a run of :meth:`step` calls; restored on exit.

        The limit is taken at the first pass that has more than one block, at once
        when every pass will (more rows than a block can have), and kept until the
        ``with`` block ends, so that it is not set and reset at every iteration.
        """
        self._threads.__enter__()
        if self.n_samples > (self._block_size or MAX_BLOCK) and not self._wide:
            self._threads.hold_blas()
        return self

    def __exit__(self, *exc):
        return self._threads.__exit__(*exc)

    def _sums(self, constants, scores_only: bool, recentred=None, backend=None) -> Sums:
        backend = backend or self.backend
        sums = partial(
            block_sums,
            constants=constants,
            scores_only=scores_only,
            backend=backend,
            block_size=self._block_size,
            recentred=recentred,
            covariance_type=self.covariance_type,
        )
        if self._dask is None:
            result = sums(self.X, self.sample_weight, run=self._threads.map)
        else:
            # Dask's workers take the chunks, each on one thread: BLAS is held here for all.
            with self._threads.single_threaded_blas():
                result = self._dask.map_reduce(partial(sums, run=in_this_thread), Sums.total)
        if backend != "numpy" and not _all_finite(result):
            # A row that no component can explain (every distance's square overflows):
            # NumPy's kernel gives it to its nearest component (-inf is its log P).
            return self._sums(constants, scores_only, recentred, backend="numpy")
        return result

    @property
    def takes_covariance_factors(self) -> bool:
        """Whether :meth:`step` runs faster given the covariances' Cholesky factors
        (a ``gmmlib._gaussian.CovarianceCholesky``) than the precisions' (many features,
        full or tied covariances: ``gmmlib._wide`` solves with them)."""
        return self._wide

    def mean_log_likelihood(self, weights, means, prec_chol) -> float:
        """Average (weighted) log P(x_i | θ) over the data, in one blocked pass."""
        if self._wide:
            loglik = wide_sums(self.X, self.sample_weight, weights, means, prec_chol,
                               scores_only=True, block=self._block_size)[0]  # fmt: skip
            if np.isfinite(loglik):
                return loglik / self.total_weight
        prec_chol = _precisions_factor(prec_chol)
        constants = e_step_constants(weights, means, prec_chol, self.covariance_type)
        return float(self._sums(constants, scores_only=True).log_likelihood) / self.total_weight

    def step(self, weights, means, prec_chol):
        """One EM iteration from θ = (weights, means, prec_chol).

        Parameters
        ----------
        weights : ndarray of shape (n_components,)
        means : ndarray of shape (n_components, n_features)
        prec_chol : ndarray
            Cholesky factors of the precisions, as returned by
            :func:`gmmlib.precision_cholesky` for the covariance type (or, where
            :attr:`takes_covariance_factors`, the covariances' factors as a
            ``gmmlib._gaussian.CovarianceCholesky``).

        Returns
        -------
        mean_log_likelihood : float
            Average (weighted) log-likelihood per sample of θ, the parameters
            at the start of the iteration.
        weights, means, covariances : ndarray
            The M-step from the responsibilities under θ; covariances shaped
            per type as in scikit-learn. They may not be positive definite if
            a component collapsed: :func:`gmmlib.precision_cholesky` says so.

        Raises
        ------
        ValueError
            If the new covariances overflow (data spread over more than ~1e154).
        """
        if self._wide:
            wide = self._wide_step(weights, means, prec_chol)
            if wide is not None:
                return wide
        prec_chol = _precisions_factor(prec_chol)
        constants = e_step_constants(weights, means, prec_chol, self.covariance_type)
        sums = self._sums(constants, scores_only=False)
        centres = np.asarray(means, dtype=np.float64)
        new = self._params(sums, constants, centres, prec_chol)
        loss = _cancellation(
            sums, constants, centres, prec_chol, self.covariance_type, self.reg_covar
        )
        if loss > _MAX_LOSS:
            # The means moved so far (in the old whitened frame) that the one-pass update
            # would lose its digits: the same responsibilities, summed about the new means.
            moved = e_step_constants(weights, new[1], prec_chol, self.covariance_type)
            new = self._params(self._sums(constants, False, moved), moved, new[1], prec_chol)
        check_finite_covariances(new[2])
        return (float(sums.log_likelihood) / self.total_weight, *new)

    def _wide_step(self, weights, means, prec_chol):
        """:meth:`step` through ``gmmlib._wide``; None for a pass that is not finite.

        Its sums are about the old means in the data's own frame; a row that no
        component can explain (overflowing distances) makes the pass not finite, and
        the step is then taken by the blocked NumPy kernel, which handles such rows.
        One component's scatter is the data's minus the others' (``_complement``),
        when that keeps its digits.
        """
        centres = np.asarray(means, dtype=np.float64)
        sums = partial(wide_sums, self.X, self.sample_weight, block=self._block_size)
        complement = self._complement(weights, centres, prec_chol)
        loglik, first, scatter = sums(weights, centres, prec_chol, complement=complement)
        if not (np.isfinite(loglik) and np.all(np.isfinite(first))):
            return None
        d = self.n_features
        counts, sum_y = first[d], first[:d].T
        new = self._params_about(counts, sum_y, scatter, centres, None)
        second_diag = np.diagonal(scatter, axis1=1, axis2=2)
        magnitude = second_diag
        if complement is not None:
            # the complement's rounding is that of the data's scatter it was taken from
            k, moments = complement
            magnitude = second_diag.copy()
            magnitude[k] = moments_diagonal(moments, centres[k])
        lost = _lost(counts, sum_y, second_diag, 1.0, self.covariance_type, self.reg_covar,
                     magnitude)  # fmt: skip
        if lost > _MAX_LOSS:
            _, first, scatter = sums(weights, centres, prec_chol, centres=new[1])
            new = self._params_about(first[d], first[:d].T, scatter, new[1], None)
        check_finite_covariances(new[2])
        return (float(loglik) / self.total_weight, *new)

    def _complement(self, weights, means, prec_chol):
        """(k, the data's moments) for ``wide_sums``' ``complement``, or None.

        The data's scatter is summed once per engine (``gmmlib._wide.data_moments``).
        Taking component k's scatter as that minus the others' rounds it at the scale
        of the data's spread about μ_k: the factor it is larger than N_k Σ_k (in the
        worst coordinate) is predicted from θ, and the component with the smallest
        factor is chosen if that is at most ``_COMPLEMENT_MAX_LOSS``. The step's
        cancellation test then checks the factor of the new parameters.
        """
        if self._moments is None:
            self._moments = data_moments(self.X, self.sample_weight, block=self._block_size)
        moments = self._moments
        K, d = means.shape
        variances = _variances_at_most(prec_chol, K, d)
        counts = moments.total_weight * (
            1.0 if self.covariance_type == "tied" else np.asarray(weights, dtype=np.float64)
        )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            spread = moments_diagonal(moments, means)  # (K, d): about each μ_k
            factor = np.max(spread / (np.reshape(counts, (-1, 1)) * variances), axis=1)
        factor = np.where(np.isnan(factor), np.inf, factor)
        k = int(np.argmin(factor))
        return (k, moments) if factor[k] <= _COMPLEMENT_MAX_LOSS else None

    def _params_about(self, counts, sum_y, second, centres, prec_chol):
        return params_from_sums(
            counts,
            sum_y,
            second,
            centres,
            prec_chol,
            self.covariance_type,
            self.reg_covar,
            self._mean_weight,  # the floor on N_k scales with the weights
        )

    def _params(self, sums, constants, centres, prec_chol):
        """The M-step from the sums of a pass whose vectors are about ``centres``."""
        d = self.n_features
        counts = sums.first[d]
        # the sums are about r; params_from_sums takes them about the centres c_k
        sum_y = sums.first[:d].T - counts[:, None] * (centres - constants.ref)
        # 2 Σ: exact, the kernels whiten to z / √2
        return self._params_about(counts, sum_y, 2.0 * sums.second, centres, prec_chol)


def _variances_at_most(prec_chol, n_components, n_features) -> np.ndarray:
    """(K, d): each component's variances Σ_jj from the covariances' factors (a
    ``CovarianceCholesky``), or from the precisions' U_k a lower bound, 1 / P_jj (P =
    U Uᵀ: the variance given the other coordinates), which costs no inverse."""
    shape = (n_components, n_features, n_features)
    if isinstance(prec_chol, CovarianceCholesky):
        upper = np.broadcast_to(prec_chol.upper, shape)
        return np.einsum("kij,kij->kj", upper, upper)  # Σ_jj = Σ_i L_ji², upper = Lᵀ
    U = np.broadcast_to(np.asarray(prec_chol, dtype=np.float64), shape)
    with np.errstate(divide="ignore"):
        return 1.0 / np.einsum("kji,kji->kj", U, U)  # P_jj = Σ_i U_ji²


def _precisions_factor(factor):
    """The precisions' factors U_k, from a ``CovarianceCholesky`` (the blocked kernels
    multiply by U_k) or as given."""
    if isinstance(factor, CovarianceCholesky):
        return _precision_from_cholesky(factor)
    return factor


#: The one-pass update takes the scatter about the new mean as Σγ z zᵀ minus N_k δδᵀ
#: (δ: the mean's move, both in the old whitened frame). When that subtraction cancels
#: more than this factor of a new variance (reg_covar included), it keeps fewer than 10
#: of the 16 digits: a mean that moved thousands of its standard deviations, as from a
#: start far from the data, and :meth:`EMEngine.step` sums again about the new means.
_MAX_LOSS = 1e6

#: The wide pass takes one component's scatter as the data's minus the others' when the
#: data's spread about its mean is at most this factor of N_k Σ_k (13 of 16 digits kept).
_COMPLEMENT_MAX_LOSS = 1e3


def _cancellation(sums, constants, centres, prec_chol, covariance_type, reg_covar) -> float:
    """Largest factor by which the one-pass update cancels a new variance.

    Entry j of component k, in the old whitened frame (z = Uᵀ(x - old mean)):
    Z_jj / (Z_jj - S_j² / N_k + N_k reg_covar (UᵀU)_jj), with Z = Σγ z zᵀ and
    S = Σγ z; the denominator is N_k times the new variance. Summed over the
    components for tied covariances and over the coordinates for spherical ones
    (one variance each). 1 for an empty component, inf when rounding left nothing.
    """
    d = centres.shape[1]
    counts = sums.first[d]
    sum_y = sums.first[:d].T - counts[:, None] * (centres - constants.ref)
    prec_chol = np.asarray(prec_chol, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        U = np.broadcast_to(prec_chol, (centres.shape[0], d, d))
        sum_z = np.einsum("kji,kj->ki", U, sum_y)
        norms = np.einsum("kij,kij->kj", U, U)  # (UᵀU)_jj: reg_covar I in the whitened frame
        second = np.diagonal(2.0 * sums.second, axis1=1, axis2=2)
    else:
        scale = prec_chol[:, None] if covariance_type == "spherical" else prec_chol
        sum_z, norms, second = scale * sum_y, scale**2, 2.0 * sums.second
    return _lost(counts, sum_z, second, norms, covariance_type, reg_covar)


def _lost(counts, sum_z, second, norms, covariance_type, reg_covar, magnitude=None) -> float:
    """``_cancellation`` from the diagonal sums in any frame (the wide pass: the data's).

    ``sum_z`` (K, d) and ``second`` (K, d): S_j and Z_jj; ``norms``: (UᵀU)_jj, or 1.
    ``magnitude`` (K, d), default ``second``: the size of the numbers Z_jj was rounded
    at (for a scatter taken as a difference, ``gmmlib._wide``'s complement, larger).
    """
    magnitude = second if magnitude is None else magnitude
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shifted = np.where(counts[:, None] > 0, sum_z**2 / counts[:, None], 0.0)
        kept = second - shifted + counts[:, None] * reg_covar * norms
        if covariance_type == "tied":
            # one pooled covariance: its variances are the sums over the components
            second, kept = second.sum(axis=0), kept.sum(axis=0)
            magnitude = magnitude.sum(axis=0)
            unused = ~(second > 0)
        elif covariance_type == "spherical":
            # one variance per component: the sum over the coordinates
            second, kept = second.sum(axis=1), kept.sum(axis=1)
            magnitude = magnitude.sum(axis=1)
            unused = ~(second > 0) | ~(counts > 0)
        else:
            unused = ~(second > 0) | ~(counts[:, None] > 0)
        loss = np.where(kept > 0, magnitude / kept, np.inf)
    loss[unused] = 1.0
    return float(loss.max())


#: What a fitted model computes per row: the outputs ``row_results`` fills.
ROW_RESULTS = ("score_samples", "predict", "predict_proba")
#: Rows per block of the NumPy path of ``row_results`` (some hundred KiB of (rows, K) arrays).
_REFERENCE_ROWS = 1 << 11


def row_results(X, weights, means, prec_chol, covariance_type, what, *, backend="auto",
                n_threads=None, verify=None):  # fmt: skip
    """``what`` of every row of ``X`` under θ, block by block: no (N, K) temporaries.

    ``score_samples``: log P(x_i | θ) (N,); ``predict``: the most responsible
    component (N,); ``predict_proba``: γ_ik (N, K). The compiled kernels compute the
    blocks of an ndarray or memmap on ``n_threads`` threads, writing straight into the
    output; other inputs, and the rare rows whose distances overflow, take the
    reference path (``gmmlib._e_step``) a block of rows at a time. Extra memory is a
    few blocks, whatever N is. No argument checking: the estimator checks X and θ,
    except that X's values may be left to ``verify(X)`` (raising on NaN or infinity),
    called before the reference path computes any row: the compiled kernels mark every
    row with a non-finite entry (its log-joints are NaN or -inf), so a finite X takes
    no pass of its own unless some row's distances overflowed.
    """
    from ._e_step import _e_step  # the reference path
    from ._kernels import kernels_for, resolve_backend

    n_samples, d = (int(s) for s in X.shape)
    K = int(np.shape(weights)[0])
    empty_rows, empty_resp = np.empty(0), np.empty((0, K))
    log_density = np.empty(n_samples) if what == "score_samples" else empty_rows
    labels = np.empty(n_samples, dtype=np.intp) if what == "predict" else np.empty(0, np.intp)
    resp_out = np.empty((n_samples, K)) if what == "predict_proba" else empty_resp
    output = {"score_samples": log_density, "predict": labels, "predict_proba": resp_out}[what]
    backend = resolve_backend(backend)
    kernels, rows_X = kernels_for(X, backend)
    n_bad = 0
    if kernels.backend == "numba" and n_samples:
        from ._kernels import compiled_diag_rows, compiled_expanded_rows, compiled_full_rows

        constants = e_step_constants(weights, means, prec_chol, covariance_type)
        full = isinstance(constants, FullConstants)
        kernel, arguments = compiled_full_rows if full else compiled_diag_rows, constants
        if not full:
            coefficients = expansion_coefficients(constants, covariance_type == "spherical")
            if coefficients is not None:
                kernel, arguments = compiled_expanded_rows, (coefficients, constants.ref)
        block = min(default_block_size(K, d, "numba"), n_samples)

        def work(starts, workspace):
            del workspace
            return kernel(rows_X, starts, block, *arguments, log_density, labels, resp_out)

        threads = BlockThreads(default_threads() if n_threads is None else n_threads)
        n_bad = sum(threads.map(work, block_starts(n_samples, block)))
        if not n_bad:
            return output
    if verify is not None:
        verify(X)
    for start in range(0, n_samples, _REFERENCE_ROWS):
        stop = min(start + _REFERENCE_ROWS, n_samples)
        if n_bad:  # only the rows the compiled kernel could not compute
            marks = {"score_samples": log_density, "predict": labels}.get(what)
            part = labels[start:stop] < 0 if what == "predict" else None
            if part is None:
                values = marks[start:stop] if marks is not None else resp_out[start:stop, 0]
                part = np.isnan(values)
            rows = start + np.flatnonzero(part)
            if not rows.size:
                continue
            block_X = np.asarray(X[rows], dtype=np.float64)
        else:
            rows = slice(start, stop)
            block_X = np.asarray(X[start:stop], dtype=np.float64)
        log_resp, log_norm = _e_step(block_X, weights, means, prec_chol, covariance_type)
        output[rows] = from_e_step(what, log_resp, log_norm)
    return output


def from_e_step(what, log_resp, log_norm):
    """``what`` of rows from their E-step: log P (score_samples), the most responsible
    component (predict, from log γ, not log p_k φ_ik: far from every component all φ_ik
    underflow) or γ (predict_proba)."""
    if what == "score_samples":
        return log_norm
    if what == "predict":
        return np.argmax(log_resp, axis=1)
    return np.exp(log_resp)
