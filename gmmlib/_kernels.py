r"""The block kernels of :class:`gmmlib.EMEngine`: the same arithmetic twice.

A kernel runs the E-step over some blocks of rows and adds up what the M-step
needs. Two implementations, with one signature:

* the NumPy kernels (``numpy_full_sums``, ``numpy_diag_sums``): about fifteen
  NumPy calls per block, most of them elementwise passes over a (K d, B) array;
* the compiled kernels (``compiled_full_sums``, ``compiled_diag_sums``; optional,
  they need Numba): the same arithmetic as loops that Numba compiles once, so every
  elementwise step runs while its operands are in the core's cache. The matrix
  products stay BLAS calls (``np.dot``, for which Numba calls scipy's BLAS), and one
  call processes all of a thread's blocks with the GIL released.

The engine also has compiled kernels that sum about the reference point r rather
than about each mean, used while the means lie within ~100 standard deviations of r
(``_EXPANSION_MAX`` in ``gmmlib._engine``): ``compiled_tied_sums`` (one whitening for
all components) and ``compiled_expanded_sums`` (diagonal and spherical covariances:
the log-densities as one matrix product with [x - r; 1; (x - r)²]; full covariances
with many components: with [u; 1; u_a u_b], u = x - r); and per-row
kernels for a fitted model (``compiled_full_rows``, ``compiled_diag_rows``,
``compiled_expanded_rows``).

Both add in a different order, so they agree to rounding; the tests compare both
with the formula functions to 1e-10. Every kernel is called as ::

    log_likelihood = kernel(X, sample_weight, starts, block, *constants,
                            first, second, scores_only)

for the blocks of ``block`` rows of ``X`` that start at ``starts``. ``constants`` are
``(whitening, ref, log_const)`` for full and tied covariances, ``(scale, shift, ref,
log_const)`` for diagonal and spherical ones (see ``gmmlib._engine``). The return
value is :math:`\sum_i w_i \log P(x_i \mid \theta)` over those rows; unless
``scores_only``, the kernel adds :math:`\sum_i w_i\gamma_{ik} [x_i - r; 1]` to
``first`` (d + 1, K) and the second-moment sums of the whitened vectors to ``second``
((K, d, d), or (K, d) for diagonal covariances). The engine also passes
``workspace=``, the calling thread's ``gmmlib._blocks.Workspace``: the NumPy kernels
keep their buffers (a few MiB) in it from one pass to the next, while the compiled
ones allocate their smaller buffers once per call (``COMPILED_KERNELS`` wraps them to
take the argument).

Numba is imported with this module when it is installed (the engine imports the
module when it is first built, not with gmmlib). Compiled code is cached on disk next
to this file (``cache=True``): the first use in a fresh checkout compiles for some
seconds, later processes load it. Where Numba finds no writable cache directory (a
read-only install, an unwritable home) the kernels are compiled in each process
instead, with a warning (``_cached_njit``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# Numba's np.dot calls scipy's BLAS through scipy.linalg.cython_blas. Loading it with
# this module means that threadpoolctl sees that BLAS library too when the engine
# holds BLAS to one thread (it limits only the libraries already loaded).
import scipy.linalg.cython_blas  # noqa: F401

from ._blocks import Workspace

try:
    from numba import njit
except ImportError:  # Numba is optional (gmmlib[fast]); the NumPy kernels need none

    def njit(*args, **options):
        """Without Numba the compiled kernels stay Python functions; the engine never calls them."""
        return lambda function: function

    _HAVE_NUMBA = False
else:
    _HAVE_NUMBA = True


def _cached_njit(depends_on=(), **options):
    """``njit(cache=True, **options)``, or without the cache where Numba cannot write one.

    Numba looks for a writable directory when it decorates a function with
    ``cache=True`` (next to this file, then the user's cache directory, or
    ``NUMBA_CACHE_DIR``) and raises when there is none: gmmlib installed on a read-only
    path by a user without a writable home would then fail at import. Instead the
    kernels are compiled in every process that uses them (some seconds), with a
    warning that says how to cache them.

    ``depends_on``: the source files of the compiled functions this one calls from
    other modules. Numba keeps a cached function while its own file is unchanged, with
    the callees' machine code compiled into it: after an edit of theirs it would run
    their old code (found in a checkout whose ``_kernels.py`` had changed: the kernels
    for missing values ran 15 % slower, on this project's machine, than after clearing
    the cache). Their files' stamps are added to the cache's, so that an edit of either
    invalidates it.
    """

    def decorate(function):
        try:
            compiled = njit(cache=True, **options)(function)
        except (RuntimeError, OSError) as err:  # "cannot cache function ...: no locator"
            _warn_uncached(err)
            return njit(**options)(function)
        if depends_on and _HAVE_NUMBA:
            _stamp_dependencies(compiled, depends_on)
        return compiled

    return decorate


def _source_stamp(path) -> tuple:
    """A file's stamp as Numba's cache takes it: modification time and size."""
    stat = os.stat(path)
    return stat.st_mtime, stat.st_size


def _stamp_dependencies(compiled, paths) -> None:
    """Extend the stamp that ``compiled``'s cache index is checked against by those of
    ``paths``. It is a private attribute of Numba's cache (numba.core.caching,
    ``IndexDataCacheFile._source_stamp`` in Numba 0.68); without it the cache behaves
    as Numba's default, with a warning."""
    cache_file = getattr(getattr(compiled, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        warnings.warn(
            "gmmlib cannot tie its cached kernels to the files they call (this Numba's "
            "cache has no _source_stamp); after editing gmmlib, clear __pycache__.",
            stacklevel=3,
        )
        return
    cache_file._source_stamp = (
        cache_file._source_stamp,
        *(_source_stamp(path) for path in paths),
    )


_UNCACHED_WARNED = []


def _warn_uncached(err) -> None:
    if not _UNCACHED_WARNED:
        _UNCACHED_WARNED.append(True)
        warnings.warn(
            f"Numba cannot cache gmmlib's compiled kernels ({err}); they are compiled "
            "again in every process (some seconds). Set the environment variable "
            "NUMBA_CACHE_DIR to a writable directory to cache them.",
            stacklevel=3,
        )


def have_numba() -> bool:
    """Whether the compiled kernels can be used (Numba is installed)."""
    return _HAVE_NUMBA


def resolve_backend(backend: str) -> str:
    """The kernel family for a checked ``backend``: "auto" takes Numba when installed."""
    if backend == "auto":
        return "numba" if have_numba() else "numpy"
    if backend == "numba" and not have_numba():
        raise ImportError(
            "backend='numba' needs Numba: pip install numba (or gmmlib[fast]), "
            "or use backend='numpy'."
        )
    return backend


# -- the NumPy kernels ------------------------------------------------------------------
def _numpy_sums(X, sample_weight, starts, block, ref, log_const, first, scores_only, steps):
    """A NumPy kernel, given its two steps that depend on the covariance type.

    ``steps.whiten(xt)`` maps a block's [x - r; 1] (d + 1, rows) to what its second
    sums need (the whitened vectors, or their squares) and to its half squared
    Mahalanobis distances (K, rows); ``steps.add_second(that, resp)`` adds the second
    sums, given ``resp``, w_i γ_ik (K, rows).
    """
    N, d = X.shape
    loglik = 0.0
    # A row whose distance is beyond 1e154 overflows its square: handled below, and
    # in _numpy_responsibilities; a sum that overflows is refused by the engine.
    with np.errstate(over="ignore"):
        for start in starts:
            stop = min(start + block, N)
            xt = steps.workspace.array("xt", (d + 1, stop - start))
            xt[d] = 1.0
            np.subtract(X[start:stop].T, ref[:, None], out=xt[:d])
            whitened, half_dist = steps.whiten(xt)
            weights = None if sample_weight is None else sample_weight[start:stop]
            block_loglik, resp, lost = _numpy_responsibilities(
                half_dist, log_const, weights, steps.workspace, scores_only
            )
            loglik += block_loglik
            if scores_only:
                continue
            if lost is not None:
                _to_the_nearest(resp, lost, steps.log_norms(xt[:, lost]), weights)
            if not half_dist.max() < np.inf:  # inf or NaN: rare, so one test per block
                _leave_out_unused(xt, whitened, resp)
            first += np.matmul(xt, resp.T)  # every component's first sums: one product
            steps.add_second(whitened, resp)
    return loglik


def _numpy_responsibilities(half_dist, log_const, weights, workspace, scores_only):
    """Σ_i w_i log P(x_i | θ) over a block and ``resp`` (K, rows), w_i γ_ik.

    From half Mahalanobis distances, by a log-sum-exp over components with the row
    maximum taken out. ``resp`` holds exp(log joint - row maximum) until the last
    line normalises it (unless ``scores_only``). The third value is None, or marks
    the rows that no component can explain (every log-density -inf: a distance whose
    square overflows): their log P is -inf (nothing for a row of weight 0) and their
    ``resp`` is left 0 for the caller (``_to_the_nearest``).
    """
    log_joint = workspace.array("log_joint", half_dist.shape)
    resp = workspace.array("resp", half_dist.shape)
    np.subtract(log_const[:, None], half_dist, out=log_joint)  # log p_k + log φ(x_i | θ_k)
    top = log_joint.max(axis=0)
    lost = None
    if not top.min() > -np.inf:  # -inf or NaN: rare, so one test per block
        lost = ~np.isfinite(top)
        top[lost] = 0.0  # exp(-inf - 0) = 0: their total is 0 and log P = -inf
    np.subtract(log_joint, top, out=resp)
    np.exp(resp, out=resp)
    total = resp.sum(axis=0)  # at least 1 (the row maximum's term), but 0 where lost
    if lost is None:
        log_norm = np.log(total)
    else:
        with np.errstate(divide="ignore"):
            log_norm = np.log(total)
    log_norm += top  # log P(x_i | θ)
    if lost is not None and weights is not None:
        log_norm[lost & (weights == 0)] = 0.0  # weight 0: as if the row were not there
    loglik = float(log_norm.sum() if weights is None else weights @ log_norm)
    if not scores_only:
        if lost is not None:
            total[lost] = 1.0
        resp *= (1.0 / total) if weights is None else (weights / total)
    return loglik, resp, lost


def _to_the_nearest(resp, lost, log_norms, weights) -> None:
    """Give each ``lost`` row (w_i of) responsibility 1 at its nearest component.

    The limit of the responsibilities as every distance grows without bound: the
    component whose whitened distance is smallest takes it all (split between exact
    ties). ``log_norms`` (K, lost rows): the logs of those distances.
    """
    nearest = log_norms == log_norms.min(axis=0)
    share = nearest / nearest.sum(axis=0)
    resp[:, lost] = share if weights is None else share * weights[lost]


def _leave_out_unused(xt, whitened, resp) -> None:
    """Zero the vectors that no responsibility uses, so that their overflow adds nothing.

    A row far enough from a component for its whitened vector's square to overflow
    would add inf·0 = NaN to that component's sums, though γ = 0 there (or w = 0).
    """
    unused = resp == 0
    whitened[np.broadcast_to(unused[:, None, :], whitened.shape)] = 0.0
    xt[:, unused.all(axis=0)] = 0.0


def _log_norms(z):
    """The logs of the norms over axis 1 of ``z`` (K, d, rows), without overflow; NaN as inf."""
    size = np.max(np.abs(z), axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_norms = np.log(size) + 0.5 * np.log(np.sum((z / size[:, None, :]) ** 2, axis=1))
    return np.nan_to_num(log_norms, nan=np.inf)


class _FullSteps(NamedTuple):
    """``numpy_full_sums``'s steps: z by one matrix product, their outer products."""

    whitening: np.ndarray
    second: np.ndarray
    workspace: Workspace

    def whiten(self, xt):
        (K, d, _), rows = self.second.shape, xt.shape[1]
        z = self.workspace.array("z", (K, d, rows))
        half_dist = self.workspace.array("half_dist", (K, rows))
        np.matmul(self.whitening, xt, out=z.reshape(K * d, rows))
        np.einsum("kdb,kdb->kb", z, z, out=half_dist)  # no (K, d, B) temporary
        return z, half_dist

    def log_norms(self, xt):
        """log ‖z_k‖ of these rows' [x - r; 1] (K, rows), for ``_to_the_nearest``."""
        K, d, _ = self.second.shape
        with np.errstate(over="ignore", invalid="ignore"):
            return _log_norms((self.whitening @ xt).reshape(K, d, -1))

    def add_second(self, z, resp):
        resp_z = self.workspace.array("resp_z", z.shape)
        np.einsum("kdb,kb->kdb", z, resp, out=resp_z)  # γ_ik z_ik (faster than broadcasting)
        np.add(self.second, np.matmul(resp_z, z.transpose(0, 2, 1)), out=self.second)


class _DiagSteps(NamedTuple):
    """``numpy_diag_sums``'s steps: z elementwise, the sums of their squares."""

    scale: np.ndarray
    shift: np.ndarray
    second: np.ndarray
    workspace: Workspace

    def whiten(self, xt):
        (K, d), rows = self.second.shape, xt.shape[1]
        z = self.workspace.array("z", (K, d, rows))
        z_sq = self.workspace.array("z_sq", (K, d, rows))
        half_dist = self.workspace.array("half_dist", (K, rows))
        np.multiply(self.scale[:, :, None], xt[:d], out=z)
        z -= self.shift[:, :, None]
        np.multiply(z, z, out=z_sq)
        np.sum(z_sq, axis=1, out=half_dist)
        return z_sq, half_dist

    def log_norms(self, xt):
        """log ‖z_k‖ of these rows' [x - r; 1] (K, rows), for ``_to_the_nearest``."""
        d = self.scale.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            return _log_norms(self.scale[:, :, None] * xt[:d] - self.shift[:, :, None])

    def add_second(self, z_sq, resp):
        np.add(self.second, np.matmul(z_sq, resp[:, :, None])[:, :, 0], out=self.second)


def numpy_full_sums(
    X, sample_weight, starts, block, whitening, ref, log_const, first, second, scores_only,
    *, workspace=None,
):  # fmt: skip
    """The NumPy kernel for full and tied covariances (see the module docstring).

    ``whitening`` (K d, d + 1) maps [x - r; 1] to every component's whitened vector
    z_k = U_kᵀ (x - μ_k) / √2, in one matrix product; ``second`` (K, d, d) receives
    Σ_i w_i γ_ik z_ik z_ikᵀ.
    """
    steps = _FullSteps(whitening, second, Workspace() if workspace is None else workspace)
    return _numpy_sums(X, sample_weight, starts, block, ref, log_const, first, scores_only, steps)


def numpy_diag_sums(
    X, sample_weight, starts, block, scale, shift, ref, log_const, first, second, scores_only,
    *, workspace=None,
):  # fmt: skip
    """The NumPy kernel for diagonal and spherical covariances (see the module docstring).

    z_kj = scale_kj (x_j - r_j) - shift_kj; ``second`` (K, d) receives Σ_i w_i γ_ik z_ik².
    """
    steps = _DiagSteps(scale, shift, second, Workspace() if workspace is None else workspace)
    return _numpy_sums(X, sample_weight, starts, block, ref, log_const, first, scores_only, steps)


def numpy_recentred_sums(
    X, sample_weight, starts, block, constants, recentred, first, second, *, workspace=None
):
    """The NumPy kernel's sums, with the vectors taken about other means.

    The responsibilities are those of ``constants`` (the iteration's θ, as in every
    kernel); ``first`` and ``second`` receive the sums of the vectors under
    ``recentred``: the same factors about the new means, with their own reference
    point. The engine's second pass, for an iteration whose means moved so far in the
    old whitened frame that the one-pass update would lose its digits. Returns the
    log-likelihood, as the other kernels; ``workspace`` is not used (this pass is rare,
    its buffers are its own).
    """
    del workspace
    steps = _FullSteps if len(constants) == 3 else _DiagSteps  # (whitening, ref, log_const)
    e_step = steps(*constants[:-2], np.empty_like(second), Workspace())
    sums = steps(*recentred[:-2], second, Workspace())
    (ref, log_const), new_ref = constants[-2:], recentred[-2]
    N, d = X.shape
    loglik = 0.0
    with np.errstate(over="ignore"):  # as in _numpy_sums
        for start in starts:
            stop = min(start + block, N)
            rows = X[start:stop].T
            xt, new_xt = (s.workspace.array("xt", (d + 1, stop - start)) for s in (e_step, sums))
            for target, point in ((xt, ref), (new_xt, new_ref)):
                target[d] = 1.0
                np.subtract(rows, point[:, None], out=target[:d])
            _, half_dist = e_step.whiten(xt)
            weights = None if sample_weight is None else sample_weight[start:stop]
            block_loglik, resp, lost = _numpy_responsibilities(
                half_dist, log_const, weights, e_step.workspace, False
            )
            loglik += block_loglik
            if lost is not None:
                _to_the_nearest(resp, lost, e_step.log_norms(xt[:, lost]), weights)
            whitened, new_half_dist = sums.whiten(new_xt)
            if not np.all(np.isfinite(new_half_dist)):
                _leave_out_unused(new_xt, whitened, resp)
            first += np.matmul(new_xt, resp.T)
            sums.add_second(whitened, resp)
    return loglik


# -- the compiled kernels (Numba) ------------------------------------------------------
# Reassociation lets the compiler vectorise the sums over a block's rows; the order of
# additions differs from NumPy's by rounding only. No 'nnan'/'ninf': a component with
# zero weight has log-density -inf, which must stay exact.
_FASTMATH = {"reassoc", "contract"}

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·ln2_hi is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_FAST_MIN = -708.0  # below it 2^n would be subnormal
#: exp_nonpositive returns 0 below this (e^-460 ≈ 1e-200): see its docstring.
_EXP_FLUSH = -460.0


#: 1.5·2⁵²: adding it to a float of magnitude below 2⁵¹ rounds that float to an integer,
#: which then sits in the sum's low mantissa bits (read through the int64 view).
_ROUND_MAGIC = 6755399441055744.0
_ROUND_MAGIC_BITS = 0x4338000000000000  # the bits of _ROUND_MAGIC


# Not 'reassoc': an elementwise loop vectorises without it, and it would license the
# compiler to regroup (x - n ln2_hi) - n ln2_lo, which undoes the Cody-Waite reduction,
# and to fold (t + magic) - magic to t.
@_cached_njit(nogil=True, fastmath={"contract"})
def exp_nonpositive(x, out):
    """out[i] = exp(x[i]) for 0 ≥ x[i] ≥ -460, to about one unit in the last place; below, 0.

    Numba's np.exp is a library call per element, which the compiler cannot
    vectorise; the log-sum-exp takes K of them per row. This one is plain
    arithmetic and vectorises: x = n ln 2 + r with r between ± ln2 / 2 (Cody and
    Waite's two-part ln 2 keeps r exact), exp(r) by its Taylor polynomial of
    degree 13 (truncation error below 2^-56 on that interval), times 2^n made
    from its bits. n is rounded by adding 1.5·2⁵² (``_ROUND_MAGIC``), which leaves
    it in the low bits of the sum: no float-to-integer conversion, which AVX2
    cannot vectorise.

    Below x = -460 (e^x < 1e-200) the result is 0 (``_EXP_FLUSH``). The kernels take
    exp of log-joints minus their row's largest, so such a term is 184 orders of
    magnitude below the rounding of the row's total, 1 or more; kept, it would be a
    responsibility whose products in the M-step's sums become subnormal numbers,
    which this project's processor computes a hundred times more slowly than normal
    ones (with well-separated components a block's responsibilities took seven times
    as long). The formula functions keep them: the engine's sums differ from theirs by
    less than 1e-200 of a sample's weight.
    """
    size = x.shape[0]
    out_bits = out.view(np.int64)
    for i in range(size):  # one loop: every value stays in registers
        xi = max(x[i], _EXP_FAST_MIN)
        shifted = xi * _INV_LN2 + _ROUND_MAGIC
        n = shifted - _ROUND_MAGIC  # round(x / ln 2), exactly
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
        p = p * r + 1.0
        # 2^n from n in the sum's low bits: out briefly holds the sum, read as bits
        out[i] = shifted
        out_bits[i] = (out_bits[i] - _ROUND_MAGIC_BITS + 1023) << 52
        out[i] *= p
    for i in range(size):  # a select, which vectorises; NaN stays NaN (the engine sees it)
        out[i] = 0.0 if x[i] < _EXP_FLUSH else out[i]


@njit(inline="always", fastmath=_FASTMATH)
def _load_block(X, start, rows, ref, xt):
    """xt[:d] = (x - r)ᵀ for rows start:start+rows, xt[d] = 1 (features × samples)."""
    d = X.shape[1]
    for b in range(rows):
        for j in range(d):
            xt[j, b] = X[start + b, j] - ref[j]
        xt[d, b] = 1.0


@njit(inline="always", fastmath=_FASTMATH)
def _responsibilities(log_joint, sample_weight, start, xt, resp, first, scores_only):
    """``resp`` = w_i γ_ik from log p_k + log φ(x_i | θ_k) (K, rows); their first sums.

    Returns Σ_i w_i log P(x_i | θ) over the block, as the NumPy kernel: a
    log-sum-exp over components with the row maximum taken out (from ``log_joint``,
    in place). ``resp`` holds exp(log joint - row maximum) until the last loops
    normalise it and add [x - r; 1] γᵀ to ``first`` (unless ``scores_only``).
    """
    K, rows = log_joint.shape
    row_max = np.full(rows, -np.inf)
    for k in range(K):
        for b in range(rows):
            row_max[b] = max(row_max[b], log_joint[k, b])
    for k in range(K):
        for b in range(rows):
            log_joint[k, b] -= row_max[b]
    exp_nonpositive(log_joint.reshape(K * rows), resp.reshape(K * rows))
    row_total = np.zeros(rows)
    for k in range(K):
        for b in range(rows):
            row_total[b] += resp[k, b]
    loglik = 0.0
    row_factor = np.empty(rows)  # w_i / Σ_k exp(.)
    if sample_weight is None:
        for b in range(rows):
            loglik += row_max[b]
            row_factor[b] = 1.0 / row_total[b]
        # Σ_i log(total_i) as logs of products: each total is between 1 and K, so a
        # product of ``group`` of them stays below 2^1000; one log per group, not per row.
        group = min(64, max(1, int(1000.0 / np.log2(max(K, 2)))))
        for first_row in range(0, rows, group):
            product = 1.0
            for b in range(first_row, min(first_row + group, rows)):
                product *= row_total[b]
            loglik += np.log(product)
    else:
        for b in range(rows):
            w = sample_weight[start + b]
            loglik += w * (np.log(row_total[b]) + row_max[b])
            row_factor[b] = w / row_total[b]
    if not scores_only:
        for k in range(K):
            for b in range(rows):
                resp[k, b] *= row_factor[b]
        # Σ_i γ_ik (x_i - r) and N_k, every component in one BLAS product
        first += np.dot(xt, resp.T)
    return loglik


@njit(inline="always", fastmath=_FASTMATH)
def _full_log_joint(X, start, rows, whitening, ref, log_const, xt, z, half_dist, log_joint):
    """A block's log p_k + log φ(x_i | θ_k) (K, rows), its whitened vectors left in ``z``."""
    d = X.shape[1]
    K = log_const.shape[0]
    _load_block(X, start, rows, ref, xt)
    np.dot(whitening, xt, z)  # every component's whitened vectors: one BLAS product
    for k in range(K):
        # Σ_j z_kj², two rows of z per pass (fewer loads and stores of half_dist)
        r = k * d
        for b in range(rows):
            half_dist[b] = z[r, b] * z[r, b]
        for r in range(k * d + 1, (k + 1) * d - 1, 2):
            for b in range(rows):
                half_dist[b] += z[r, b] * z[r, b] + z[r + 1, b] * z[r + 1, b]
        if d % 2 == 0 and d > 1:
            r = (k + 1) * d - 1
            for b in range(rows):
                half_dist[b] += z[r, b] * z[r, b]
        for b in range(rows):
            log_joint[k, b] = log_const[k] - half_dist[b]


#: Up to this many features the compiled full kernel sums Σγ z zᵀ by its upper triangle
#: in its own loops, above it by a BLAS product. Measured on this project's 2-core
#: machine (100 000 rows, K = 8, an engine step): the loops 1.6 times faster at d = 16,
#: the BLAS product 1.1 times faster at d = 24 and 1.2 times at d = 32.
_DOT_SCATTER_MAX = 16


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_full_sums(
    X, sample_weight, starts, block, whitening, ref, log_const, first, second, scores_only
):
    """The compiled kernel for full and tied covariances: as ``numpy_full_sums``.

    Its buffers are allocated here, once per call, flat and reshaped per block (so the
    last, shorter block is contiguous too).
    """
    N, d = X.shape
    K = log_const.shape[0]
    xt_buffer, z_buffer = np.empty((d + 1) * block), np.empty(K * d * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    half_dist, resp_z_buffer = np.empty(block), np.empty(d * block)
    scatter = np.empty((d, d))
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: (d + 1) * rows].reshape(d + 1, rows)
        z = z_buffer[: K * d * rows].reshape(K * d, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _full_log_joint(X, start, rows, whitening, ref, log_const, xt, z, half_dist, log_joint)
        loglik += _responsibilities(log_joint, sample_weight, start, xt, resp, first, scores_only)
        if scores_only:
            continue
        resp_z = resp_z_buffer[: d * rows].reshape(d, rows)
        for k in range(K):
            zk = z[k * d : (k + 1) * d]
            for j in range(d):
                for b in range(rows):
                    resp_z[j, b] = zk[j, b] * resp[k, b]
            if d <= _DOT_SCATTER_MAX:
                # Σ_i γ_ik z zᵀ by its upper triangle, one vectorised sum per entry: for
                # few features a BLAS product of these shapes is mostly overhead
                # (_DOT_SCATTER_MAX)
                for i in range(d):
                    for j in range(i, d):
                        total = 0.0
                        for b in range(rows):
                            total += resp_z[i, b] * zk[j, b]
                        second[k, i, j] += total
            else:
                np.dot(resp_z, zk.T, scatter)  # Σ_i γ_ik z zᵀ: one BLAS product
                for i in range(d):
                    for j in range(i, d):
                        second[k, i, j] += scatter[i, j]
    if not scores_only:
        for k in range(K):  # the lower triangles, from the upper ones summed above
            for i in range(d):
                for j in range(i):
                    second[k, i, j] = second[k, j, i]
    return loglik


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_tied_sums(
    X, sample_weight, starts, block, shared, centres, ref, log_const, first, second, scores_only
):
    """The compiled kernel for tied covariances: one whitening for all components.

    With one factor U for every component, z_ik = y_i - c_k, where y_i = Uᵀ(x_i - r)/√2
    (``shared`` (d, d + 1) maps [x - r; 1] to it: one d-row product per block instead of
    K) and c_k = Uᵀ(μ_k - r)/√2 (``centres`` (K, d)). The distances are then elementwise,
    as for diagonal covariances, and the second sums are one scatter for all components:
    ``second`` (d, d) receives Σ_i w_i y_i y_iᵀ (``tied_second`` turns it, with ``first``,
    into Σ_k Σ_i w_i γ_ik z_ik z_ikᵀ, all the tied M-step needs).
    """
    N, d = X.shape
    K = log_const.shape[0]
    xt_buffer, y_buffer = np.empty((d + 1) * block), np.empty(d * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    half_dist, weighted_buffer = np.empty(block), np.empty(d * block)
    scatter = np.empty((d, d))
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: (d + 1) * rows].reshape(d + 1, rows)
        y = y_buffer[: d * rows].reshape(d, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _load_block(X, start, rows, ref, xt)
        np.dot(shared, xt, y)
        for k in range(K):
            for b in range(rows):
                half_dist[b] = 0.0
            for j in range(d):
                c = centres[k, j]
                for b in range(rows):
                    v = y[j, b] - c
                    half_dist[b] += v * v
            for b in range(rows):
                log_joint[k, b] = log_const[k] - half_dist[b]
        loglik += _responsibilities(log_joint, sample_weight, start, xt, resp, first, scores_only)
        if scores_only:
            continue
        if sample_weight is None:
            np.dot(y, y.T, scatter)
        else:
            weighted = weighted_buffer[: d * rows].reshape(d, rows)
            for j in range(d):
                for b in range(rows):
                    weighted[j, b] = y[j, b] * sample_weight[start + b]
            np.dot(weighted, y.T, scatter)
        for i in range(d):
            for j in range(d):
                second[i, j] += scatter[i, j]
    return loglik


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_diag_sums(
    X, sample_weight, starts, block, scale, shift, ref, log_const, first, second, scores_only
):
    """The compiled kernel for diagonal and spherical covariances: as ``numpy_diag_sums``."""
    N, d = X.shape
    K = log_const.shape[0]
    xt_buffer, z_sq_buffer = np.empty((d + 1) * block), np.empty(K * d * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    half_dist = np.empty(block)
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: (d + 1) * rows].reshape(d + 1, rows)
        z_sq = z_sq_buffer[: K * d * rows].reshape(K, d, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _load_block(X, start, rows, ref, xt)
        for k in range(K):
            for b in range(rows):
                half_dist[b] = 0.0
            for j in range(d):
                for b in range(rows):
                    v = scale[k, j] * xt[j, b] - shift[k, j]
                    v = v * v
                    z_sq[k, j, b] = v
                    half_dist[b] += v
            for b in range(rows):
                log_joint[k, b] = log_const[k] - half_dist[b]
        loglik += _responsibilities(log_joint, sample_weight, start, xt, resp, first, scores_only)
        if scores_only:
            continue
        for k in range(K):
            for j in range(d):
                total = 0.0
                for b in range(rows):
                    total += z_sq[k, j, b] * resp[k, b]
                second[k, j] += total
    return loglik


@njit(inline="always", fastmath=_FASTMATH)
def _load_expanded(X, start, rows, ref, xt):
    """xt = [u; 1; u²] (2d + 1, rows), [u; 1; |u|²] (d + 2, rows) or [u; 1; u_a u_b for
    a ≤ b] (d + 1 + d(d + 1)/2, rows), u = x - r.

    The squares one by one for diagonal covariances, their sum for spherical ones,
    every product of two coordinates for full ones (which of the three: by ``xt``'s
    number of rows; for d = 1 they are the same).
    """
    d = X.shape[1]
    # Row by row of xt: its rows lie a power of two of bytes apart for the usual block
    # sizes, so writing a column at a time would hit one cache set 2d + 1 times.
    for j in range(d):
        for b in range(rows):
            xt[j, b] = X[start + b, j] - ref[j]
    for b in range(rows):
        xt[d, b] = 1.0
    if xt.shape[0] == 2 * d + 1:
        for j in range(d):
            for b in range(rows):
                xt[d + 1 + j, b] = xt[j, b] * xt[j, b]
    elif xt.shape[0] == d + 2:
        for b in range(rows):
            xt[d + 1, b] = 0.0
        for j in range(d):
            for b in range(rows):
                xt[d + 1, b] += xt[j, b] * xt[j, b]
    else:
        row = d + 1
        for i in range(d):
            for j in range(i, d):
                for b in range(rows):
                    xt[row, b] = xt[i, b] * xt[j, b]
                row += 1


@njit(inline="always", fastmath=_FASTMATH)
def _expanded_log_joint(X, start, rows, coefficients, ref, xt, log_joint):
    """A block's log p_k + log φ(x_i | θ_k) (K, rows): one product with [u; 1; u²] in ``xt``."""
    _load_expanded(X, start, rows, ref, xt)
    np.dot(coefficients, xt, log_joint)


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_expanded_sums(X, sample_weight, starts, block, coefficients, ref, first, scores_only):
    """Diagonal, spherical and full covariances through two BLAS products per block.

    With u = x - r, a component's log p_k + log φ(x | θ_k) is a linear function of
    [u; 1; u²] ([u; 1; |u|²] for spherical covariances, [u; 1; u_a u_b for a ≤ b] for
    full ones): ``coefficients`` (K, width) holds it (``gmmlib._engine``'s
    ``expansion_coefficients`` and ``full_expansion_coefficients``), so the block's
    log-joints are one matrix product, and ``first`` (width, K) receives
    Σ_i w_i γ_ik times the expanded vector, from which the engine gets the second
    sums (``expanded_sums``, ``expanded_full_sums``).

    The expansion cancels when a mean lies many standard deviations from r: the
    engine uses this kernel only where that loses few digits (``_EXPANSION_MAX``).
    """
    N = X.shape[0]
    K, width = coefficients.shape
    xt_buffer = np.empty(width * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    loglik = 0.0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: width * rows].reshape(width, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _expanded_log_joint(X, start, rows, coefficients, ref, xt, log_joint)
        loglik += _responsibilities(log_joint, sample_weight, start, xt, resp, first, scores_only)
    return loglik


# -- per-row results of a fitted model (score_samples, predict, predict_proba) -----------
@njit(inline="always", fastmath=_FASTMATH)
def _row_results(log_joint, resp, start, log_density, labels, resp_out):
    """Each row's log P(x_i | θ), most responsible component and γ_ik, where asked.

    ``log_density``, ``labels`` and ``resp_out`` are the whole outputs (N,), (N,)
    and (N, K), or empty when not asked for; rows start:start+rows are written. A
    row whose log-joints are all -inf or NaN (distances whose squares overflow) is
    marked with label -1 and NaN, and the count of such rows is returned: the caller
    computes them again on the reference path (``gmmlib._e_step``).
    """
    K, rows = log_joint.shape
    row_max = np.full(rows, -np.inf)
    row_arg = np.full(rows, K)
    # Without branches or selects (an unpredictable branch per entry costs more than
    # the entry, and this compiler does not vectorise the select): the maxima first,
    # then the smallest k whose log-joint attains each, as np.argmax, by arithmetic.
    for k in range(K):
        for b in range(rows):
            row_max[b] = max(row_max[b], log_joint[k, b])
    for k in range(K):
        for b in range(rows):
            row_arg[b] = min(row_arg[b], k + K * (log_joint[k, b] != row_max[b]))
    n_bad = 0
    for b in range(rows):
        if not row_max[b] > -np.inf:  # no finite log-joint: left to the reference path
            n_bad += 1
            row_max[b] = 0.0
            row_arg[b] = -1
    if labels.shape[0]:
        for b in range(rows):
            labels[start + b] = row_arg[b]
    if not (log_density.shape[0] or resp_out.shape[0]):
        return n_bad  # predict: the largest log-joint is all it needs
    for k in range(K):
        for b in range(rows):
            log_joint[k, b] -= row_max[b]
    exp_nonpositive(log_joint.reshape(K * rows), resp.reshape(K * rows))
    row_total = np.zeros(rows)
    for k in range(K):
        for b in range(rows):
            row_total[b] += resp[k, b]
    if n_bad:
        for b in range(rows):
            if row_arg[b] < 0:
                row_total[b] = 1.0  # its results are marked below
    if log_density.shape[0]:
        for b in range(rows):
            log_density[start + b] = np.log(row_total[b]) + row_max[b]
    if resp_out.shape[0]:
        for b in range(rows):
            row_total[b] = 1.0 / row_total[b]
        for b in range(rows):
            for k in range(K):
                resp_out[start + b, k] = resp[k, b] * row_total[b]
    if n_bad:
        for b in range(rows):
            if row_arg[b] < 0:
                if log_density.shape[0]:
                    log_density[start + b] = np.nan
                if resp_out.shape[0]:
                    resp_out[start + b, 0] = np.nan
    return n_bad


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_full_rows(X, starts, block, whitening, ref, log_const, log_density, labels, resp_out):
    """Per-row results for full and tied covariances (``_row_results``); bad-row count."""
    N, d = X.shape
    K = log_const.shape[0]
    xt_buffer, z_buffer = np.empty((d + 1) * block), np.empty(K * d * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    half_dist = np.empty(block)
    n_bad = 0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: (d + 1) * rows].reshape(d + 1, rows)
        z = z_buffer[: K * d * rows].reshape(K * d, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _full_log_joint(X, start, rows, whitening, ref, log_const, xt, z, half_dist, log_joint)
        n_bad += _row_results(log_joint, resp, start, log_density, labels, resp_out)
    return n_bad


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_diag_rows(
    X, starts, block, scale, shift, ref, log_const, log_density, labels, resp_out
):
    """Per-row results for diagonal and spherical covariances; bad-row count.

    Rows are read as they lie in X (no transposed copy): each row's d centred
    values stay in registers while its K distances are summed.
    """
    N, d = X.shape
    K = log_const.shape[0]
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    centred = np.empty(d)
    n_bad = 0
    for start in starts:
        rows = min(block, N - start)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        for b in range(rows):
            for j in range(d):
                centred[j] = X[start + b, j] - ref[j]
            for k in range(K):
                half_dist = 0.0
                for j in range(d):
                    v = scale[k, j] * centred[j] - shift[k, j]
                    half_dist += v * v
                log_joint[k, b] = log_const[k] - half_dist
        n_bad += _row_results(log_joint, resp, start, log_density, labels, resp_out)
    return n_bad


@njit(inline="always", fastmath=_FASTMATH)
def _expanded_labels(X, starts, block, coefficients, ref, labels):
    """``predict`` alone for ``compiled_expanded_rows``: the most responsible component.

    Vectorised across the rows of a block: u = x - r is laid out once as (d, rows),
    then each component's log-joints for all the rows, c_k + Σ_j u_j (a_kj + q_kj u_j)
    (diagonal; spherical: c_k + q_k |u|² + Σ_j a_kj u_j), the coefficients' row in
    Horner form, are folded into a running maximum and label by arithmetic (the first
    of equal maxima, as np.argmax; a select per entry would not vectorise). Measured at
    100 000 × 8 × 8 on one thread (the benchmark's machine, 2026-12-01): 0.9 ms, against
    1.5 ms for the product of the expanded rows [u, 1, u²] with the coefficients'
    transpose by BLAS (its inner dimension, 2d + 1, is too thin for BLAS's speed) and a
    scan per row. A row with a NaN log-joint or none finite gets label -1 and is
    counted, as in ``_row_results``.
    """
    N, d = X.shape
    K, width = coefficients.shape
    spherical = width == d + 2 and d > 1  # for d = 1 both layouts are [u, 1, u²]
    centred_buffer, norm = np.empty(d * block), np.empty(block)
    log_joint, best = np.empty(block), np.empty(block)
    label, total = np.empty(block), np.empty(block)  # label: a float, to vectorise
    n_bad = 0
    for start in starts:
        rows = min(block, N - start)
        centred = centred_buffer[: d * rows].reshape(d, rows)
        for b in range(rows):
            for j in range(d):
                centred[j, b] = X[start + b, j] - ref[j]
        if spherical:
            norm[:rows] = 0.0
            for j in range(d):
                for b in range(rows):
                    norm[b] += centred[j, b] * centred[j, b]
        for k in range(K):
            if spherical:
                for b in range(rows):
                    log_joint[b] = coefficients[k, d] + coefficients[k, d + 1] * norm[b]
                for j in range(d):
                    linear = coefficients[k, j]
                    for b in range(rows):
                        log_joint[b] += linear * centred[j, b]
            else:
                log_joint[:rows] = coefficients[k, d]
                for j in range(d):
                    linear, square = coefficients[k, j], coefficients[k, d + 1 + j]
                    for b in range(rows):
                        u = centred[j, b]
                        log_joint[b] += u * (linear + square * u)
            if k == 0:
                best[:rows] = log_joint[:rows]
                total[:rows] = log_joint[:rows]  # NaN if a log-joint is NaN
                label[:rows] = 0.0
                continue
            for b in range(rows):
                larger = 1.0 * (log_joint[b] > best[b])
                label[b] += larger * (k - label[b])
                best[b] = max(best[b], log_joint[b])
                total[b] += log_joint[b]
        for b in range(rows):
            if total[b] != total[b] or not best[b] > -np.inf:  # to the reference path
                n_bad += 1
                labels[start + b] = -1
            else:
                labels[start + b] = int(label[b])
    return n_bad


@_cached_njit(nogil=True, fastmath=_FASTMATH)
def compiled_expanded_rows(X, starts, block, coefficients, ref, log_density, labels, resp_out):
    """Per-row results for diagonal and spherical covariances, as ``compiled_expanded_sums``."""
    if not (log_density.shape[0] or resp_out.shape[0]):
        return _expanded_labels(X, starts, block, coefficients, ref, labels)
    N = X.shape[0]
    K, width = coefficients.shape
    xt_buffer = np.empty(width * block)
    log_joint_buffer, resp_buffer = np.empty(K * block), np.empty(K * block)
    n_bad = 0
    for start in starts:
        rows = min(block, N - start)
        xt = xt_buffer[: width * rows].reshape(width, rows)
        log_joint = log_joint_buffer[: K * rows].reshape(K, rows)
        resp = resp_buffer[: K * rows].reshape(K, rows)
        _expanded_log_joint(X, start, rows, coefficients, ref, xt, log_joint)
        n_bad += _row_results(log_joint, resp, start, log_density, labels, resp_out)
    return n_bad


# -- choosing a kernel ---------------------------------------------------------------------
class Kernels(NamedTuple):
    """One family of kernels: its backend name and its two kernels."""

    backend: str  # "numpy" or "numba"; it sizes the blocks (``default_block_size``)
    full: Callable  # full and tied covariances
    diag: Callable  # diagonal and spherical covariances


def _taking_a_workspace(compiled):
    """A compiled kernel, called as the engine calls every kernel (``workspace=`` last).

    The compiled kernel has no use for the workspace (which Numba could not read): one
    call covers all of a thread's blocks, so its buffers, a few hundred KiB for blocks
    sized for the L2 cache, are allocated once per call, at next to no cost.
    """

    def kernel(*args, workspace):
        del workspace
        return compiled(*args)

    return kernel


NUMPY_KERNELS = Kernels("numpy", numpy_full_sums, numpy_diag_sums)
COMPILED_KERNELS = Kernels(
    "numba", _taking_a_workspace(compiled_full_sums), _taking_a_workspace(compiled_diag_sums)
)


def kernels_for(X, backend: str):
    """The kernels that read ``X`` for ``backend``, and ``X`` as they read it.

    The compiled kernels read NumPy arrays and memmaps of float64 or float32 (a
    memmap stays a view of its file: nothing is read here); anything else (another
    array type, another dtype) goes through the NumPy kernels.
    """
    if backend == "numba" and isinstance(X, np.ndarray) and X.dtype in (np.float64, np.float32):
        return COMPILED_KERNELS, X if type(X) is np.ndarray else X.view(np.ndarray)
    return NUMPY_KERNELS, X
