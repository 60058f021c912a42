r"""The estimator's EM iterations with missing values: the engine's kernels, pattern by pattern.

:class:`MissingEngine` computes the iterations of :func:`gmmlib.observed_responsibilities`
followed by :func:`gmmlib.m_step_missing` (tested equal to 1e-10), for
:class:`gmmlib.GaussianMixture` with ``missing="em"``. The rows are copied once, grouped
by their pattern of missing entries (the missing entries set to 0). Within a pattern
every row observes the same coordinates o, so each component's :math:`\Sigma_{oo}` is
factored once per iteration and the pattern's rows go through the block kernels of
:class:`gmmlib.EMEngine` (``gmmlib._kernels``: compiled by Numba when installed) as if
they were complete rows, with constants made for the pattern:

* the whitening of component k maps x to :math:`z = L^{-1}(x_o - \mu_{k,o})` padded with
  zeros, where :math:`\Sigma_{k,oo} = L L^\top`, so the missing entries are never read,
  and the log-constant has :math:`|o|` and :math:`\log|\Sigma_{k,oo}|`: the kernel's
  log-likelihood and responsibilities are those of the observed coordinates
  (:eq:`eq-observed-marginal`, :eq:`eq-observed-responsibility`);
* its sums :math:`\sum_i w_i\gamma_{ik} z_{ik}` and :math:`\sum_i w_i\gamma_{ik}
  z_{ik}z_{ik}^\top` are exact linear images of the expected statistics: with
  :math:`H = \bigl[L;\ \Sigma_{mo}L^{-\top}\bigr]`, :math:`\hat x_{ik} - \mu_k = H z_{ik}`
  (the observed entries :math:`L z`, the missing ones the regression
  :math:`\Sigma_{mo}\Sigma_{oo}^{-1}(x_o - \mu_o)`), so the pattern's contribution to
  :eq:`eq-expected-statistics` is :math:`H(\sum\gamma z)` and
  :math:`H(\sum\gamma z z^\top)H^\top + (\sum\gamma)\,C`, with the conditional covariance
  :math:`C = \Sigma_{mm} - \Sigma_{mo}\Sigma_{oo}^{-1}\Sigma_{om}`.

The complete rows are one more pattern (nothing missing: :math:`H = L`, :math:`C = 0`), so
they take the same kernel as in a fit without NaN. The constants are built for
many patterns at once (batched factorisations of the d × d matrices
:math:`D_o\Sigma_k D_o + D_m`, whose Cholesky factor is :math:`L` in the observed block and
the identity in the missing one); the patterns are shared among threads, each of which
builds its patterns' constants and runs them through one compiled call
(``gmmlib._missing_kernels``; a Python loop over the patterns with NumPy's kernel). The M-step is
``gmmlib._m_step.params_from_sums`` on the summed statistics (:eq:`eq-missing-m-step`),
taken about the old means; when the means moved so far that this would lose digits (the
engine's ``_MAX_LOSS``), the sums are taken again about the new means by the direct
computation of ``gmmlib._missing``.

Cost: per iteration, the kernels' work on all N rows (as a fit without missing values), plus
a few batched d × d products per pattern and component: P K d³ operations for P patterns,
small against N K d² when the patterns are few (the benchmark's 100,000 × 8 × 8 with 20 %
of the entries missing has 252 of them), and dominant when nearly every row has a pattern
of its own and d is large (many features with scattered holes). Memory: the copy of the data
(8 d bytes per row), the order of the rows and their sample weights, and the constants of a
chunk of patterns (``_CHUNK_MATRICES``).
"""

from __future__ import annotations

import heapq
from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.linalg import lapack

from ._blocks import MAX_BLOCK, BlockThreads, default_block_size, default_threads
from ._engine import (
    _FULL_EXPANSION_MAX_FEATURES,
    _FULL_EXPANSION_MIN_COMPONENTS,
    _HALF,
    _MAX_LOSS,
    expanded_full_sums,
    full_expansion_coefficients,
)
from ._gaussian import LOG_2PI
from ._m_step import params_from_sums
from ._missing import (
    Patterns,
    _expected_sums,
    _identity_factors,
    _observed_e_step,
    _params_from_expected_sums,
    full_covariances,
    missingness_patterns,
)
from ._validation import (
    check_backend,
    check_covariance_type,
    check_finite_covariances,
    check_int,
    check_nonnegative,
    check_sample_weight,
)

#: The batched constants of a chunk of patterns hold at most this many entries per array
#: (patterns × components × d², 4 MiB; a dozen such arrays are alive at once).
_CHUNK_MATRICES = 1 << 19


class MissingEngine:
    """EM iterations for data with NaN entries (missing at random), grouped by pattern.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Float64 data, NaN marking a missing entry (checked by the caller: no infinity,
        no row or column entirely missing).
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float, default 0
        Added once to the diagonal of every new covariance (after the M-step).
    sample_weight : array_like of shape (n_samples,), optional
    n_threads : int, optional
        Threads sharing the patterns; by default the cores this process may use.
    backend : {"auto", "numba", "numpy"}, default "auto"
        The block kernel, as in :class:`gmmlib.EMEngine`.

    Notes
    -----
    :meth:`step` and :meth:`mean_log_likelihood` take and return what those of
    :class:`gmmlib.EMEngine` do; the log-likelihood is the observed-data one
    (:eq:`eq-observed-log-likelihood`), averaged over the (weighted) rows.
    """

    def __init__(
        self,
        X,
        covariance_type: str = "full",
        reg_covar: float = 0.0,
        sample_weight=None,
        *,
        n_threads: int | None = None,
        backend: str = "auto",
    ):
        from ._kernels import kernels_for, resolve_backend  # imports Numba, when installed

        self.covariance_type = check_covariance_type(covariance_type)
        self.reg_covar = check_nonnegative(reg_covar, "reg_covar")
        X = np.asarray(X, dtype=np.float64)
        self.n_samples, self.n_features = X.shape
        self.patterns = missingness_patterns(np.isnan(X))
        rows = X[self.patterns.order]  # a copy, grouped by pattern
        # a missing entry is read through a zero column of its pattern's whitening: any
        # finite number will do
        rows[np.isnan(rows)] = 0.0
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, self.n_samples)
            sample_weight = None if np.all(sample_weight == 1.0) else sample_weight
        self.sample_weight = None if sample_weight is None else sample_weight[self.patterns.order]
        self.total_weight = (
            float(self.n_samples) if sample_weight is None else float(sample_weight.sum())
        )
        self._mean_weight = (
            1.0 if sample_weight is None else self.total_weight / np.count_nonzero(sample_weight)
        )
        self.n_threads = (
            default_threads() if n_threads is None else check_int(n_threads, "n_threads")
        )
        self.backend = resolve_backend(check_backend(backend))
        self._kernels, self.X = kernels_for(rows, self.backend)
        self._threads = BlockThreads(self.n_threads)
        self._sizes = np.diff(self.patterns.bounds)
        # each pattern's rows and weights (views), and the kernel's block starts per size
        bounds = self.patterns.bounds
        self._rows = [self.X[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        self._weights = [
            None if self.sample_weight is None else self.sample_weight[lo:hi]
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        self._starts = {}
        self._shares = None  # the patterns of each thread (_pattern_shares)

    def __enter__(self):
        """Hold BLAS to one thread for a run of :meth:`step` calls (as :class:`gmmlib.EMEngine`)."""
        self._threads.__enter__()
        if self.patterns.n_patterns > 1 or self.n_samples > MAX_BLOCK:
            self._threads.hold_blas()
        return self

    def __exit__(self, *exc):
        return self._threads.__exit__(*exc)

    # -- one iteration ---------------------------------------------------------------------
    def mean_log_likelihood(self, weights, means, prec_chol) -> float:
        """Average (weighted) observed-data log P(x_i,o | θ) over the rows."""
        return self._pass(weights, means, prec_chol, scores_only=True)[0] / self.total_weight

    def step(self, weights, means, prec_chol):
        """One EM iteration from θ = (weights, means, prec_chol), as :meth:`gmmlib.EMEngine.step`.

        Returns
        -------
        mean_log_likelihood : float
            Average observed-data log-likelihood of θ (the parameters at the start).
        weights, means, covariances : ndarray
            :func:`gmmlib.m_step_missing` from the responsibilities under θ.
        """
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        loglik, counts, sum_y, sum_yy = self._pass(weights, means, prec_chol, scores_only=False)
        K, d = means.shape
        new = params_from_sums(
            counts,
            sum_y,
            sum_yy,
            means,
            _identity_factors(self.covariance_type, K, d),
            self.covariance_type,
            self.reg_covar,
            self._mean_weight,
        )
        if _cancellation(counts, sum_y, sum_yy, self.reg_covar) > _MAX_LOSS:
            new = self._about(new[1], weights, means, prec_chol)
        check_finite_covariances(new[2])
        return (loglik / self.total_weight, *new)

    def _covariances(self, prec_chol):
        """Σ_k from the precision factors: (K, d, d) for full and tied, variances (K, d)."""
        prec_chol = np.asarray(prec_chol, dtype=np.float64)
        d = self.n_features
        if self.covariance_type in ("full", "tied"):
            # U Uᵀ = Σ⁻¹, so Σ = L Lᵀ with L = U⁻ᵀ (a triangular inverse, LAPACK trtri)
            factors = np.stack(
                [lapack.dtrtri(u, lower=0)[0].T for u in np.reshape(prec_chol, (-1, d, d))]
            )
            return factors @ factors.transpose(0, 2, 1)
        variances = 1.0 / prec_chol**2
        return variances[:, None] * np.ones(d) if variances.ndim == 1 else variances

    def _pass(self, weights, means, prec_chol, scores_only):
        """(Σ w log P(x_o), N_k, Σ wγ(x̂ - μ_k), Σ wγ((x̂ - μ_k)(x̂ - μ_k)ᵀ + C)) under θ.

        The last is (K, d, d), or its diagonal (K, d) for diag and spherical; the sums are
        about the old means, in the data's coordinates. The patterns are shared among the
        threads so that each gets about as many rows (``_pattern_shares``), and each
        thread builds the constants of its own patterns.
        """
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        K, d = means.shape
        cov = self._covariances(prec_chol)
        if self.covariance_type == "tied":
            cov = np.broadcast_to(cov, (K, d, d))
        theta = _Theta(weights, means, cov, weights @ means)  # rows read as x - r: the engine's
        share = partial(self._share, theta=theta, scores_only=scores_only)
        shares = self._pattern_shares()

        def work(threads, workspace):  # BlockThreads.map hands each thread its index
            return share(np.concatenate([shares[t] for t in threads]), workspace)

        parts = self._threads.map(work, np.arange(len(shares)))
        return tuple(sum(field) for field in zip(*parts, strict=True))

    def _pattern_shares(self) -> list:
        """The patterns of each thread, balanced by their rows: largest first, each to the
        thread with the fewest rows so far (made once per engine).

        ``BlockThreads.map`` cuts what it is given into consecutive runs, which suits
        blocks of rows; patterns sorted by size would give the first thread nearly every
        row (with 20 % of the entries missing at d = 8, 97 % of them in the larger half
        of the patterns), and the engine ran at the speed of one thread.
        """
        n_shares = min(self._threads.n_threads, self.patterns.n_patterns)
        if self._shares is None or len(self._shares) != n_shares:
            lightest = [(0, t) for t in range(n_shares)]  # a heap of (rows, thread)
            shares = [[] for _ in range(n_shares)]
            sizes = self._sizes.tolist()
            for p in np.argsort(-self._sizes, kind="stable").tolist():
                rows, t = heapq.heappop(lightest)
                shares[t].append(p)
                heapq.heappush(lightest, (rows + sizes[p], t))
            self._shares = [np.array(share, dtype=np.intp) for share in shares]
        return self._shares

    def _share(self, patterns, workspace, *, theta, scores_only):
        """``_pass``'s sums over some patterns (one thread's share), in chunks of patterns."""
        weights, means, cov, ref = theta
        K, d = means.shape
        full = self.covariance_type in ("full", "tied")
        with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
            log_weights = np.log(weights)
        loglik, counts = 0.0, np.zeros(K)
        sum_y, sum_yy = np.zeros((K, d)), np.zeros((K, d, d) if full else (K, d))
        step = max(1, _CHUNK_MATRICES // (K * d * d))
        for start in range(0, patterns.size, step):
            chunk = patterns[start : start + step]
            observed = self.patterns.observed[chunk].astype(np.float64)
            if full:
                constants, maps = self._pattern_constants(
                    log_weights, means, cov, observed, ref, workspace
                )
            else:
                constants, maps = _diag_constants(log_weights, means, cov, observed, ref)
            logliks, first, second = self._kernel_sums(
                chunk, constants, ref, K, scores_only, workspace
            )
            loglik += float(logliks.sum())
            if scores_only:
                continue
            n = first[:, d, :]  # (P, K): Σ_i w_i γ_ik per pattern
            # Σ wγ (x_o - μ_k,o), zero in the missing coordinates
            sum_x = first[:, :d, :].transpose(0, 2, 1) - n[:, :, None] * (means - ref)
            sum_x *= observed[:, None, :]
            counts += n.sum(axis=0)
            if full:
                H, C = maps  # x̂ - μ_k = H z, and the conditional covariances
                sum_z = np.einsum("pkij,pkj->pki", constants.whitening_matrices, sum_x)
                sum_y += np.einsum("pkij,pkj->ki", H, sum_z)
                scatter = H @ (2.0 * second) @ H.transpose(0, 1, 3, 2)  # kernels sum z/√2
                scatter += n[:, :, None, None] * C
                sum_yy += scatter.sum(axis=0)
            else:
                sum_y += sum_x.sum(axis=0)
                # observed coordinates: Σ wγ (x - μ)² = Σ wγ z² σ²; missing ones: x̂ = μ, C = σ²
                sum_yy += np.einsum("pkj,kj,pj->kj", 2.0 * second, cov, observed)
                sum_yy += np.einsum("pk,kj,pj->kj", n, cov, 1.0 - observed)
        return loglik, counts, sum_y, sum_yy

    def _pattern_constants(self, log_weights, means, cov, observed, ref, workspace):
        """The module's ``_full_constants``; with the Numba backend, their compiled version
        (``compiled_full_constants``), written into the thread's buffers."""
        if self._kernels.backend != "numba":
            return _full_constants(log_weights, means, cov, observed, ref)
        from ._missing_kernels import compiled_full_constants

        (P, d), K = observed.shape, means.shape[0]
        whitening = workspace.array("pattern_whitening", (P, K, d, d + 1))
        log_const = workspace.array("pattern_log_const", (P, K))
        inverse, H, C = (workspace.array(f"pattern_{name}", (P, K, d, d)) for name in "LHC")
        compiled_full_constants(
            log_weights, means, cov, observed, ref, _HALF, LOG_2PI, whitening, log_const,
            inverse, H, C,
        )  # fmt: skip
        return _FullPatternConstants(whitening.reshape(P, K * d, d + 1), log_const, inverse), (H, C)

    def _kernel_sums(self, chunk, constants, ref, n_components, scores_only, workspace):
        """Every pattern of ``chunk`` through the block kernel, in this thread: (log-likelihoods
        (P,), first sums (P, d + 1, K), second sums (P, K, d, d) or (P, K, d))."""
        from ._kernels import NUMPY_KERNELS

        d, K = self.n_features, n_components
        full = self.covariance_type in ("full", "tied")
        logliks = np.zeros(chunk.size)
        first = np.zeros((chunk.size, d + 1, K))
        second = np.zeros((chunk.size, K, d, d) if full else (chunk.size, K, d))
        starts = self._block_starts(K)

        def run(kernels, indices):
            kernel = kernels.full if full else kernels.diag
            for j in indices:
                p = chunk[j]
                block_rows, block_starts = starts[p]
                logliks[j] = kernel(
                    self._rows[p], self._weights[p], block_starts, block_rows,
                    *constants.kernel_arguments(j, ref), first[j], second[j], scores_only,
                    workspace=workspace,
                )  # fmt: skip

        if self._kernels.backend == "numba":
            from ._missing_kernels import compiled_diag_pattern_sums, compiled_full_pattern_sums

            grouped = compiled_full_pattern_sums if full else compiled_diag_pattern_sums
            block = default_block_size(K, d, "numba")
            bounds = self.patterns.bounds
            lows, highs = bounds[chunk], bounds[chunk + 1]
            coefficients = self._expansion(constants, K)
            if coefficients is not None:
                from ._missing_kernels import compiled_expanded_pattern_sums

                expanded = np.zeros((chunk.size, coefficients.shape[-1], K))
                logliks[:] = compiled_expanded_pattern_sums(
                    self.X, self.sample_weight, lows, highs, block, coefficients, ref,
                    expanded, scores_only,
                )  # fmt: skip
                if not scores_only:
                    sums = expanded_full_sums(None, expanded, constants)
                    first[...], second[...] = sums.first, sums.second
            else:
                logliks[:] = grouped(
                    self.X, self.sample_weight, lows, highs, block,
                    *constants.kernel_arguments(slice(None), ref), first, second, scores_only,
                )  # fmt: skip
        else:
            run(self._kernels, range(chunk.size))
        if self._kernels.backend != "numpy":
            lost = ~(
                np.isfinite(logliks)
                & np.isfinite(first).all(axis=(1, 2))
                & np.isfinite(second).reshape(chunk.size, -1).all(axis=1)
            )
            if lost.any():
                # a row that no component explains: NumPy's kernel gives it to the
                # nearest component, as in the engine
                first[lost], second[lost] = 0.0, 0.0
                run(NUMPY_KERNELS, np.flatnonzero(lost))
        return logliks, first, second

    def _expansion(self, constants, n_components):
        """The patterns' coefficients for the expanded kernel (full covariances, as the
        engine's: from ``_FULL_EXPANSION_MIN_COMPONENTS`` components and up to
        ``_FULL_EXPANSION_MAX_FEATURES`` features), or None. A missing coordinate's
        whitening column is zero, so are its coefficients: the filled-in entries of X
        enter no log-density, and the moments they enter are multiplied by zero."""
        if (
            self.covariance_type != "full"
            or self.n_features > _FULL_EXPANSION_MAX_FEATURES
            or n_components < _FULL_EXPANSION_MIN_COMPONENTS
        ):
            return None
        return full_expansion_coefficients((constants.whitening, None, constants.log_const))

    def _block_starts(self, n_components):
        """(rows per block, block starts) of every pattern, for blocks sized as the engine's."""
        block = default_block_size(n_components, self.n_features, self._kernels.backend)
        if block not in self._starts:
            self._starts[block] = [
                (min(block, n), np.arange(0, n, max(min(block, n), 1), dtype=np.int64))
                for n in self._sizes.tolist()
            ]
        return self._starts[block]

    def _about(self, centres, weights, means, prec_chol):
        """The M-step with the expected sums taken about ``centres`` (the new means), by the
        direct computation (``gmmlib._missing``): for an iteration whose means moved far."""
        K, d = means.shape
        X = self.X.copy()
        for p in range(self.patterns.n_patterns):
            lo, hi = self.patterns.bounds[p], self.patterns.bounds[p + 1]
            X[lo:hi, ~self.patterns.observed[p]] = np.nan
        grouped = Patterns(np.arange(self.n_samples), self.patterns.bounds, self.patterns.observed)
        cov = self._covariances(prec_chol)
        if self.covariance_type in ("diag", "spherical"):
            cov = full_covariances(cov, "diag", K, d)
        elif self.covariance_type == "tied":
            cov = np.broadcast_to(cov, (K, d, d))
        log_resp, _ = _observed_e_step(X, weights, means, cov, grouped)
        resp = np.exp(log_resp)
        if self.sample_weight is not None:
            resp *= self.sample_weight[:, None]
        counts, sum_y, sum_yy = _expected_sums(X, resp, means, cov, grouped, centres)
        return _params_from_expected_sums(
            counts, sum_y, sum_yy, centres, self.covariance_type, self.reg_covar, self._mean_weight
        )


class _Theta(NamedTuple):
    """The parameters of an iteration as the patterns' constants need them."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d) for full and tied, variances (K, d) otherwise
    ref: np.ndarray  # (d,): Σ_k p_k μ_k, the engine's reference point


class _FullPatternConstants:
    """The kernel constants of a chunk of patterns, full and tied covariances."""

    def __init__(self, whitening, log_const, whitening_matrices):
        self.whitening = whitening  # (P, K d, d + 1), as FullConstants.whitening
        self.log_const = log_const  # (P, K)
        self.whitening_matrices = whitening_matrices  # (P, K, d, d): L⁻¹ in the observed block

    def kernel_arguments(self, j, ref):
        return self.whitening[j], ref, self.log_const[j]


class _DiagPatternConstants:
    """The kernel constants of a chunk of patterns, diagonal and spherical covariances."""

    def __init__(self, scale, shift, log_const):
        self.scale, self.shift, self.log_const = scale, shift, log_const  # (P, K, d), (P, K)

    def kernel_arguments(self, j, ref):
        return self.scale[j], self.shift[j], ref, self.log_const[j]


def _full_constants(log_weights, means, cov, observed, ref):
    """Constants of the patterns ``observed`` (P, d) of 0 and 1, and the maps (H, C).

    The Cholesky factor of D_o Σ_k D_o + D_m is that of Σ_k,oo in the observed block and
    the identity in the missing one (exactly: the zeros stay zeros), so one batched
    factorisation serves patterns of every size.
    """
    P, d = observed.shape
    K = means.shape[0]
    both_observed = observed[:, :, None] * observed[:, None, :]  # (P, d, d)
    missing = 1.0 - observed
    matrices = cov[None] * both_observed[:, None]
    diagonal = np.arange(d)
    matrices[:, :, diagonal, diagonal] += missing[:, None, :]
    chol = _cholesky(matrices)  # (P, K, d, d)
    inverse = _lower_inverse(chol) * both_observed[:, None]  # L_oo⁻¹, zeros elsewhere
    log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)  # ½ log|Σ_k,oo|
    log_const = log_weights[None] - log_det - 0.5 * LOG_2PI * observed.sum(axis=1)[:, None]
    whitening = np.empty((P, K, d, d + 1))
    whitening[..., :d] = inverse
    whitening[..., d] = -np.einsum("pkij,kj->pki", inverse, means - ref)
    whitening *= _HALF
    # V = D_m Σ D_o L⁻ᵀ: the missing block of H, whose observed block is L
    V = (cov[None] * (missing[:, :, None] * observed[:, None, :])[:, None]) @ inverse.transpose(
        0, 1, 3, 2
    )
    H = chol * both_observed[:, None] + V
    conditional = cov[None] * (missing[:, :, None] * missing[:, None, :])[:, None]
    conditional -= V @ V.transpose(0, 1, 3, 2)  # Σ_mm - Σ_mo Σ_oo⁻¹ Σ_om
    constants = _FullPatternConstants(whitening.reshape(P, K * d, d + 1), log_const, inverse)
    return constants, (H, conditional)


def _cholesky(matrices):
    """Lower Cholesky factors of a stack (..., d, d) of positive-definite matrices.

    Column by column, each step vectorised over the stack: for the many small matrices
    of the patterns, one LAPACK call per matrix would cost more than the arithmetic.
    """
    d = matrices.shape[-1]
    chol = np.zeros_like(matrices)
    for j in range(d):
        done = chol[..., j, :j]
        pivot = np.sqrt(matrices[..., j, j] - np.einsum("...i,...i->...", done, done))
        chol[..., j, j] = pivot
        if j + 1 < d:
            below = matrices[..., j + 1 :, j] - np.einsum(
                "...ri,...i->...r", chol[..., j + 1 :, :j], done
            )
            chol[..., j + 1 :, j] = below / pivot[..., None]
    return chol


def _lower_inverse(chol):
    """The inverses of a stack (..., d, d) of lower-triangular matrices (lower-triangular),
    by forward substitution vectorised over the stack."""
    d = chol.shape[-1]
    inverse = np.zeros_like(chol)
    for i in range(d):
        # row i of L⁻¹: (e_i - Σ_{j<i} L_ij (L⁻¹)_j) / L_ii
        row = -np.einsum("...j,...jc->...c", chol[..., i, :i], inverse[..., :i, :])
        row[..., i] += 1.0
        inverse[..., i, :] = row / chol[..., i, i, None]
    return inverse


def _diag_constants(log_weights, means, variances, observed, ref):
    """Constants of the patterns ``observed`` (P, d), diagonal variances (K, d)."""
    P, d = observed.shape
    scale_k = 1.0 / np.sqrt(variances)  # (K, d)
    scale = _HALF * scale_k[None] * observed[:, None, :]
    shift = scale * (means - ref)[None]
    log_const = (
        log_weights[None]
        + np.einsum("kj,pj->pk", np.log(scale_k), observed)
        - 0.5 * LOG_2PI * observed.sum(axis=1)[:, None]
    )
    return _DiagPatternConstants(scale, shift, log_const), None


def _cancellation(counts, sum_y, sum_yy, reg_covar) -> float:
    """Largest factor by which the update about the old means cancels a new variance.

    Entry j of component k: S_jj / (S_jj - s_j² / N_k + N_k reg_covar), the sums about
    the old mean (S: second, s: first); the denominator is N_k times the new variance.
    1 for an empty component, inf when rounding left nothing (see ``gmmlib._engine``).
    """
    second = np.diagonal(sum_yy, axis1=1, axis2=2) if sum_yy.ndim == 3 else sum_yy
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        kept = second - sum_y**2 / counts[:, None] + counts[:, None] * reg_covar
        loss = np.where(kept > 0, second / kept, np.inf)
    loss[~(second > 0) | ~(counts[:, None] > 0)] = 1.0
    return float(loss.max())
