r"""Compiled block kernels for :class:`gmmlib.EMEngine` (optional: needs Numba).

The NumPy block kernel in :mod:`gmmlib._engine` makes about fifteen passes over
each block, most of them elementwise over a (K d, B) array: the squared norms,
the log-sum-exp, the γ-scaling before the scatter product. Each pass reads and
writes the whole array, and each is a separate NumPy call. Here the same
arithmetic is written as loops that Numba compiles once: every elementwise
step runs while its operands are in the core's cache, the matrix products
stay BLAS calls (``np.dot``, for which Numba calls scipy's BLAS), and one call
processes all of a thread's blocks with the GIL released, so two threads run
truly in parallel.

The kernels compute the same sums as the NumPy kernel, in a different order of
addition: results agree to rounding (the tests compare both with the formula
functions to 1e-10).

Numba is imported when this module is; :mod:`gmmlib._engine` imports it only
if Numba is installed. Compiled code is cached on disk next to this file
(``cache=True``): the first use in a fresh checkout compiles for some seconds,
later processes load it.
"""

from __future__ import annotations

import numpy as np

# Numba's np.dot calls scipy's BLAS through scipy.linalg.cython_blas. Loading it
# now means that threadpoolctl sees that BLAS library too when the engine holds
# BLAS to one thread per worker (it limits only libraries already loaded).
import scipy.linalg.cython_blas  # noqa: F401
from numba import njit

# Reassociation lets the compiler vectorise the sums over a block's rows; the
# order of additions differs from NumPy's by rounding only. No 'nnan'/'ninf':
# a component with zero weight has log-density -inf, which must stay exact.
_FASTMATH = {"reassoc", "contract"}

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·ln2_hi is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_FAST_MIN = -708.0  # below it 2^n would be subnormal: use the library exp


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def exp_nonpositive(x, out, bits):
    """out[i] = exp(x[i]) for x[i] ≤ 0 (flat arrays), to about one unit in the last place.

    Numba's np.exp is a library call per element, which the compiler cannot
    vectorise (measured here: 10 ns per element; the log-sum-exp takes K of
    them per row, which made it a third of the time of an iteration). This one is plain
    arithmetic and vectorises: x = n ln 2 + r with r between ± ln2 / 2 (Cody and
    Waite's two-part ln 2 keeps r exact), exp(r) by its Taylor polynomial of
    degree 13 (truncation error below 2^-56 on that interval), times 2^n made
    from its bits (``bits``: int64 scratch of the same length). Below -708,
    where 2^n would be subnormal, the library exp is used (rare in EM: such
    terms are below 1e-307 of the row's largest).
    """
    size = x.shape[0]
    scale = bits.view(np.float64)
    for i in range(size):
        xi = max(x[i], _EXP_FAST_MIN)
        n = np.floor(xi * _INV_LN2 + 0.5)
        r = (xi - n * _LN2_HI) - n * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        out[i] = p * r + 1.0
        bits[i] = (np.int64(n) + 1023) << 52  # the float64 2^n
    for i in range(size):
        out[i] *= scale[i]
    for i in range(size):
        if x[i] < _EXP_FAST_MIN:
            out[i] = np.exp(x[i])


@njit(inline="always", fastmath=_FASTMATH)
def _load_block(X, start, rows, ref, xt):
    """xt[:d] = (x - r)ᵀ for rows start:start+rows, xt[d] = 1 (features × samples)."""
    d = X.shape[1]
    for b in range(rows):
        for j in range(d):
            xt[j, b] = X[start + b, j] - ref[j]
        xt[d, b] = 1.0


@njit(inline="always", fastmath=_FASTMATH)
def _responsibilities(lj, const, sw, start, rows, top, tot, e, bits, scores_only):
    """lj holds half Mahalanobis distances (K, rows) on entry, w_i γ_ik on exit.

    Returns Σ_i w_i log P(x_i | θ) over the block, as the NumPy kernel: a
    log-sum-exp over components with the row maximum taken out.
    """
    K = lj.shape[0]
    for b in range(rows):
        top[b] = -np.inf
    for k in range(K):
        c = const[k]
        for b in range(rows):
            v = c - lj[k, b]  # log p_k + log φ(x_i | μ_k, Σ_k)
            lj[k, b] = v
            top[b] = max(top[b], v)
    for k in range(K):
        for b in range(rows):
            lj[k, b] -= top[b]
    exp_nonpositive(lj.reshape(K * rows), e[: K * rows], bits[: K * rows])
    ek = e[: K * rows].reshape(K, rows)
    for b in range(rows):
        tot[b] = 0.0
    for k in range(K):
        for b in range(rows):
            v = ek[k, b]
            lj[k, b] = v
            tot[b] += v
    weighted = sw.shape[0] > 0
    loglik = 0.0
    for b in range(rows):
        w = sw[start + b] if weighted else 1.0
        loglik += w * (np.log(tot[b]) + top[b])
        tot[b] = w / tot[b]
    if not scores_only:
        for k in range(K):
            for b in range(rows):
                lj[k, b] *= tot[b]
    return loglik


@njit(inline="always", fastmath=_FASTMATH)
def _first_sums(xt, lj, sx, sx_block):
    """sx += [x - r; 1] γᵀ: Σ_i γ_ik (x_i - r) and N_k, all components in one BLAS product."""
    np.dot(xt, lj.T, sx_block)
    for j in range(sx.shape[0]):
        for k in range(sx.shape[1]):
            sx[j, k] += sx_block[j, k]


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def full_block_sums(
    X, sw, starts, block, W, ref, const,
    xt_buf, z_buf, lj_buf, g_buf, tmp, top, tot, e, bits,
    sx, stat, mode,
):  # fmt: skip
    """The blocks starting at ``starts``: E-step, then (mode 1) add the full-covariance sums.

    ``W`` (K d, d + 1) maps [x - r; 1] to every component's whitened vector
    z_k = U_kᵀ (x - μ_k) / √2. Adds Σ_i γ_ik [x_i - r; 1] to ``sx`` (d + 1, K)
    and Σ_i γ_ik z_ik z_ikᵀ to ``stat`` (K, d, d); returns Σ_i w_i log P(x_i).
    ``mode`` 0 computes the log-likelihood only. Buffers are flat and reshaped
    per block, so the last, shorter block is contiguous too.
    """
    N, d = X.shape
    K = const.shape[0]
    sx_block = np.empty((d + 1, K))
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buf[: (d + 1) * rows].reshape(d + 1, rows)
        z = z_buf[: K * d * rows].reshape(K * d, rows)
        lj = lj_buf[: K * rows].reshape(K, rows)
        g = g_buf[: d * rows].reshape(d, rows)
        _load_block(X, start, rows, ref, xt)
        np.dot(W, xt, z)  # all components' whitened vectors: one BLAS product
        for k in range(K):
            # Σ_j z_kj², two rows of z per pass over lj (fewer loads and stores of lj)
            r = k * d
            for b in range(rows):
                lj[k, b] = z[r, b] * z[r, b]
            for r in range(k * d + 1, (k + 1) * d - 1, 2):
                for b in range(rows):
                    lj[k, b] += z[r, b] * z[r, b] + z[r + 1, b] * z[r + 1, b]
            if d % 2 == 0 and d > 1:
                r = (k + 1) * d - 1
                for b in range(rows):
                    lj[k, b] += z[r, b] * z[r, b]
        loglik += _responsibilities(lj, const, sw, start, rows, top, tot, e, bits, mode == 0)
        if mode == 0:
            continue
        _first_sums(xt, lj, sx, sx_block)
        for k in range(K):
            zk = z[k * d : (k + 1) * d]
            for j in range(d):
                for b in range(rows):
                    g[j, b] = zk[j, b] * lj[k, b]
            np.dot(g, zk.T, tmp)  # Σ_i γ_ik z zᵀ: one BLAS product per component
            for i in range(d):
                for j in range(d):
                    stat[k, i, j] += tmp[i, j]
    return loglik


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def diag_block_sums(
    X, sw, starts, block, scale, shift, ref, const,
    xt_buf, z_buf, lj_buf, top, tot, e, bits,
    sx, second, mode,
):  # fmt: skip
    """As :func:`full_block_sums` for diagonal and spherical covariances.

    z_kj = scale_kj (x_j - r_j) - shift_kj; adds Σ_i γ_ik z_ik² to ``second`` (K, d).
    """
    N, d = X.shape
    K = const.shape[0]
    sx_block = np.empty((d + 1, K))
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buf[: (d + 1) * rows].reshape(d + 1, rows)
        z = z_buf[: K * d * rows].reshape(K, d, rows)
        lj = lj_buf[: K * rows].reshape(K, rows)
        _load_block(X, start, rows, ref, xt)
        for k in range(K):
            for b in range(rows):
                lj[k, b] = 0.0
            for j in range(d):
                for b in range(rows):
                    v = scale[k, j] * xt[j, b] - shift[k, j]
                    v = v * v
                    z[k, j, b] = v
                    lj[k, b] += v
        loglik += _responsibilities(lj, const, sw, start, rows, top, tot, e, bits, mode == 0)
        if mode == 0:
            continue
        _first_sums(xt, lj, sx, sx_block)
        for k in range(K):
            for j in range(d):
                acc = 0.0
                for b in range(rows):
                    acc += z[k, j, b] * lj[k, b]
                second[k, j] += acc
    return loglik
