"""Blocks of rows, threads over the blocks, and BLAS held to one thread meanwhile.

The machinery of :class:`gmmlib.EMEngine` that does not depend on the arithmetic: how
many rows a block has, how many threads share a pass's blocks, the buffers each thread
keeps from pass to pass, and the BLAS limit around the passes (see the chapter "Making
EM fast" for why).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager

import numpy as np

#: Rows per block when not given. NumPy's kernel: the block's work arrays take about
#: 4 MiB, since smaller blocks pay more in NumPy's per-call overhead than they gain in
#: cache. The compiled kernel: the whitened vectors take about 256 KiB, so that they
#: stay in a core's L2 cache between its passes. Up to 4096 rows (with few components
#: and features) a problem is a single block: no threads, no BLAS limit.
_TARGET_BLOCK_BYTES = 4 << 20
_MIN_BLOCK, MAX_BLOCK = 128, 4096
_COMPILED_BLOCK_BYTES, _MIN_COMPILED_BLOCK = 256 << 10, 64


def default_block_size(n_components: int, n_features: int, backend: str = "numpy") -> int:
    """Rows per block: work arrays of about 4 MiB for NumPy, 256 KiB compiled (to 4096 rows).

    NumPy's kernel pays a call per pass over a block and gains from long rows; the
    compiled kernel makes no such calls and runs fastest when the block's whitened
    vectors (K d of them per row) stay in the core's L2 cache between its passes.

    Parameters
    ----------
    n_components, n_features : int
    backend : {"numpy", "numba"}, default "numpy"
        The kernel that will compute the blocks.

    Returns
    -------
    int
    """
    if backend == "numba":
        rows = _COMPILED_BLOCK_BYTES // max(8 * n_components * n_features, 1)
        return int(min(MAX_BLOCK, max(_MIN_COMPILED_BLOCK, rows)))
    per_row = 8 * (n_components * (2 * n_features + 1) + n_features + 1)
    rows = _TARGET_BLOCK_BYTES // max(per_row, 1)
    return int(min(MAX_BLOCK, max(_MIN_BLOCK, rows)))


def block_starts(n_samples: int, block: int) -> np.ndarray:
    """The first row of every block of ``block`` rows (the last block may be shorter)."""
    return np.arange(0, n_samples, block, dtype=np.int64)


def _have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover - gmmlib requires it; an install may still lack it
        return False
    return True


def default_threads() -> int:
    """The number of cores this process may run on; 1 without threadpoolctl.

    Without threadpoolctl BLAS cannot be held to one thread, and several engine threads
    each calling a multi-threaded BLAS would compete for the same cores.
    """
    if not _have_threadpoolctl():  # pragma: no cover - see _have_threadpoolctl
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Workspace:
    """One thread's buffers, kept from one pass to the next: each is allocated once.

    A new array of a few MiB is new pages from the operating system, and their first
    touch costs a good part of what NumPy's kernel spends on a block of a small problem.
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}
        self._arrays: dict[tuple, np.ndarray] = {}

    def array(self, name: str, shape: tuple) -> np.ndarray:
        """A C-contiguous float64 array of ``shape`` in the buffer ``name``; contents undefined.

        Arrays of one name share their memory, so a name is for one quantity ("z",
        "resp", ...); the last, shorter block gets a contiguous array too. The arrays
        are kept as well: a lookup costs less than slicing and reshaping at every block.
        """
        key = (name, shape)
        array = self._arrays.get(key)
        if array is None:
            size = math.prod(shape)
            buffer = self._buffers.get(name)
            if buffer is None or buffer.size < size:
                buffer = self._buffers[name] = np.empty(size)
                self._arrays = {k: v for k, v in self._arrays.items() if k[0] != name}
            array = self._arrays[key] = buffer[:size].reshape(shape)
        return array


def in_this_thread(work, starts: np.ndarray) -> list:
    """``work(starts, workspace)`` in the calling thread, BLAS untouched (a Dask chunk)."""
    return [work(starts, Workspace())]


class _BlasLimit:
    """BLAS held to one thread for the whole process while anyone holds it: a reference count.

    The BLAS thread count is process-wide, so concurrent holders (engines fitting in
    several Python threads) must share one limit: the first holder sets it and keeps
    threadpoolctl's record of the original limits, the last one restores them, under a
    lock. (Each holder limiting and restoring on its own is a race: a holder that
    starts while another holds records 1 as "the original" and, leaving last, restores
    1 for good.)

    threadpoolctl 3.8 lets one Python thread at a time change OpenBLAS's limits (its
    "controlling thread"; the others' calls do nothing), and a thread keeps that role
    after setting a limit outside a ``with`` block. The last holder may not be the
    first one's thread, so each thread here gives the role back right after it sets or
    restores the limits (when it holds the role at that point).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._holders = 0
        self._limiter = None  # threadpoolctl's limiter: it saved the original limits

    def acquire(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._limiter = _blas_controller().limit(limits=1, user_api="blas")
                _give_back_blas_control()
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                limiter, self._limiter = self._limiter, None
                limiter.restore_original_limits()
                _give_back_blas_control()


_CONTROLLER = []


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded now, made once per process.

    Making one looks through every loaded library (some milliseconds: more than a
    prediction on a thousand rows takes); setting and restoring limits through it takes
    some microseconds. The engine's kernels load scipy's BLAS with NumPy's before the
    first limit, so both are in it.
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _give_back_blas_control() -> None:
    """Let other threads change OpenBLAS's limits again (threadpoolctl >= 3.8; else nothing).

    Clears threadpoolctl's controlling thread only if it is the calling thread.
    """
    import threadpoolctl

    clear = getattr(
        getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None
    )
    if clear is not None:
        clear()


_BLAS_LIMIT = _BlasLimit()


@contextmanager
def blas_single_thread():
    """BLAS held to one thread inside the ``with`` block, restored when the last holder leaves.

    Through threadpoolctl when it is installed; without it nothing is changed (and the
    engine runs on one thread, see ``default_threads``). Holders in any threads share
    one process-wide limit (``_BlasLimit``): BLAS goes back to its original thread
    count when the last of them leaves, whatever the order.
    """
    if not _have_threadpoolctl():  # pragma: no cover - see _have_threadpoolctl
        yield
        return
    _BLAS_LIMIT.acquire()
    try:
        yield
    finally:
        _BLAS_LIMIT.release()


class BlockThreads:
    """Runs a pass's blocks on up to ``n_threads`` threads, BLAS on one thread meanwhile.

    Blocks are small matrices: a multi-threaded BLAS only adds synchronisation there,
    and the pass's own threads use the cores. Outside a ``with`` block the limit is
    held for each pass of more than one block. Inside one, it is taken at the first
    such pass (or by :meth:`hold_blas`) and kept, in one ``ExitStack``, until the
    ``with`` block ends: it is not set and reset at every iteration.
    """

    def __init__(self, n_threads: int):
        self.n_threads = n_threads
        self._workspaces = [Workspace() for _ in range(n_threads)]
        self._depth = 0
        self._held: ExitStack | None = None  # the limits of the current with block
        self._blas_limited = False

    def __enter__(self):
        self._depth += 1
        if self._depth == 1:
            self._held = ExitStack()
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            held, self._held, self._blas_limited = self._held, None, False
            held.close()
        return False

    def hold_blas(self) -> None:
        """Hold BLAS to one thread from now until the ``with`` block ends."""
        if self._held is None:
            raise RuntimeError("hold_blas is for use inside a with block.")
        if not self._blas_limited:
            self._held.enter_context(blas_single_thread())
            self._blas_limited = True

    @contextmanager
    def single_threaded_blas(self):
        """BLAS on one thread inside; within a ``with`` block of self, until that ends."""
        if self._held is None:
            with blas_single_thread():
                yield
        else:
            self.hold_blas()
            yield

    def map(self, work, starts: np.ndarray) -> list:
        """``work(share_t, workspace_t)`` for each thread t of T; the results in order.

        ``work`` is called with an array of block starts and the thread's workspace;
        the blocks are cut into T runs of consecutive blocks, thread t taking run t
        (the calling thread the first). Consecutive rows keep each core's reads
        sequential, which the hardware prefetcher follows: on this project's 2-core
        machine an interleaved split was about 25 % slower. An exception in any thread
        is raised here, after all threads have finished.
        """
        workspaces = self._workspaces
        if len(starts) == 1:
            return [work(starts, workspaces[0])]
        n_threads = min(self.n_threads, len(starts))
        with self.single_threaded_blas():
            if n_threads == 1:
                return [work(starts, workspaces[0])]
            shares = np.array_split(starts, n_threads)
            pool = _worker_pool(n_threads - 1)
            others = [pool.submit(work, shares[t], workspaces[t]) for t in range(1, n_threads)]
            try:
                mine = work(shares[0], workspaces[0])
            finally:
                wait(others)  # every share finishes before anything is raised
            return [mine, *(future.result() for future in others)]


_POOL: list = []  # [ThreadPoolExecutor, its number of threads], made on first use
_POOL_LOCK = threading.Lock()


def _worker_pool(n_workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``n_workers`` threads, kept from pass to pass.

    Starting threads at every pass costs some hundred microseconds: a good part of a
    small problem's iteration. The workers never wait on each other (each runs one
    share of a pass), so engines in several Python threads can share them. A forked
    child gets a new pool (the parent's threads do not exist there).
    """
    with _POOL_LOCK:
        if not _POOL or _POOL[1] < n_workers:
            # A smaller pool is dropped, not shut down: an engine in another thread may be
            # about to hand it a share; its threads end once nothing refers to it.
            _POOL[:] = [ThreadPoolExecutor(n_workers, thread_name_prefix="gmmlib"), n_workers]
        return _POOL[0]


def _forget_pool_in_child() -> None:
    _POOL.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
