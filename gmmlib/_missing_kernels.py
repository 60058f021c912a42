"""Compiled kernels for EM with missing values: the engine's kernels, a group of rows at a time.

``gmmlib._missing_engine`` runs each pattern of missing entries through the block kernels
of ``gmmlib._kernels`` with constants of its own. Called from Python once per pattern, the
kernel would hold the GIL between patterns; these call it for all of a thread's patterns
in one compiled loop, with the GIL released. A module of its own, imported when the
first fit with missing values runs (it imports Numba, as ``gmmlib._kernels`` does), so
that the compiled kernels of ``gmmlib._kernels``, cached on disk by source file, stay
valid.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._kernels import (
    _FASTMATH,
    _cached_njit,
    compiled_diag_sums,
    compiled_expanded_sums,
    compiled_full_sums,
    njit,
)


@njit(inline="always")
def _group_blocks(lo, hi, block):
    """(rows per block, block starts) of the group X[lo:hi], as the engine's blocks."""
    rows = min(block, hi - lo)
    return rows, np.arange(0, hi - lo, rows)


@_cached_njit(depends_on=(_kernels.__file__,), nogil=True, fastmath=_FASTMATH)
def compiled_full_pattern_sums(
    X, sample_weight, lows, highs, block, whitening, ref, log_const, first, second, scores_only
):
    """``compiled_full_sums`` on the rows ``X[lows[j]:highs[j]]`` of each group j, with the
    group's constants ``whitening[j]`` and ``log_const[j]``, into ``first[j]`` and
    ``second[j]``; returns each group's log-likelihood.

    For ``gmmlib._missing_engine``: a group is a pattern of missing entries, whose
    constants read its observed coordinates only. One call covers a thread's patterns
    with the GIL released (a call per pattern from Python would hold it in between).
    """
    out = np.empty(lows.shape[0])
    for j in range(lows.shape[0]):
        lo, hi = lows[j], highs[j]
        rows, starts = _group_blocks(lo, hi, block)
        if sample_weight is None:  # a branch per type: Numba compiles the one that applies
            out[j] = compiled_full_sums(
                X[lo:hi], None, starts, rows, whitening[j], ref, log_const[j], first[j],
                second[j], scores_only,
            )  # fmt: skip
        else:
            out[j] = compiled_full_sums(
                X[lo:hi], sample_weight[lo:hi], starts, rows, whitening[j], ref, log_const[j],
                first[j], second[j], scores_only,
            )  # fmt: skip
    return out


@_cached_njit(depends_on=(_kernels.__file__,), nogil=True, fastmath=_FASTMATH)
def compiled_diag_pattern_sums(
    X, sample_weight, lows, highs, block, scale, shift, ref, log_const, first, second, scores_only
):
    """``compiled_diag_sums`` group by group, as ``compiled_full_pattern_sums``."""
    out = np.empty(lows.shape[0])
    for j in range(lows.shape[0]):
        lo, hi = lows[j], highs[j]
        rows, starts = _group_blocks(lo, hi, block)
        if sample_weight is None:
            out[j] = compiled_diag_sums(
                X[lo:hi], None, starts, rows, scale[j], shift[j], ref, log_const[j], first[j],
                second[j], scores_only,
            )  # fmt: skip
        else:
            out[j] = compiled_diag_sums(
                X[lo:hi], sample_weight[lo:hi], starts, rows, scale[j], shift[j], ref,
                log_const[j], first[j], second[j], scores_only,
            )  # fmt: skip
    return out


@_cached_njit(depends_on=(_kernels.__file__,), nogil=True, fastmath=_FASTMATH)
def compiled_expanded_pattern_sums(
    X, sample_weight, lows, highs, block, coefficients, ref, first, scores_only
):
    """``compiled_expanded_sums`` group by group, with the group's ``coefficients[j]``
    (zero on the missing coordinates), into ``first[j]``; as ``compiled_full_pattern_sums``."""
    out = np.empty(lows.shape[0])
    for j in range(lows.shape[0]):
        lo, hi = lows[j], highs[j]
        rows, starts = _group_blocks(lo, hi, block)
        if sample_weight is None:
            out[j] = compiled_expanded_sums(
                X[lo:hi], None, starts, rows, coefficients[j], ref, first[j], scores_only
            )
        else:
            out[j] = compiled_expanded_sums(
                X[lo:hi], sample_weight[lo:hi], starts, rows, coefficients[j], ref, first[j],
                scores_only,
            )  # fmt: skip
    return out


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_full_constants(
    log_weights, means, cov, observed, ref, half, log_2pi, whitening, log_const, inverse, H,
    conditional
):  # fmt: skip
    """``gmmlib._missing_engine._full_constants``'s arrays, pattern by pattern and
    component by component in one compiled loop.

    The NumPy version computes them for all the patterns at once, a column of the
    Cholesky factors or a row of their inverses per step over (P, K, d, d) stacks, on
    the whole d × d matrices (the missing block made the identity); for the few hundred
    patterns of eight features that is thousands of 8 × 8 matrices, and its temporaries
    and einsum calls took about a third of an iteration (100 000 × 8 × 8, 20 % missing).
    Here each matrix is worked on its observed block only: L, the Cholesky factor of
    Σ_k,oo, its inverse by forward substitution, then V = Σ_k,mo L⁻ᵀ, H (L in the
    observed block, V in the missing rows) and C = Σ_k,mm - V Vᵀ; every entry outside
    those blocks is 0, as there. A block that is not positive definite gives NaN, as
    there.

    Writes whitening (P, K, d, d + 1) (already times ``half``), log_const (P, K), the
    inverses (P, K, d, d), H and C (P, K, d, d), each zero outside its block: buffers
    that the engine keeps from one iteration to the next (new arrays of a few MiB would
    be new pages, whose first touch took three times as long as the arithmetic).
    """
    P, d = observed.shape
    K = means.shape[0]
    whitening[...] = 0.0
    inverse[...] = 0.0
    H[...] = 0.0
    conditional[...] = 0.0
    chol, inv, V = np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    seen, unseen = np.empty(d, np.intp), np.empty(d, np.intp)
    for p in range(P):
        n_o, n_m = 0, 0
        for j in range(d):
            if observed[p, j] != 0.0:
                seen[n_o] = j
                n_o += 1
            else:
                unseen[n_m] = j
                n_m += 1
        o, m = seen[:n_o], unseen[:n_m]
        for k in range(K):
            log_det = 0.0  # log|L|, ½ log|Σ_k,oo|
            for a in range(n_o):
                pivot = cov[k, o[a], o[a]]
                for b in range(a):
                    pivot -= chol[a, b] * chol[a, b]
                pivot = np.sqrt(pivot)  # NaN if not positive definite
                chol[a, a] = pivot
                log_det += np.log(pivot)
                for r in range(a + 1, n_o):
                    below = cov[k, o[r], o[a]]
                    for b in range(a):
                        below -= chol[r, b] * chol[a, b]
                    chol[r, a] = below / pivot
            log_const[p, k] = log_weights[k] - log_det - 0.5 * log_2pi * n_o
            for a in range(n_o):  # row a of L⁻¹: (e_a - Σ_{b<a} L_ab (L⁻¹)_b) / L_aa
                for c in range(a + 1):
                    row = 1.0 if c == a else 0.0
                    for b in range(c, a):
                        row -= chol[a, b] * inv[b, c]
                    inv[a, c] = row / chol[a, a]
            for a in range(n_o):
                shifted = 0.0
                for c in range(a + 1):
                    inverse[p, k, o[a], o[c]] = inv[a, c]
                    whitening[p, k, o[a], o[c]] = half * inv[a, c]
                    shifted += inv[a, c] * (means[k, o[c]] - ref[o[c]])
                whitening[p, k, o[a], d] = -half * shifted
                for c in range(a + 1):
                    H[p, k, o[a], o[c]] = chol[a, c]
            for a in range(n_m):  # V = Σ_k,mo L⁻ᵀ: the missing rows of H
                for c in range(n_o):
                    total = 0.0
                    for b in range(c + 1):
                        total += cov[k, m[a], o[b]] * inv[c, b]
                    V[a, c] = total
                    H[p, k, m[a], o[c]] = total
            for a in range(n_m):  # C = Σ_k,mm - V Vᵀ
                for c in range(n_m):
                    total = 0.0
                    for b in range(n_o):
                        total += V[a, b] * V[c, b]
                    conditional[p, k, m[a], m[c]] = cov[k, m[a], m[c]] - total
