"""The blocked EM engine computes the same iterations as the formula functions."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import helpers as h
import numpy as np
import pytest

from gmmlib import (
    EMEngine,
    GaussianMixture,
    _estimator,
    _kernels,
    log_likelihood,
    precision_cholesky,
    sample_mixture,
)
from gmmlib._blocks import BlockThreads, default_block_size, in_this_thread
from gmmlib._engine import FullConstants, block_sums, e_step_constants

# The compiled kernels (gmmlib._kernels) need Numba, which requirements.txt installs; the
# NumPy kernel is the fallback without it. Both must compute the formula functions' iterations.
needs_numba = pytest.mark.skipif(not _kernels.have_numba(), reason="needs numba")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_SAMPLES, N_ITER, REG = 1003, 5, 1e-6


@pytest.fixture(scope="module")
def problem():
    """Three overlapping 3-D Gaussians away from the origin, a start, and sample weights."""
    rng = np.random.default_rng(7)
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[50.0, 10.0, -20.0], [53.0, 12.0, -19.0], [48.0, 7.0, -22.0]])
    A = rng.normal(size=(3, 3, 3))
    covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(3)
    X, _ = sample_mixture(N_SAMPLES, weights, means, covariances, "full", rng)
    start_means = X[rng.choice(N_SAMPLES, 3, replace=False)]
    start_cov = np.repeat((np.cov(X.T) + 0.1 * np.eye(3))[None], 3, axis=0)
    sample_weight = rng.uniform(0.0, 3.0, N_SAMPLES)
    sample_weight[::10] = 0.0
    return X, (np.full(3, 1 / 3), start_means, start_cov), sample_weight


# The formula functions' iterations and the engine's (tests/helpers.py), at this file's
# regularisation and number of iterations.
reference_em = functools.partial(h.reference_em, reg_covar=REG, n_iter=N_ITER)
engine_em = functools.partial(h.engine_em, n_iter=N_ITER)
assert_same = h.assert_same_em
_cov_of_type = h.cov_of_type


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize(
    ("block_size", "n_threads"),
    [(None, 1), (1000, 1), (97, 1), (N_SAMPLES, 2), (64, 2), (7, 2)],
    ids=["one-block", "1000-rows", "97-rows", "one-block-2-threads", "64-rows-2", "7-rows-2"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_equals_formula_functions(
    problem, covariance_type, weighted, block_size, n_threads, backend
):
    X, start, sample_weight = problem
    sw = sample_weight if weighted else None
    engine = EMEngine(
        X, covariance_type, REG, sw, block_size=block_size, n_threads=n_threads, backend=backend
    )
    assert engine.backend == backend
    assert_same(
        engine_em(engine, start, covariance_type), reference_em(X, start, covariance_type, sw)
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_memmap_input(problem, tmp_path, covariance_type, backend):
    X, start, sample_weight = problem
    path = tmp_path / "X.dat"
    stored = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    stored[:] = X
    stored.flush()
    del stored
    X_file = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    engine = EMEngine(
        X_file, covariance_type, REG, sample_weight, block_size=128, n_threads=2, backend=backend
    )
    assert_same(
        engine_em(engine, start, covariance_type),
        reference_em(X, start, covariance_type, sample_weight),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_memmap_is_read_in_float64(problem, tmp_path, backend):
    X, start, _ = problem
    X32 = X.astype(np.float32)
    path = tmp_path / "X32.dat"
    np.asarray(X32).tofile(path)
    X_file = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    engine = EMEngine(X_file, "full", REG, block_size=250, backend=backend)
    assert_same(
        engine_em(engine, start, "full"),
        reference_em(X32.astype(np.float64), start, "full", None),
    )


@pytest.mark.filterwarnings("ignore::gmmlib.ConvergenceWarning")
def test_estimator_fit_on_memmap(problem, tmp_path):
    X, start, _ = problem
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_file = np.load(path, mmap_mode="r")
    kwargs = dict(tol=0.0, max_iter=N_ITER, reg_covar=REG, weights_init=start[0])
    kwargs.update(means_init=start[1], covariances_init=start[2])
    a = GaussianMixture(3, **kwargs).fit(X_file)
    b = GaussianMixture(3, **kwargs).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore::gmmlib.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimator_runs_the_formula_iterations(problem, covariance_type):
    """GaussianMixture.fit (through the engine): same history and parameters."""
    X, start, sample_weight = problem
    w, m, c = start
    model = GaussianMixture(
        3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=N_ITER,
        reg_covar=REG,
        weights_init=w,
        means_init=m,
        covariances_init=_cov_of_type(c, covariance_type),
    )
    model.fit(X, sample_weight=sample_weight)
    history, (w, m, c) = reference_em(X, start, covariance_type, sample_weight)
    final = log_likelihood(X, w, m, c, covariance_type, sample_weight) / sample_weight.sum()
    np.testing.assert_allclose(model.log_likelihood_history_, [*history, final], atol=1e-10)
    for a, b in zip((model.weights_, model.means_, model.covariances_), (w, m, c), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_log_likelihood(problem, covariance_type, backend):
    X, (w, m, c), sample_weight = problem
    c = _cov_of_type(c, covariance_type)
    kw = dict(sample_weight=sample_weight, block_size=100, n_threads=2, backend=backend)
    engine = EMEngine(X, covariance_type, **kw)
    expected = log_likelihood(X, w, m, c, covariance_type, sample_weight) / sample_weight.sum()
    got = engine.mean_log_likelihood(w, m, precision_cholesky(c, covariance_type))
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_accurate_far_from_the_origin(backend):
    """Data at 1e8: one iteration gives the fit of the same data at 0, shifted.

    (One iteration only: new means at 1e8 are themselves rounded to ~1e-8, so
    later iterations start from slightly different parameters.)
    """
    rng = np.random.default_rng(3)
    Y = np.vstack([rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2)) * [1.0, 2.0] + 4.0])
    offset = 1e8
    X = Y + offset
    Y = X - offset  # exact: Y is what X holds
    cov = np.repeat(np.array([[[2.0, 0.3], [0.3, 0.7]]]), 2, axis=0)
    start = (np.array([0.5, 0.5]), Y[[0, -1]], cov)
    far = (start[0], X[[0, -1]], start[2])
    engine = EMEngine(X, "full", REG, block_size=512, n_threads=2, backend=backend)
    (ll,), (w, m, c) = engine_em(engine, far, "full", n_iter=1)
    (ll0,), (w0, m0, c0) = reference_em(Y, start, "full", None, n_iter=1)
    assert ll == pytest.approx(ll0, abs=1e-12)
    np.testing.assert_allclose(w, w0, rtol=1e-12)
    np.testing.assert_allclose(m - offset, m0, atol=3e-8)  # m holds ~1.5e-8 at 1e8
    np.testing.assert_allclose(c, c0, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weight_equals_dropping_rows(problem, backend):
    X, start, _ = problem
    sw = np.ones(X.shape[0])
    sw[:300] = 0.0
    kw = dict(block_size=128, backend=backend)
    full = engine_em(EMEngine(X, "diag", REG, sw, **kw), start, "diag")
    dropped = engine_em(EMEngine(X[300:], "diag", REG, **kw), start, "diag")
    assert_same(full, dropped)


def _blas_threads():
    import threadpoolctl

    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def blas_two_threads():
    """BLAS set to two threads around the test, so that holding it to one can be seen.

    Yields the BLAS libraries' thread counts before the engine runs (all 2).
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        if not before or min(before) < 2:
            pytest.skip(f"BLAS cannot run two threads here ({before}): no limit to observe")
        yield before


def test_blas_held_to_one_thread_and_restored(problem, blas_two_threads):
    X, start, _ = problem
    engine = EMEngine(X, "full", REG, block_size=100, n_threads=2)
    with engine:
        engine.step(start[0], start[1], precision_cholesky(start[2]))
        inside = _blas_threads()
        engine.step(start[0], start[1], precision_cholesky(start[2]))
    assert inside == [1] * len(blas_two_threads)
    assert _blas_threads() == blas_two_threads
    # a step outside the context holds BLAS for its own duration only
    engine.step(start[0], start[1], precision_cholesky(start[2]))
    assert _blas_threads() == blas_two_threads


@pytest.mark.parametrize("block_size", [None, 1000])
def test_blas_held_from_the_start_when_every_pass_has_several_blocks(block_size, blas_two_threads):
    engine = EMEngine(np.zeros((5000, 2)), block_size=block_size)  # more rows than a block
    with engine:
        assert _blas_threads() == [1] * len(blas_two_threads)
    assert _blas_threads() == blas_two_threads


def test_block_threads_hold_blas_from_the_first_pass_of_several_blocks(blas_two_threads):
    one_thread = [1] * len(blas_two_threads)

    def blas_during(share, _workspace):
        return len(share), _blas_threads()

    threads = BlockThreads(2)
    # outside a with block: held during a pass of several blocks only
    assert threads.map(blas_during, np.array([0])) == [(1, blas_two_threads)]
    assert threads.map(blas_during, np.array([0, 10, 20])) == [(2, one_thread), (1, one_thread)]
    assert _blas_threads() == blas_two_threads
    with threads:
        threads.map(blas_during, np.array([0]))
        assert _blas_threads() == blas_two_threads  # one block: no limit taken
        threads.map(blas_during, np.array([0, 10]))
        assert _blas_threads() == one_thread  # kept between passes
        with threads:  # re-entered: the outer with block still owns the limit
            pass
        assert _blas_threads() == one_thread
    assert _blas_threads() == blas_two_threads


def test_collapsing_component_names_it_and_suggests_reg_covar():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)), np.full((20, 2), 8.0)])
    model = GaussianMixture(
        2,
        reg_covar=0.0,
        tol=0.0,
        max_iter=20,
        weights_init=[0.9, 0.1],
        means_init=[[0.0, 0.0], [8.0, 8.0]],
        covariances_init=np.repeat(np.eye(2)[None], 2, axis=0),
    )
    with pytest.raises(ValueError, match=r"(?s)Component.*1.*reg_covar"):
        model.fit(X)


def test_small_problem_is_one_block_without_blas_limits(blas_two_threads):
    X = np.random.default_rng(0).normal(size=(2000, 2))
    engine = EMEngine(X, "full")
    assert default_block_size(3, 2, engine.backend) >= 2000
    with engine:
        engine.step(np.full(3, 1 / 3), X[:3], np.repeat(np.eye(2)[None], 3, axis=0))
        assert _blas_threads() == blas_two_threads


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(sample_weight=np.ones(3)), "sample_weight must have shape"),
        (dict(sample_weight=np.r_[-1.0, np.ones(9)]), "sample_weight must be finite and non-neg"),
        (dict(sample_weight=np.zeros(10)), "sample_weight sums to zero"),
        (dict(block_size=2.7), "block_size must be an integer"),
        (dict(block_size=0), "block_size must be at least 1"),
        (dict(n_threads=0), "n_threads must be at least 1"),
        (dict(n_threads=1.5), "n_threads must be an integer"),
        (dict(covariance_type="round"), "covariance_type must be one of"),
        (dict(reg_covar=-1.0), "reg_covar"),
        (dict(backend="fortran"), "backend must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EMEngine(np.zeros((10, 2)), **kwargs)


def test_data_must_be_2d_with_rows():
    with pytest.raises(ValueError, match="2-D"):
        EMEngine(np.zeros(5))
    with pytest.raises(ValueError, match="no rows"):
        EMEngine(np.zeros((0, 2)))


def test_backend_without_numba(monkeypatch):
    """Without Numba, 'auto' falls back to NumPy and asking for 'numba' says what to install."""
    monkeypatch.setattr(_kernels, "have_numba", lambda: False)
    X = np.zeros((10, 2))
    assert EMEngine(X).backend == "numpy"
    with pytest.raises(ImportError, match="pip install numba"):
        EMEngine(X, backend="numba")


def test_gmmlib_runs_without_numba():
    """With Numba unimportable, gmmlib imports, the engine takes NumPy's kernel and fits."""
    code = """if True:
        import sys
        sys.modules["numba"] = None  # any `import numba` now raises ImportError
        import numpy as np
        import gmmlib
        X, _ = gmmlib.article_samples()
        assert gmmlib.EMEngine(X).backend == "numpy"
        gm = gmmlib.GaussianMixture(3, random_state=0).fit(X)
        assert sys.modules["numba"] is None
        assert gm.converged_
        np.testing.assert_allclose(np.sort(gm.weights_), [0.1, 0.3, 0.6], atol=0.02)
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_default_threads_are_the_cores_the_process_may_use():
    pytest.importorskip("threadpoolctl")
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("os.sched_getaffinity is Linux-only")
    assert EMEngine(np.zeros((10, 2))).n_threads == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_any_thread_count_gives_the_same_iterations(problem, covariance_type, backend):
    """1 to 8 threads over 16 blocks: only the order of additions changes (1e-12)."""
    X, start, sample_weight = problem
    kwargs = dict(block_size=64, backend=backend)
    results = [
        engine_em(
            EMEngine(X, covariance_type, REG, sample_weight, n_threads=n_threads, **kwargs),
            start,
            covariance_type,
        )
        for n_threads in (1, 2, 3, 5, 8)
    ]
    (history, params), others = results[0], results[1:]
    for other_history, other_params in others:
        np.testing.assert_allclose(other_history, history, rtol=0, atol=1e-12)
        for a, b in zip(other_params, params, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_block_threads_share_out_every_block_once_and_raise_a_threads_error():
    """Each block goes to one thread; each thread keeps its own workspace from pass to pass."""
    starts = np.arange(0, 1100, 100)

    def share_and_workspace(share, workspace):
        return share.tolist(), workspace

    for n_threads in (1, 2, 3, 11, 20):
        threads = BlockThreads(n_threads)
        shares, workspaces = zip(*threads.map(share_and_workspace, starts), strict=True)
        assert len(shares) == min(n_threads, len(starts))
        # consecutive blocks per thread, in order: rows read sequentially by each core
        assert [s for share in shares for s in share] == starts.tolist()
        assert len(set(map(id, workspaces))) == len(workspaces)
        again = [workspace for _, workspace in threads.map(share_and_workspace, starts)]
        assert all(a is b for a, b in zip(again, workspaces, strict=True))

    def fails_in_a_worker(share, _workspace):
        if share[0] != 0:  # not the calling thread's share (that one starts at row 0)
            raise RuntimeError("boom")
        return share

    with pytest.raises(RuntimeError, match="boom"):
        BlockThreads(3).map(fails_in_a_worker, starts)


def test_the_shared_thread_pool_grows_without_stopping_a_pool_in_use():
    """Engines share one pool of threads; one that needs more threads makes a bigger pool,
    and the smaller one, which an engine in another thread may be about to use, still
    runs what it is given (it was shut down at first: "cannot schedule new futures")."""
    from gmmlib import _blocks

    small = _blocks._worker_pool(1)
    big = _blocks._worker_pool(_blocks._POOL[1] + 3)
    assert big is not small and _blocks._worker_pool(1) is big
    assert small.submit(sum, [1, 2]).result() == 3
    with ThreadPoolExecutor(4) as users:  # engines of different thread counts at once
        shares = list(
            users.map(
                lambda n: BlockThreads(n).map(lambda s, w: s.tolist(), np.arange(8)),
                [2, 3, 5, 8] * 3,
            )
        )
    assert all(sum(share, []) == list(range(8)) for share in shares)


@needs_numba
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("scores_only", [False, True], ids=["sums", "scores"])
def test_numpy_and_compiled_kernels_add_up_the_same_sums(
    problem, covariance_type, weighted, scores_only
):
    """The same arithmetic twice: both kernels' sums agree to rounding; scores leave the rest."""
    X, (w, m, c), sample_weight = problem
    c = _cov_of_type(c, covariance_type)
    constants = e_step_constants(w, m, precision_cholesky(c, covariance_type), covariance_type)
    sw = sample_weight if weighted else None
    numpy_sums, compiled_sums = (
        block_sums(X, sw, constants, scores_only, backend, 97, in_this_thread)
        for backend in ("numpy", "numba")
    )
    assert isinstance(constants, FullConstants) == (covariance_type in ("full", "tied"))
    assert compiled_sums.log_likelihood == pytest.approx(numpy_sums.log_likelihood, rel=1e-13)
    for a, b in zip(compiled_sums[1:], numpy_sums[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        assert np.any(a != 0) != scores_only


@needs_numba
def test_default_backend_is_compiled_and_noncontiguous_input_works(problem):
    """'auto' takes the compiled kernels; a strided view of X gives the same iterations."""
    X, start, sample_weight = problem
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    engine = EMEngine(wide[:, ::2], "full", REG, sample_weight, block_size=200)
    assert engine.backend == "numba"
    assert_same(engine_em(engine, start, "full"), reference_em(X, start, "full", sample_weight))


@needs_numba
def test_compiled_exp_matches_numpy():
    """The vectorisable exp of gmmlib._kernels is within 2 units in the last place of np.exp
    from 0 down to -460, and exactly 0 below (e^-460 ≈ 1e-200: see its docstring), with
    exp(-inf) = 0 (a component of weight 0)."""
    from gmmlib._kernels import _EXP_FLUSH, exp_nonpositive

    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            -rng.exponential(1.0, 20000),
            -rng.uniform(0.0, 760.0, 20000),
            np.linspace(-461.0, -459.0, 2001),
            [0.0, -0.0, -1e-300, -np.log(2) / 2, -np.log(2), -460.0, -708.0, -800.0, -np.inf],
        ]
    )
    out = np.empty_like(x)
    exp_nonpositive(x, out)
    kept = x >= _EXP_FLUSH
    expected = np.exp(x[kept])
    # spacing() is the unit in the last place
    np.testing.assert_array_less(np.abs(out[kept] - expected), 2 * np.spacing(expected))
    assert np.all(out[~kept] == 0.0) and (~kept).sum() > 5000
    assert _EXP_FLUSH == -460.0 and out[-1] == 0.0 and out[-2] == 0.0  # exp(-inf), exp(-800)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dask_array_input(problem, covariance_type, backend):
    """Each chunk's sums by map_blocks, added by Dask's threaded scheduler (optional)."""
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    X, start, sample_weight = problem
    X_dask = da.from_array(X, chunks=(300, 2))  # uneven rows; columns rechunked whole
    with dask.config.set(scheduler="threads"):
        engine = EMEngine(
            X_dask, covariance_type, REG, sample_weight, block_size=128, backend=backend
        )
        assert_same(
            engine_em(engine, start, covariance_type),
            reference_em(X, start, covariance_type, sample_weight),
        )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::gmmlib.ConvergenceWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_memory_does_not_grow_with_n(backend, monkeypatch):
    """With the whole start given, fit adds the same memory for 100 000 and 400 000 rows.

    What it adds is the kernel's block buffers (under 1 MiB here); one float64 per row more
    would be 2.3 MiB more at the larger size. tracemalloc sees NumPy's arrays and Numba's.
    One thread: a compiled kernel allocates its buffers in each call, so with two threads
    the peak would depend on whether their calls happened to overlap in time.
    """
    import tracemalloc

    engine = functools.partial(EMEngine, backend=backend, n_threads=1)
    monkeypatch.setattr(_estimator, "EMEngine", engine)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400_000, 2))

    def added_by_fit(data):
        model = GaussianMixture(
            2,
            tol=0.0,
            max_iter=2,
            weights_init=[0.5, 0.5],
            means_init=[[-1.0, 0.0], [1.0, 0.0]],
            covariances_init=np.repeat(np.eye(2)[None], 2, axis=0),
        )
        model.fit(data)  # compile and warm up outside the measurement
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            model.fit(data)
            return tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()

    small, large = added_by_fit(X[:100_000]), added_by_fit(X)
    assert large - small < 0.25 * 2**20, f"{small / 2**20:.2f} -> {large / 2**20:.2f} MiB"


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_the_recentred_pass_gives_the_one_pass_update(problem, covariance_type, weighted):
    """The second pass (sums about the new means, for starts far from the data) computes
    the same M-step as the one pass where that is accurate."""
    X, (w, m, c), sample_weight = problem
    c = _cov_of_type(c, covariance_type)
    sw = sample_weight if weighted else None
    engine = EMEngine(X, covariance_type, REG, sw, block_size=97, n_threads=2)
    prec_chol = precision_cholesky(c, covariance_type)
    constants = e_step_constants(w, m, prec_chol, covariance_type)
    sums = engine._sums(constants, scores_only=False)
    one_pass = engine._params(sums, constants, m, prec_chol)
    moved = e_step_constants(w, one_pass[1], prec_chol, covariance_type)
    again = engine._sums(constants, False, moved)
    assert again.log_likelihood == pytest.approx(sums.log_likelihood, rel=1e-13)
    for a, b in zip(engine._params(again, moved, one_pass[1], prec_chol), one_pass, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


#: The expanded kernels and the unit covariances of their test, per covariance type.
_EXPANDED = {
    "tied": ("compiled_tied_sums", np.eye(2)),
    "diag": ("compiled_expanded_sums", np.ones((3, 2))),
    "spherical": ("compiled_expanded_sums", np.ones(3)),
    "full": ("compiled_expanded_sums", np.repeat(np.eye(2)[None], 3, axis=0)),
}


@needs_numba
@pytest.mark.parametrize("covariance_type", list(_EXPANDED))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("separation", [30.0, 3000.0], ids=["near", "far"])
def test_expanded_kernels_and_their_fallback_compute_the_formula_iterations(
    separation, weighted, covariance_type, monkeypatch
):
    """Tied covariances (one shared whitening) and diagonal, spherical and full ones (the
    log-densities as one matrix product) sum about the reference point while the means
    lie within ~100 standard deviations of it; beyond, where the expansion would lose
    digits, the per-component kernels. Both give the formula functions' iterations to
    1e-10. (Full covariances are expanded only from ``_FULL_EXPANSION_MIN_COMPONENTS``
    components, set to 1 here to test the kernel on three.)"""
    from gmmlib import _engine, _kernels

    monkeypatch.setattr(_engine, "_FULL_EXPANSION_MIN_COMPONENTS", 1)

    name, covariances = _EXPANDED[covariance_type]
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [separation, 1.0], [-separation, 2.0]])
    X, _ = sample_mixture(3000, np.full(3, 1 / 3), means, covariances, covariance_type, rng)
    sw = rng.uniform(0.0, 2.0, len(X)) if weighted else None
    calls = []
    expanded_kernel = getattr(_kernels, name)

    def counted(*args):
        calls.append(1)
        return expanded_kernel(*args)

    monkeypatch.setattr(_kernels, name, counted)
    start = (np.full(3, 1 / 3), means + 0.1, np.repeat(np.eye(2)[None], 3, axis=0))
    engine = EMEngine(X, covariance_type, REG, sw, block_size=256, n_threads=2, backend="numba")
    expected = reference_em(X, start, covariance_type, sw)
    assert_same(engine_em(engine, start, covariance_type), expected)
    assert bool(calls) == (separation**2 / 2 < _engine._EXPANSION_MAX)


@needs_numba
@pytest.mark.parametrize(
    ("n_components", "n_features", "backend", "expanded"),
    [(8, 8, "numba", True), (16, 32, "numba", True), (7, 8, "numba", False),
     (8, 33, "numba", False), (8, 8, "numpy", False)],
)  # fmt: skip
def test_full_covariances_are_expanded_where_measured_faster(
    n_components, n_features, backend, expanded, monkeypatch
):
    """Full covariances go through the expanded kernel from
    ``_FULL_EXPANSION_MIN_COMPONENTS`` components and up to
    ``_FULL_EXPANSION_MAX_FEATURES`` features, compiled only."""
    from gmmlib import _engine, _kernels

    calls = []
    expanded_kernel = _kernels.compiled_expanded_sums
    monkeypatch.setattr(
        _kernels, "compiled_expanded_sums", lambda *a: calls.append(1) or expanded_kernel(*a)
    )
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, n_features))
    K = n_components
    start = (np.full(K, 1 / K), X[:K], np.repeat(np.eye(n_features)[None], K, axis=0))
    engine = EMEngine(X, "full", REG, backend=backend)
    expected = reference_em(X, start, "full", None, n_iter=2)
    assert_same(engine_em(engine, start, "full", n_iter=2), expected)
    assert bool(calls) == expanded
    assert (_engine._FULL_EXPANSION_MIN_COMPONENTS, _engine._FULL_EXPANSION_MAX_FEATURES) == (8, 32)
