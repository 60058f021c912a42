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
