r"""A fast EM engine: the same iterations as the formula functions, in one blocked pass.

The formula functions (:func:`gmmlib.responsibilities`, :func:`gmmlib.m_step`) are the
readable reference, one per equation of the book. :class:`EMEngine` computes
exactly the same EM iterations (to rounding), fast and in memory that does not
grow with the number of samples. :class:`gmmlib.GaussianMixture` fits through it.

Why one pass is enough
----------------------
The M-step (:eq:`eq-weights-update`, :eq:`eq-means-update`,
:eq:`eq-covariances-update`) needs the responsibilities only through three sums
per component,

.. math::

    N_k = \sum_i \gamma_{ik}, \qquad
    S_k = \sum_i \gamma_{ik} y_{ik}, \qquad
    M_k = \sum_i \gamma_{ik} y_{ik} y_{ik}^\top, \qquad y_{ik} = x_i - c_k,

for any fixed centre :math:`c_k`. With :math:`\delta_k = S_k / N_k` the new mean is
:math:`\mu_k = c_k + \delta_k` and
:math:`\sum_i \gamma_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top = M_k - N_k\delta_k\delta_k^\top`.
These are sums over samples, so each block of rows adds its share straight
after its E-step: no (N, K) responsibility matrix, no (N, d) difference array.

Accurate as two passes
----------------------
The one-pass "sum of squares minus square of the sum" loses every digit when
the data sit far from the centre used. Here the centre :math:`c_k` is the *old*
mean, which is close to the new one, and :math:`M_k` is summed in the old
whitened frame :math:`z_{ik} = U_k^\top (x_i - c_k)` (:math:`U_k U_k^\top =
\Sigma_k^{-1}`), where the component's cloud is roughly the unit ball. The
vector :math:`z_{ik}` is needed anyway for the Mahalanobis distance of the
E-step; mapping back, :math:`y = L_k z` with :math:`\Sigma_k = L_k L_k^\top`, so
:math:`M_k = L_k \bigl(\sum_i \gamma_{ik} z z^\top\bigr) L_k^\top`. Rows are read
relative to the mixture's mean r, so data far from the origin lose nothing
either.

How a block is computed
-----------------------
Rows are copied, transposed and shifted by r, into a small (d + 1, B) buffer
whose last row is ones. One matrix product with a (K d, d + 1) matrix holding
every :math:`U_k^\top` and its shift :math:`-U_k^\top (c_k - r)` gives all the
whitened vectors at once; their squares summed give the log-densities, a
log-sum-exp the responsibilities. Then one product per component,
:math:`(\gamma_k \odot z_k) z_k^\top`, adds to :math:`M_k` (diagonal and
spherical covariances need only the squares), and one small product
:math:`[x - r; 1]\,\gamma^\top` adds to every :math:`S_k` and :math:`N_k`. Two
threads take alternate blocks (NumPy releases the GIL), with BLAS held to one
thread each through threadpoolctl and restored afterwards.

Two kernels compute a block: the NumPy one described above (``backend="numpy"``),
and, when Numba is installed, the same arithmetic compiled in
``gmmlib._kernels`` (``backend="numba"``, the default then). The compiled
kernel keeps the matrix products in BLAS and fuses the elementwise passes, and
one call runs all of a thread's blocks without the GIL. It runs an iteration
about twice as fast (see ``benchmarks/``). Both are tested against the formula
functions.

The data can be any 2-D array that supports row slicing, read block by block:
a NumPy ``memmap`` of a file larger than memory works as it is. EM is a
map-reduce, so a Dask array works too (Dask is optional, not a dependency of
gmmlib): every chunk's sums are computed by ``map_blocks`` and added up by the
scheduler, and only those small sums travel.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext

import numpy as np
from scipy.linalg import lapack

from ._gaussian import LOG_2PI, _log_det_precision_cholesky
from ._m_step import _NK_FLOOR
from ._validation import check_covariance_type, check_nonnegative

#: Rows per block when not given. NumPy's kernel: the block's working arrays take
#: about 4 MiB (measured here: smaller blocks pay more in NumPy's per-call overhead
#: than they gain in cache). The compiled kernel: the whitened vectors take about
#: 256 KiB, so they stay in the core's L2 cache (2 MiB here) between passes. A
#: small problem (up to 4096 rows, few components and features) is a single block:
#: no threads, no BLAS limits.
_TARGET_BLOCK_BYTES = 4 << 20
_MIN_BLOCK, _MAX_BLOCK = 128, 4096
_COMPILED_BLOCK_BYTES, _MIN_COMPILED_BLOCK = 256 << 10, 64
#: The whitened vectors are stored divided by √2: their squares sum to half the
#: Mahalanobis distance, which is what the log-density needs.
_HALF = np.sqrt(0.5)


def _default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def default_block_size(n_components: int, n_features: int, backend: str = "numpy") -> int:
    """Rows per block: work arrays of about 4 MiB for NumPy, 256 KiB compiled (to 4096 rows).

    NumPy's kernel pays a call per pass and gains from long rows; the compiled
    kernel makes no such calls and runs fastest when the block's whitened
    vectors (K d rows) stay in the core's L2 cache between its passes
    (measured here at 1e6 x 16 x 16: 96 to 192 rows best, 512 a quarter slower).
    """
    if backend == "numba":
        rows = _COMPILED_BLOCK_BYTES // max(8 * n_components * n_features, 1)
        return int(min(_MAX_BLOCK, max(_MIN_COMPILED_BLOCK, rows)))
    per_row = 8 * (n_components * (2 * n_features + 1) + n_features + 1)
    rows = _TARGET_BLOCK_BYTES // max(per_row, 1)
    return int(min(_MAX_BLOCK, max(_MIN_BLOCK, rows)))


@contextmanager
def blas_single_thread():
    """Hold BLAS to one thread inside the ``with`` block (restored on exit).

    Uses threadpoolctl when it is installed; without it nothing is changed
    (and :class:`EMEngine` then runs on one thread).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield False
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield True


def _have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


def have_numba() -> bool:
    """Whether the compiled block kernels (gmmlib._kernels, which need Numba) can be used."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _check_backend(backend):
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'; got {backend!r}.")
    if backend == "auto":
        return "numba" if have_numba() else "numpy"
    if backend == "numba" and not have_numba():
        raise ImportError(
            "backend='numba' needs Numba: pip install numba (or gmmlib[fast]), "
            "or use backend='numpy'."
        )
    return backend


def _is_dask_array(X) -> bool:
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks")


# The shapes of the sums of each kind of pass, given K and d.
def _sum_shapes(kind, K, d):
    return {
        "score": [()],
        # Σ w log P; [x - r; 1] γᵀ, i.e. Σ γ (x - r) and Σ γ; Σ γ z zᵀ
        "full": [(), (d + 1, K), (K, d, d)],
        # Σ w log P; [x - r; 1] γᵀ; Σ γ z²
        "diag": [(), (d + 1, K), (K, d)],
    }[kind]


class _Workspace:
    """One thread's buffers, allocated once per engine and reused by every block."""

    def __init__(self, n_components, n_features, block_size):
        K, d, B = n_components, n_features, block_size
        self.block = B
        self.xt = np.empty((d + 1) * B)
        self.z = np.empty(K * d * B)
        self.g = np.empty(K * d * B)
        self.lj = np.empty(K * B)
        self.stat = np.empty((K, d, d))
        self.sx = np.empty((d + 1, K))
        # the compiled kernels' scratch: per row, and the exponentials with their 2^n bits
        self.top = np.empty(B)
        self.tot = np.empty(B)
        self.e = np.empty(K * B)
        self.bits = np.empty(K * B, dtype=np.int64)
        self._views = {}

    def views(self, n_components, n_features, rows):
        """Contiguous (.., B) views of the buffers for a block of ``rows`` rows."""
        key = (n_components, n_features, rows)
        cached = self._views.get(key)
        if cached is None:
            K, d, B = key
            cached = self._views[key] = (
                self.xt[: (d + 1) * B].reshape(d + 1, B),
                self.z[: K * d * B].reshape(K, d, B),
                self.g[: K * d * B].reshape(K, d, B),
                self.lj[: K * B].reshape(K, B),
            )
        return cached


class EMEngine:
    r"""Blocked, one-pass, two-thread EM iterations for a Gaussian mixture.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Any 2-D array that supports ``X[start:stop]`` (an ndarray or a
        ``numpy.memmap``); it is read block by block and never copied whole.
        Or a ``dask.array`` chunked along rows (columns are rechunked whole):
        each chunk's sums are computed by ``map_blocks`` with the scheduler
        configured in Dask. Assumed finite (the estimator checks it).
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float, default 0
        Added to the diagonal of every new covariance.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative weight per sample; ``None`` means all ones.
    block_size : int, optional
        Rows per block; by default sized for the cache (see
        ``default_block_size``, at most 4096 rows), so a small problem is a
        single block.
    n_threads : int, optional
        Threads taking alternate blocks; default 2 (or 1 on a single core, or
        without threadpoolctl).
    backend : {"auto", "numba", "numpy"}, default "auto"
        The block kernel: compiled by Numba (``gmmlib._kernels``) or NumPy
        calls. "auto" takes Numba when it is installed. The compiled kernel
        reads NumPy arrays and memmaps of float64 or float32; other inputs
        (and Dask chunks of other types) go through the NumPy kernel.

    Notes
    -----
    :meth:`step` performs one EM iteration from ``(weights, means,
    prec_chol)`` and returns the mean log-likelihood of those parameters
    (weighted by ``sample_weight``) together with the new ``(weights, means,
    covariances)``: the same numbers as
    :func:`gmmlib.m_step` applied to :func:`gmmlib.responsibilities`.
    Extra memory is a few blocks per thread, whatever ``n_samples`` is.

    Used as a context manager, the engine holds BLAS to one thread from its
    first multi-block pass until the ``with`` block ends (otherwise around
    each pass)::

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
        check_covariance_type(covariance_type)
        self._dask = _is_dask_array(X)
        if self._dask and X.ndim == 2 and len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})  # chunks of whole rows
        if getattr(X, "ndim", None) != 2:
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}.")
        self.X = X
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.covariance_type = covariance_type
        self.reg_covar = check_nonnegative(reg_covar, "reg_covar")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (self.n_samples,):
                raise ValueError(
                    f"sample_weight must have shape ({self.n_samples},); got {sample_weight.shape}."
                )
            if np.all(sample_weight == 1.0):
                sample_weight = None
        self.sample_weight = sample_weight
        self.total_weight = (
            float(self.n_samples) if sample_weight is None else float(sample_weight.sum())
        )
        self._dask_weight = None
        if self._dask and sample_weight is not None:
            import dask.array as da

            self._dask_weight = da.from_array(sample_weight[:, None], chunks=(X.chunks[0], 1))
        if block_size is not None and int(block_size) < 1:
            raise ValueError(f"block_size must be at least 1; got {block_size}.")
        self._block_size = None if block_size is None else int(block_size)
        if n_threads is None:
            n_threads = _default_threads() if _have_threadpoolctl() else 1
        if int(n_threads) < 1:
            raise ValueError(f"n_threads must be at least 1; got {n_threads}.")
        self.n_threads = int(n_threads)
        self.backend = _check_backend(backend)
        self._workspaces: dict = {}
        self._limits_depth, self._limits = 0, None
        self._manage_blas = True

    # -- blocks, threads and BLAS --------------------------------------------------------
    def _blocks_for(self, n_components):
        kernel = "numba" if self._compiled_input() is not None else "numpy"
        block = self._block_size or default_block_size(n_components, self.n_features, kernel)
        block = min(block, self.n_samples)
        starts = range(0, self.n_samples, block)
        return block, [(s, min(s + block, self.n_samples)) for s in starts]

    def _workspace(self, thread, n_components, block):
        key = (thread, n_components, block)
        ws = self._workspaces.get(key)
        if ws is None:
            # Only the buffers of the current shape are kept.
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[1:] == key[1:]}
            ws = self._workspaces[key] = _Workspace(n_components, self.n_features, block)
        return ws

    def __enter__(self):
        """Hold BLAS to one thread for a run of :meth:`step` calls; restored on exit.

        Blocks are small matrices: a multi-threaded BLAS only adds synchronisation
        there, and the engine's own threads use the cores. The limit is taken at
        the first pass that has more than one block (at once when there are more
        than 4096 rows; a single block changes nothing) and kept until the
        ``with`` block ends, so that it is not set and reset at every iteration.
        """
        self._limits_depth += 1
        if self._limits_depth == 1 and self.n_samples > _MAX_BLOCK:
            self._blas_limits(2)  # more than one block whatever K is: take it now
        return self

    def __exit__(self, *exc):
        self._limits_depth -= 1
        if self._limits_depth == 0 and self._limits is not None:
            limits, self._limits = self._limits, None
            limits.__exit__(*exc)
        return False

    def _blas_limits(self, n_blocks):
        if n_blocks == 1 or not self._manage_blas:
            return nullcontext()
        if self._limits_depth == 0:
            return blas_single_thread()
        if self._limits is None:
            self._limits = blas_single_thread()
            self._limits.__enter__()
        return nullcontext()

    def _map_blocks(self, kernel, n_components, make_acc):
        """Run ``kernel(blocks, workspace, acc)`` in each thread on its share of the blocks.

        ``blocks`` is a list of (start, stop); thread t takes blocks t, t + T, ...
        Returns the list of the threads' accumulators.
        """
        block, blocks = self._blocks_for(n_components)
        n_threads = max(1, min(self.n_threads, len(blocks)))
        accs = [make_acc() for _ in range(n_threads)]
        # Workspaces are created here, in one thread, before any worker starts.
        workspaces = [self._workspace(t, n_components, block) for t in range(n_threads)]
        errors = []

        def work(t):
            try:
                kernel(blocks[t::n_threads], workspaces[t], accs[t])
            except BaseException as exc:  # re-raised below, in the calling thread
                errors.append(exc)

        with self._blas_limits(len(blocks)):
            threads = [threading.Thread(target=work, args=(t,)) for t in range(1, n_threads)]
            for thread in threads:
                thread.start()
            work(0)
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return accs

    # -- the E-step of one block --------------------------------------------------------
    def _prepare(self, weights, means, prec_chol):
        """Per-iteration constants of the E-step.

        The rows are read relative to a reference point r, the mixture's mean
        Σ_k p_k μ_k: x - r is nearly exact, so data far from the origin lose no
        digits when U_kᵀ (x - μ_k) is computed as U_kᵀ (x - r) - U_kᵀ (μ_k - r).
        ``const`` is log p_k + log|U_k| - (d/2) log 2π.
        """
        cov_type, d = self.covariance_type, self.n_features
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        prec_chol = np.asarray(prec_chol, dtype=np.float64)
        K = means.shape[0]
        with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
            const = np.log(weights) + _log_det_precision_cholesky(prec_chol, cov_type, d)
        const = np.asarray(const - 0.5 * d * LOG_2PI, dtype=np.float64) * np.ones(K)
        ref = weights @ means
        centred = means - ref
        prep = {"const": const[:, None], "K": K, "ref": ref}
        if cov_type in ("full", "tied"):
            U = prec_chol if cov_type == "full" else np.broadcast_to(prec_chol, (K, d, d))
            # Row block k of W maps [x - r; 1] to U_kᵀ (x - μ_k) / √2.
            W = np.empty((K, d, d + 1))
            W[:, :, :d] = U.transpose(0, 2, 1)
            W[:, :, d] = -np.einsum("kji,kj->ki", U, centred)
            W *= _HALF
            prep["W"] = W.reshape(K * d, d + 1)
        else:
            scale = prec_chol[:, None] * np.ones((1, d)) if cov_type == "spherical" else prec_chol
            prep["scale"] = (_HALF * scale)[:, :, None]
            prep["shift"] = (_HALF * centred * scale)[:, :, None]
        return prep

    def _e_block(self, start, stop, ws, prep, scores=False):
        """E-step of rows start:stop.

        Returns Σ_i w_i log P(x_i | θ) and the workspace views: ``xt`` = [x - r; 1]
        (d + 1, B), ``z`` (K, d, B), ``g`` (z² for diag and spherical), and ``lj``
        = w_i γ_ik (K, B).
        """
        K, d, B = prep["K"], self.n_features, stop - start
        xt, z, g, lj = ws.views(K, d, B)
        xt[d] = 1.0  # views of different lengths share the buffer: rewrite the ones
        np.subtract(self.X[start:stop].T, prep["ref"][:, None], out=xt[:d])
        # z = U_kᵀ (x - μ_k) / √2: Σ_j z_j² is half the Mahalanobis distance
        if "W" in prep:
            np.matmul(prep["W"], xt, out=z.reshape(K * d, B))
            np.einsum("kdb,kdb->kb", z, z, out=lj)  # no (K, d, B) temporary
        else:
            np.multiply(prep["scale"], xt[:d], out=z)
            z -= prep["shift"]
            np.multiply(z, z, out=g)  # z², kept for the diagonal sums
            np.sum(g, axis=1, out=lj)
        np.subtract(prep["const"], lj, out=lj)  # log p_k + log φ(x_i | μ_k, Σ_k)
        top = lj.max(axis=0)
        lj -= top
        np.exp(lj, out=lj)
        total = lj.sum(axis=0)
        log_norm = np.log(total)
        log_norm += top  # log P(x_i | θ)
        sw = None if self.sample_weight is None else self.sample_weight[start:stop]
        loglik = float(log_norm.sum() if sw is None else sw @ log_norm)
        if not scores:
            # γ_ik = exp(.) / total, times w_i: one pass
            lj *= np.reciprocal(total, out=total) if sw is None else np.divide(sw, total)
        return loglik, xt, z, g, lj

    # -- the sums over all blocks --------------------------------------------------------
    def _block_sums(self, prep, kind):
        """Σ over this engine's blocks of the sums of ``kind`` (see ``_sum_shapes``)."""
        K, d = prep["K"], self.n_features
        compiled = self._compiled_input()
        if compiled is not None:
            kernel = self._compiled_kernel(compiled, prep, kind)
        else:

            def kernel(blocks, ws, acc):
                for start, stop in blocks:
                    self._numpy_block(start, stop, ws, prep, kind, acc)

        shapes = _sum_shapes(kind, K, d)
        accs = self._map_blocks(kernel, K, lambda: [np.zeros(shape) for shape in shapes])
        return [sum(acc[i] for acc in accs) for i in range(len(shapes))]

    def _numpy_block(self, start, stop, ws, prep, kind, acc):
        """Add the sums of ``kind`` over rows start:stop to ``acc``, in NumPy calls."""
        loglik, xt, z, g, lj = self._e_block(start, stop, ws, prep, kind == "score")
        acc[0] += loglik
        if kind == "score":
            return
        # Σ_i γ_ik [x_i - r; 1]: every component's first sums in one product
        np.matmul(xt, lj.T, out=ws.sx)
        acc[1] += ws.sx
        if kind == "full":
            np.einsum("kdb,kb->kdb", z, lj, out=g)  # γ_ik z_ik (faster than broadcasting)
            np.matmul(g, z.transpose(0, 2, 1), out=ws.stat)  # Σ_i γ_ik z zᵀ
            acc[2] += ws.stat
        else:
            acc[2] += np.matmul(g, lj[:, :, None])[:, :, 0]  # Σ_i γ_ik z²

    # -- the compiled kernels (gmmlib._kernels, when Numba is installed) ------------------
    def _compiled_input(self):
        """X as an ndarray the compiled kernels can read, or None to use NumPy's kernel."""
        if self.backend != "numba":
            return None
        X = self.X
        if isinstance(X, np.ndarray) and X.dtype in (np.float64, np.float32):
            # a memmap stays a view of its file: nothing is read here
            return X.view(np.ndarray) if type(X) is not np.ndarray else X
        return None

    def _compiled_kernel(self, X, prep, kind):
        """A per-thread kernel that hands all of the thread's blocks to one compiled call."""
        from . import _kernels

        K, d = prep["K"], self.n_features
        mode = 0 if kind == "score" else 1
        sw = np.empty(0) if self.sample_weight is None else self.sample_weight
        const = np.ascontiguousarray(prep["const"][:, 0])
        ref = np.ascontiguousarray(prep["ref"])
        if "W" in prep:
            W = np.ascontiguousarray(prep["W"])

            def kernel(blocks, ws, acc):
                starts = np.array([start for start, _ in blocks], dtype=np.int64)
                stat = acc[2] if mode else ws.stat
                sx = acc[1] if mode else ws.sx
                tmp = ws.stat[0]
                acc[0] += _kernels.full_block_sums(
                    X, sw, starts, ws.block, W, ref, const, ws.xt, ws.z, ws.lj, ws.g,
                    tmp, ws.top, ws.tot, ws.e, ws.bits, sx, stat, mode,
                )  # fmt: skip

            return kernel
        scale = np.ascontiguousarray(prep["scale"][:, :, 0])
        shift = np.ascontiguousarray(prep["shift"][:, :, 0])
        second_scratch = np.empty((K, d))

        def kernel(blocks, ws, acc):
            starts = np.array([start for start, _ in blocks], dtype=np.int64)
            sx = acc[1] if mode else ws.sx
            second = acc[2] if mode else second_scratch
            acc[0] += _kernels.diag_block_sums(
                X, sw, starts, ws.block, scale, shift, ref, const, ws.xt, ws.z, ws.lj,
                ws.top, ws.tot, ws.e, ws.bits, sx, second, mode,
            )  # fmt: skip

        return kernel

    def _sums(self, prep, kind):
        if self._dask:
            return self._dask_sums(prep, kind)
        return self._block_sums(prep, kind)

    def _dask_sums(self, prep, kind):
        """Each Dask chunk's sums by ``map_blocks``, added up by the scheduler."""
        import dask.array as da

        shapes = _sum_shapes(kind, prep["K"], self.n_features)
        sizes = [int(np.prod(shape)) for shape in shapes]
        cov_type, block_size, backend = self.covariance_type, self._block_size, self.backend

        def chunk_sums(x_chunk, w_chunk=None):
            engine = EMEngine(
                x_chunk,
                cov_type,
                sample_weight=None if w_chunk is None else w_chunk[:, 0],
                block_size=block_size,
                n_threads=1,
                backend=backend,
            )
            engine._manage_blas = False  # the calling engine holds BLAS for all chunks
            parts = engine._block_sums(prep, kind)
            return np.concatenate([np.ravel(p) for p in parts])[None, :]

        args = [self.X] if self._dask_weight is None else [self.X, self._dask_weight]
        per_chunk = da.map_blocks(
            chunk_sums,
            *args,
            chunks=((1,) * len(self.X.chunks[0]), (sum(sizes),)),
            dtype=np.float64,
            meta=np.empty((0, 0)),
        )
        with self._blas_limits(2):
            flat = per_chunk.sum(axis=0).compute()
        parts, offset = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(flat[offset : offset + size].reshape(shape))
            offset += size
        return parts

    # -- public ------------------------------------------------------------------------
    def mean_log_likelihood(self, weights, means, prec_chol) -> float:
        """Average (weighted) log P(x_i | θ) over the data, in one blocked pass."""
        prep = self._prepare(weights, means, prec_chol)
        return float(self._sums(prep, "score")[0]) / self.total_weight

    def step(self, weights, means, prec_chol):
        """One EM iteration from θ = (weights, means, prec_chol).

        Parameters
        ----------
        weights : ndarray of shape (n_components,)
        means : ndarray of shape (n_components, n_features)
        prec_chol : ndarray
            Cholesky factors of the precisions, as returned by
            :func:`gmmlib.precision_cholesky` for the covariance type.

        Returns
        -------
        mean_log_likelihood : float
            Average (weighted) log-likelihood per sample of θ, the parameters
            at the start of the iteration.
        weights, means, covariances : ndarray
            The M-step from the responsibilities under θ; covariances shaped
            per type as in scikit-learn. They may not be positive definite if
            a component collapsed: :func:`gmmlib.precision_cholesky` says so.
        """
        prep = self._prepare(weights, means, prec_chol)
        full = self.covariance_type in ("full", "tied")
        loglik, sx, second = self._sums(prep, "full" if full else "diag")
        new = self._m_step(sx, second, np.asarray(means, dtype=np.float64), prec_chol, prep)
        return (float(loglik) / self.total_weight, *new)

    # -- the M-step from the sums --------------------------------------------------------
    def _m_step(self, sx, second, centres, prec_chol, prep):
        """New (weights, means, covariances) from the sums, exactly as :func:`gmmlib.m_step`.

        ``sx`` holds Σ_i γ_ik (x_i - r) and N_k = Σ_i γ_ik; ``second`` the
        second-moment sums in the old whitened frame (scaled by 1/√2).
        """
        cov_type, d = self.covariance_type, self.n_features
        n = sx[d]
        s_y = sx[:d].T - n[:, None] * (centres - prep["ref"])  # Σ_i γ_ik (x_i - c_k)
        nk = n + _NK_FLOOR  # as gmmlib.m_step: a component without samples stays finite
        weights = nk / nk.sum()
        delta = (s_y - _NK_FLOOR * centres) / nk[:, None]  # μ_new - c = Σγx / N_k - c
        means = centres + delta
        prec_chol = np.asarray(prec_chol, dtype=np.float64)
        if cov_type in ("full", "tied"):
            # U = L^-T, so L = (U^-1)ᵀ: a triangular inverse (LAPACK trtri) per component
            inv = [lapack.dtrtri(u, lower=0)[0] for u in np.reshape(prec_chol, (-1, d, d))]
            L = np.stack(inv).transpose(0, 2, 1) / _HALF  # the sums are of z / √2
            M_y = L @ second @ L.transpose(0, 2, 1)  # Σ_i γ_ik (x_i - c_k)(x_i - c_k)ᵀ
            outer = s_y[:, :, None] * delta[:, None, :]
            scatter = M_y - outer - outer.transpose(0, 2, 1)
            scatter += n[:, None, None] * delta[:, :, None] * delta[:, None, :]
            scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
            if cov_type == "full":
                cov = scatter / nk[:, None, None]
                cov[:, np.arange(d), np.arange(d)] += self.reg_covar
            else:
                cov = scatter.sum(axis=0) / nk.sum()
                cov.flat[:: d + 1] += self.reg_covar
            return weights, means, cov
        # diag and spherical: z = (x - c) / (σ √2)
        sigma = 1.0 / (prec_chol[:, None] * np.ones((1, d)) if prec_chol.ndim == 1 else prec_chol)
        s_yy = second * (sigma / _HALF) ** 2  # Σ_i γ_ik (x_ij - c_kj)²
        var = (s_yy - 2.0 * delta * s_y + n[:, None] * delta**2) / nk[:, None]
        var += self.reg_covar
        return weights, means, var if cov_type == "diag" else var.mean(axis=1)
