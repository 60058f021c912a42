"""Promises kept under hostile input (issue 12, section 2).

Zero and rescaled sample weights, memmaps that must stay on disk, a package on a
read-only path, fits running in threads, data sitting far from the origin, the
kernel backend, and the extremes (tiny and huge scales, points far from every
component, more components than distinct samples, constant columns). Each defect's
regression test failed before its fix; a few tests guard what already held (tiny and
huge scales, constant columns, more components than distinct samples).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import helpers as h
import numpy as np
import pytest

import gmmlib
from gmmlib import EMEngine, _kernels, precision_cholesky
from gmmlib._validation import INIT_METHODS

needs_numba = pytest.mark.skipif(not _kernels.have_numba(), reason="needs numba")


def _fit(X, sample_weight=None, n_components=3, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        return gmmlib.GaussianMixture(n_components, **options).fit(X, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=1e-10, atol=1e-10):
    h.assert_params_close(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        a.log_likelihood_history_, b.log_likelihood_history_, rtol=rtol, atol=atol
    )


# -- 1. a row of weight 0 is a deleted row, for every start ---------------------------------
@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("weights", ["ones", "varied"])
def test_a_row_of_weight_zero_is_the_same_as_no_row(init_params, weights):
    """Rows of weight 0 anywhere (one far enough to take a k-means cluster of its own,
    one beyond the range of squared distances) change nothing, whatever the start."""
    X, _ = gmmlib.article_samples(n_samples=400)
    w = np.ones(len(X)) if weights == "ones" else np.random.default_rng(5).uniform(0.5, 2, len(X))
    at, rows = [0, 150, 400], [[1000.0, 1000.0], [-60.0, 3.0], [1e200, -1e200]]
    with_zeros = _fit(np.insert(X, at, rows, axis=0), np.insert(w, at, 0.0), **_start(init_params))
    deleted = _fit(X, None if weights == "ones" else w, **_start(init_params))
    _assert_same_fit(with_zeros, deleted)
    assert with_zeros.weights_.min() > 0.05  # no component parked on a row of weight 0


def _start(init_params):
    return dict(init_params=init_params, random_state=3, tol=1e-6, max_iter=200)


@pytest.mark.parametrize("method", INIT_METHODS)
def test_initial_responsibilities_of_weight_zero_rows_take_no_part(method):
    X, _ = gmmlib.article_samples(n_samples=200)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    w[::7] = 0.0
    kept = w > 0
    resp = gmmlib.initial_responsibilities(X, 3, method, 4, sample_weight=w)
    alone = gmmlib.initial_responsibilities(X[kept], 3, method, 4, sample_weight=w[kept])
    np.testing.assert_array_equal(resp[kept], alone)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-14)
    # equal positive weights of any size: exactly the unweighted start
    np.testing.assert_array_equal(
        gmmlib.initial_responsibilities(X, 3, method, 4, sample_weight=np.full(len(X), 1e-9)),
        gmmlib.initial_responsibilities(X, 3, method, 4),
    )


def test_weighted_kmeans_start_follows_the_weights():
    """Integer weights are repeated rows: 0..9 with 0 weighted 100 split as 100 zeros would."""
    X = np.arange(10.0)[:, None]
    w = np.ones(10)
    w[0] = 100.0
    repeated = np.repeat(X, w.astype(int), axis=0)
    for seed in range(5):
        weighted = gmmlib.initial_responsibilities(X, 2, "kmeans", seed, sample_weight=w)
        as_rows = gmmlib.initial_responsibilities(repeated, 2, "kmeans", seed)[99:]
        assert h.same_partition(weighted.argmax(axis=1), as_rows.argmax(axis=1))
        assert h.same_partition(weighted.argmax(axis=1), np.arange(10) >= 4)


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_m_step_leaves_out_rows_of_weight_zero_wherever_they_are(covariance_type):
    X, labels = gmmlib.article_samples(n_samples=300)
    resp = np.eye(3)[labels] * 0.97 + 0.01
    w = np.random.default_rng(4).uniform(0.5, 2.0, 300)
    far = np.insert(X, [0, 200], [[1e200, -1e200], [3.0, 1e180]], axis=0)
    got = gmmlib.m_step(
        far, np.insert(resp, [0, 200], 1 / 3, axis=0), covariance_type, 1e-6,
        sample_weight=np.insert(w, [0, 200], 0.0),
    )  # fmt: skip
    expected = gmmlib.m_step(X, resp, covariance_type, 1e-6, sample_weight=w)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# -- 2. the fit does not depend on the scale of the weights -----------------------------------
@pytest.mark.parametrize("scale", [1e-16, 1e16])
@pytest.mark.parametrize("weights", ["uniform", "varied"])
def test_the_fit_does_not_depend_on_the_scale_of_the_weights(scale, weights):
    X, _ = gmmlib.article_samples(n_samples=600)
    w = np.ones(len(X)) if weights == "uniform" else np.random.default_rng(8).uniform(0.5, 2, 600)
    options = dict(random_state=0, tol=1e-6)
    _assert_same_fit(_fit(X, w * scale, **options), _fit(X, w, **options))


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_m_step_and_engine_do_not_depend_on_the_scale_of_the_weights(covariance_type):
    """The formula M-step and the engine's, with weights of 1e-16 and 1e16: the same."""
    X, labels = gmmlib.article_samples(n_samples=300)
    resp = np.eye(3)[labels] * (1 - 3e-3) + 1e-3  # every row gives the others 1e-3
    w = np.random.default_rng(2).uniform(0.5, 2, 300)
    expected = gmmlib.m_step(X, resp, covariance_type, 1e-6, sample_weight=w)
    start = (expected[0], expected[1], precision_cholesky(expected[2], covariance_type))
    reference = EMEngine(X, covariance_type, 1e-6, w).step(*start)
    for scale in (1e-16, 1e16):
        got = gmmlib.m_step(X, resp, covariance_type, 1e-6, sample_weight=w * scale)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        step = EMEngine(X, covariance_type, 1e-6, w * scale).step(*start)
        for a, b in zip(step, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_unit_weights_keep_the_floor_of_ten_epsilon():
    """The floor is 10 eps times the mean weight: exactly 10 eps for unit weights."""
    from gmmlib._m_step import _NK_FLOOR, nk_floor

    assert _NK_FLOOR == 10 * np.finfo(np.float64).eps
    assert nk_floor(1.0) == nk_floor(1.0 + 1e-14) == nk_floor() == _NK_FLOOR
    assert nk_floor(1e-16) == _NK_FLOOR * 1e-16
    resp = np.zeros((4, 2))
    resp[:, 0] = 1.0  # component 1 has no samples: its weight is the floor over N
    weights = gmmlib.update_weights(resp)
    assert weights[1] == pytest.approx(_NK_FLOOR / 4, rel=1e-12)


# -- 3. a memmap stays on disk ------------------------------------------------------------------
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]
N_ROWS, N_FEATURES = 400_000, 8
FLOAT64_BYTES = N_ROWS * N_FEATURES * 8


@pytest.fixture(scope="module")
def float32_file(tmp_path_factory):
    """A float32 memmap of 400 000 x 8 (12.8 MB): two clusters, 4 apart in every feature."""
    path = tmp_path_factory.mktemp("memmap") / "X32.dat"
    rng = np.random.default_rng(0)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(N_ROWS, N_FEATURES))
    for start in range(0, N_ROWS, 50_000):
        rows = np.arange(start, start + 50_000)
        X[rows] = rng.normal(size=(50_000, N_FEATURES)) + 4.0 * (rows % 2)[:, None]
    X.flush()
    del X
    return np.memmap(path, dtype=np.float32, mode="r", shape=(N_ROWS, N_FEATURES))


def _added_memory(run):
    """Peak memory that ``run()`` allocates (a first call compiles and warms up)."""
    import tracemalloc

    run()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = run()
        return tracemalloc.get_traced_memory()[1] - before, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_data_returns_a_memmap_as_it_is(tmp_path, dtype):
    X = np.memmap(tmp_path / "X.dat", dtype=dtype, mode="w+", shape=(100, 3))
    assert gmmlib._validation.check_data(X) is X  # not a float64 copy, not a plain view


@pytest.mark.parametrize("backend", BACKENDS)
def test_checking_a_float32_memmap_and_iterating_on_it_reads_it_block_by_block(
    float32_file, backend
):
    start = (
        np.full(2, 0.5),
        np.array([np.zeros(8), np.full(8, 4.0)]),
        np.eye(8)[None] * [[[1]], [[1]]],
    )

    def check_and_step():
        X = gmmlib._validation.check_data(float32_file)
        with EMEngine(X, "full", 1e-6, backend=backend, n_threads=1) as engine:
            return engine.step(start[0], start[1], precision_cholesky(start[2]))

    added, (_, weights, means, _) = _added_memory(check_and_step)
    assert added < 0.1 * FLOAT64_BYTES, f"{added / 2**20:.1f} MiB"
    np.testing.assert_allclose(weights, 0.5, atol=1e-3)
    np.testing.assert_allclose(means, [np.zeros(8), np.full(8, 4.0)], atol=0.01)


def test_a_fit_on_a_memmap_starts_from_a_sample_and_stays_on_disk(float32_file):
    """The default k-means start clusters 10 000 rows and adds up its M-step in one pass."""

    def fit():
        return _fit(float32_file, n_components=2, max_iter=2, random_state=0)

    added, model = _added_memory(fit)
    assert added < 0.15 * FLOAT64_BYTES, f"{added / 2**20:.1f} MiB"
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], [np.zeros(8), np.full(8, 4.0)], atol=0.01)
    np.testing.assert_allclose(model.weights_, 0.5, atol=1e-3)


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_a_memmap_start_is_the_start_in_memory(tmp_path, covariance_type):
    """Up to max_rows rows it is read whole; beyond, random starts draw the same numbers."""
    from gmmlib._init import initial_parameters

    X, _ = gmmlib.article_samples(n_samples=3000)
    X += 1e8  # far from the origin, where sums lose digits
    stored = np.memmap(tmp_path / "X.dat", dtype=np.float64, mode="w+", shape=X.shape)
    stored[:] = X
    w = np.random.default_rng(3).uniform(0.0, 2.0, len(X))
    w[::5] = 0.0
    for method, max_rows, sample_weight in [
        ("kmeans", 10_000, None),
        ("kmeans", 10_000, w),
        ("random", 1000, None),
        ("random", 1000, w),
    ]:
        args = (3, method, None, covariance_type, 1e-6, sample_weight)
        on_disk = initial_parameters(
            stored, *args[:2], np.random.default_rng(1), *args[3:], max_rows=max_rows
        )
        in_memory = initial_parameters(X, *args[:2], np.random.default_rng(1), *args[3:])
        for a, b in zip(on_disk, in_memory, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9)


def test_a_large_memmap_start_uses_weights_and_skips_rows_of_weight_zero(tmp_path):
    from gmmlib._init import initial_parameters

    X, _ = gmmlib.article_samples(n_samples=3000)
    X = np.vstack([X, [[1e6, -1e6]]])  # weight 0: must not move anything
    stored = np.memmap(tmp_path / "X.dat", dtype=np.float64, mode="w+", shape=X.shape)
    stored[:] = X
    w = np.ones(len(X))
    w[-1] = 0.0
    true_means = gmmlib.article_parameters()[1]
    for method in INIT_METHODS:
        _, means, covariances = initial_parameters(
            stored, 3, method, np.random.default_rng(0), "full", 1e-6, w, max_rows=500
        )
        assert np.all(np.abs(means) < 20) and np.all(np.isfinite(covariances))
        if method == "kmeans":  # 500 rows find the three clusters
            np.testing.assert_allclose(
                means[h.match_components(means, true_means)], true_means, atol=1.0
            )


# -- 4. gmmlib on a read-only path, with no writable home ---------------------------------------
def _read_only(path, writable: bool = False) -> None:
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, "."]:
            target = os.path.join(root, name)
            mode = os.stat(target).st_mode
            os.chmod(target, mode | stat.S_IWUSR if writable else mode & ~0o222)


@needs_numba
@pytest.mark.slow
def test_a_fit_works_where_numba_cannot_write_its_cache(tmp_path):
    """A copy of gmmlib on a read-only path, HOME read-only: the kernels compile uncached.

    Numba caches next to the source, then under the user's cache directory: with neither
    writable it used to raise "cannot cache function 'exp_nonpositive'" at import, and every
    fit failed. Root writes through chmod, so there the same state is made with Numba's own
    settings: only the NUMBA_CACHE_DIR locator, pointing below a file.
    """
    import numba

    site = tmp_path / "site"
    shutil.copytree(
        pathlib.Path(gmmlib.__file__).parent,
        site / "gmmlib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(site))
    if os.geteuid() == 0:
        if not hasattr(numba.config, "CACHE_LOCATOR_CLASSES"):
            pytest.skip("root ignores chmod, and this Numba cannot restrict its cache locators")
        (tmp_path / "a-file").write_text("")
        env.update(
            NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator",
            NUMBA_CACHE_DIR=str(tmp_path / "a-file" / "cache"),
        )
    code = f"""if True:
        import numpy as np
        import gmmlib
        assert gmmlib.__file__.startswith({str(site)!r}), gmmlib.__file__
        X, _ = gmmlib.article_samples(n_samples=500)
        model = gmmlib.GaussianMixture(3, random_state=0, backend="numba").fit(X)
        assert model.converged_
        print(np.round(np.sort(model.weights_), 1))
    """
    _read_only(site)
    _read_only(home)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
        )
    finally:
        _read_only(site, writable=True)
        _read_only(home, writable=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[0.1", "0.3", "0.6]"]
    assert "Numba cannot cache gmmlib's compiled kernels" in done.stderr


@needs_numba
def test_cached_missing_value_kernels_are_dropped_when_the_kernels_they_call_change(tmp_path):
    """The kernels for missing values call ``_kernels``' compiled functions, whose machine
    code Numba caches inside theirs. Numba checks only a function's own file, so after an
    edit of ``_kernels.py`` the cache ran the old code. Their cache is tied to that file
    too: an index written before it changed is not loaded after.
    """
    site = tmp_path / "site"
    shutil.copytree(
        pathlib.Path(gmmlib.__file__).parent,
        site / "gmmlib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def index_entries(action: str) -> int:
        """In a new process (the stamps are taken at import): an action on the cache
        index of one kernel, and the number of entries it then has."""
        code = f"""if True:
            import gmmlib
            from gmmlib._missing_kernels import compiled_full_pattern_sums as kernel
            assert gmmlib.__file__.startswith({str(site)!r}), gmmlib.__file__
            cache = kernel._cache._cache_file
            if {action == "save"!r}:
                cache.save(("an entry",), b"compiled code")
            print(len(cache._load_index()))
        """
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert index_entries("save") == 1
    assert index_entries("load") == 1  # unchanged sources: the cache is used
    kernels = site / "gmmlib" / "_kernels.py"
    later = kernels.stat().st_mtime + 10.0
    os.utime(kernels, (later, later))  # as an edit of _kernels.py
    assert index_entries("load") == 0


# -- 5. fits in threads share the BLAS limit ------------------------------------------------
def _blas_threads():
    import threadpoolctl

    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def _set_blas_threads(limits):
    """Set BLAS's threads from a thread that then ends.

    threadpoolctl >= 3.8 lets one thread at a time change OpenBLAS's limits, and a
    thread that sets them outside a ``with`` block keeps that role while it lives: set
    from the test's own thread, every fit's limit would be ignored and the test could
    not fail.
    """
    import threadpoolctl

    setter = threading.Thread(
        target=threadpoolctl.threadpool_limits, kwargs=dict(limits=limits, user_api="blas")
    )
    setter.start()
    setter.join()


def test_concurrent_fits_leave_blas_threads_as_they_found_them():
    """8 threads fitting at once: BLAS ends at its original thread count, not at 1."""
    threadpoolctl = pytest.importorskip("threadpoolctl")  # (gmmlib._kernels loaded scipy's BLAS)
    original = {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}
    _set_blas_threads(2)
    try:
        if not _blas_threads() or min(_blas_threads()) < 2:
            pytest.skip(f"BLAS cannot run two threads here ({_blas_threads()})")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(12_000, 2))  # more rows than a block: every fit holds BLAS
        X[::2] += 5.0
        start = dict(
            weights_init=[0.5, 0.5],
            means_init=[[0.0, 0.0], [5.0, 5.0]],
            covariances_init=np.repeat(np.eye(2)[None], 2, axis=0),
        )

        def fits():
            for _ in range(3):
                gmmlib.GaussianMixture(2, max_iter=2, tol=0.0, **start).fit(X)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
            with ThreadPoolExecutor(8) as pool:
                for done in [pool.submit(fits) for _ in range(8)]:
                    done.result()  # a fit that raised fails the test
        assert _blas_threads() == [2] * len(_blas_threads())
    finally:
        _set_blas_threads(original)


# -- 6. data far from the origin: timestamps in nanoseconds ---------------------------------------
NANOSECONDS = 1.7e18  # a float64 there has a resolution of 256: the spread 1e5 is 400 of it


def _timestamps(d=2):
    """Two clusters 8 spreads apart, of spread 1e5, around 0 and around 1.7e18 (the same data)."""
    rng = np.random.default_rng(0)
    Y = np.vstack([rng.normal(0, 1e5, (500, d)), rng.normal(0, 1e5, (500, d)) + 8e5])
    far = Y + NANOSECONDS
    return far, far - NANOSECONDS  # exactly the far data, moved back to 0


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_data_far_from_the_origin_fit_as_the_same_data_at_zero(covariance_type):
    far, near = _timestamps()
    a = _fit(far, n_components=2, covariance_type=covariance_type, random_state=0)
    b = _fit(near, n_components=2, covariance_type=covariance_type, random_state=0)
    np.testing.assert_allclose(a.means_ - NANOSECONDS, b.means_, rtol=0, atol=512)  # 2 ulps
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=3e-6)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
@pytest.mark.parametrize("offset", [0.0, NANOSECONDS])
def test_a_start_1e8_spreads_away_converges(covariance_type, offset):
    """The one-pass update would cancel N_k δδᵀ of 1e16 against Σγzzᵀ: false errors before."""
    far, near = _timestamps()
    X = near + offset
    # both moved 1e13 (1e8 spreads) at right angles to the line between the clusters,
    # with equal weights and covariances: the first E-step still splits the clusters
    means = np.array([[0.0, 0.0], [8e5, 8e5]]) + 1e13 * np.array([1.0, -1.0]) / np.sqrt(2)
    start = dict(
        weights_init=[0.5, 0.5],
        means_init=means + offset,
        covariances_init={
            "full": np.stack([1e10 * np.eye(2)] * 2),
            "tied": 1e10 * np.eye(2),
            "diag": np.full((2, 2), 1e10),
            "spherical": np.full(2, 1e10),
        }[covariance_type],
    )
    model = _fit(X, n_components=2, covariance_type=covariance_type, **start)
    reference = _fit(near, n_components=2, covariance_type=covariance_type)
    order = np.argsort(model.means_[:, 0])
    expected = np.argsort(reference.means_[:, 0])
    np.testing.assert_allclose(model.means_[order] - offset, reference.means_[expected], atol=512)
    np.testing.assert_allclose(model.weights_[order], reference.weights_[expected], rtol=1e-6)


def test_m_step_far_from_the_origin_is_the_m_step_at_zero():
    far, near = _timestamps(d=3)
    resp = np.random.default_rng(1).dirichlet(np.ones(2), size=len(far))
    for covariance_type in h.COV_TYPES:
        w, m, c = gmmlib.m_step(far, resp, covariance_type)
        w0, m0, c0 = gmmlib.m_step(near, resp, covariance_type)
        np.testing.assert_allclose(w, w0, rtol=1e-12)
        np.testing.assert_allclose(m - NANOSECONDS, m0, rtol=0, atol=256)
        np.testing.assert_allclose(c, c0, rtol=1e-9)


@pytest.mark.parametrize("method", INIT_METHODS)
def test_starts_far_from_the_origin_are_the_starts_at_zero(method):
    far, near = _timestamps()
    a = gmmlib.initial_responsibilities(far, 2, method, 0)
    b = gmmlib.initial_responsibilities(near, 2, method, 0)
    if method == "random":
        np.testing.assert_array_equal(a, b)
    else:
        assert h.same_partition(a.argmax(axis=1), b.argmax(axis=1))
    if method in ("kmeans", "k-means++"):
        assert h.same_partition(a.argmax(axis=1), np.arange(1000) >= 500)


def test_ordinary_data_are_computed_as_they_always_were():
    """Only data more than 1000 ranges from the origin are shifted (bit for bit otherwise)."""
    from gmmlib._m_step import far_offset

    X, _ = gmmlib.article_samples()
    for moved in (X, X + 50.0, X * 1e-150, X * 1e150, -X - 1e4):
        assert far_offset(moved) is None
    np.testing.assert_array_equal(far_offset(_timestamps()[0]) > 1e18, True)
    shift = far_offset(np.column_stack([X[:, 0], np.full(len(X), 7.0)]))
    np.testing.assert_array_equal(shift, [0.0, 7.0])  # a constant feature: moved to 0


def test_spread_far_from_the_origin_is_not_called_collapsed():
    from gmmlib._validation import check_not_collapsed

    means = np.array([[NANOSECONDS, NANOSECONDS], [NANOSECONDS + 8e5, NANOSECONDS + 8e5]])
    for covariance_type, covariances in [
        ("full", np.stack([1e10 * np.eye(2)] * 2)),
        ("tied", 1e10 * np.eye(2)),
        ("diag", np.full((2, 2), 1e10)),
        ("spherical", np.full(2, 1e10)),
    ]:
        check_not_collapsed(means, covariances, covariance_type)
    # a variance of a few units in the last place there still is a collapse
    with pytest.raises(ValueError, match=r"Component\(s\) \[1\] have collapsed"):
        check_not_collapsed(means, np.array([[1e10, 1e10], [1e6, 1e10]]), "diag")


# -- 7. the same seed gives the same model with and without Numba --------------------------------
def test_improves_ignores_differences_of_rounding():
    from gmmlib._engine import improves

    best = -4.327482958148848
    assert not improves(-4.32748295814885, best)  # NumPy's and Numba's last bits
    assert not improves(best, best)
    assert improves(best + 1e-8, best) and not improves(best - 1e-8, best)
    assert improves(-1e300, -np.inf)


@needs_numba
def test_n_init_keeps_the_same_start_with_either_backend():
    """Starts that reach the same clusters in another order tie to the last bit; which is
    larger depended on the kernel, so the kept model's component order did too."""
    X, _ = gmmlib.article_samples()
    for seed in range(5):  # seeds 0, 3 and 4 kept different starts before
        fits = [_fit(X, n_init=4, random_state=seed, backend=b) for b in ("numpy", "numba")]
        _assert_same_fit(*fits, rtol=1e-8, atol=1e-8)


# -- the extremes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-150, 1e150])
@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_tiny_and_huge_data_fit_as_the_same_data_at_unit_scale(scale, covariance_type):
    X, _ = gmmlib.article_samples(n_samples=500)
    options = dict(covariance_type=covariance_type, random_state=0, tol=1e-8, max_iter=300)
    a = _fit(X * scale, reg_covar=1e-6 * scale**2, **options)  # reg_covar has the data's units
    b = _fit(X, reg_covar=1e-6, **options)
    np.testing.assert_allclose(a.means_ / scale, b.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.covariances_ / scale**2, b.covariances_, rtol=1e-9)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-9)


def test_a_spread_whose_square_overflows_is_refused_clearly():
    """1e300: scipy's kmeans2 crashed the process; now the start runs at unit scale and the
    covariances, beyond the largest float64, are refused with a message that says so."""
    X, _ = gmmlib.article_samples(n_samples=300)
    for init_params in INIT_METHODS:
        with pytest.raises(ValueError, match="covariances overflow.*Rescale X"):
            _fit(X * 1e300, init_params=init_params, random_state=0)
    resp = gmmlib.initial_responsibilities(X * 1e300, 3, "kmeans", 0)
    np.testing.assert_array_equal(resp, gmmlib.initial_responsibilities(X, 3, "kmeans", 0))


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_of_weight_zero_beyond_every_distance_change_nothing(covariance_type, backend):
    """Rows so far away that every squared distance overflows: no NaN, as if deleted."""
    X, _ = gmmlib.article_samples(n_samples=500)
    far = np.array([[1e160, 1e160], [1e200, -1e200], [1.7e308, -1.7e308], [1e100, 1e100]])
    with_far = np.insert(X, [0, 100, 250, 500], far, axis=0)
    w = np.insert(np.ones(500), [0, 100, 250, 500], 0.0)
    weights, means, covariances = gmmlib.article_parameters()
    covariances = {
        "full": covariances,
        "tied": covariances.mean(axis=0),
        "diag": np.diagonal(covariances, axis1=1, axis2=2),
        "spherical": np.diagonal(covariances, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    theta = (weights, means, precision_cholesky(covariances, covariance_type))
    kw = dict(block_size=128, backend=backend)
    a = EMEngine(with_far, covariance_type, 1e-6, w, **kw)
    b = EMEngine(X, covariance_type, 1e-6, **kw)
    for got, expected in zip(a.step(*theta), b.step(*theta), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert a.mean_log_likelihood(*theta) == pytest.approx(b.mean_log_likelihood(*theta), 1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_no_component_can_explain_has_log_likelihood_minus_inf_not_nan(backend):
    """Weight > 0 and every squared distance overflowing: log P = -inf, never NaN, and the
    row goes to its nearest component (whose covariance then overflows, said clearly)."""
    X, _ = gmmlib.article_samples(n_samples=500)
    X = np.vstack([X, [[1e200, 1e200]]])
    weights, means, covariances = gmmlib.article_parameters()
    engine = EMEngine(X, "full", 1e-6, backend=backend)
    theta = (weights, means, precision_cholesky(covariances))
    assert engine.mean_log_likelihood(*theta) == -np.inf
    with pytest.raises(ValueError, match="covariances overflow"):
        engine.step(*theta)


def test_responsibilities_beyond_overflow_go_to_the_nearest_component():
    """The helper for the formula E-step (gmmlib._e_step): the limit as distances grow."""
    from gmmlib._gaussian import _log_resp_beyond_overflow

    weights, means, covariances = gmmlib.article_parameters()
    prec_chol = precision_cholesky(covariances)
    X = np.array([[1e160, 1e160], [1e200, -1e200], [-1.7e308, 1e300], [1e170, 0.0]])
    resp = np.exp(_log_resp_beyond_overflow(X, weights, means, prec_chol, "full"))
    # so far out, x - μ_k is x: the nearest component is the one whose whitening
    # shrinks the direction of x most
    direction = X / np.linalg.norm(X / 1e300, axis=1, keepdims=True) / 1e300
    nearest = np.argmin([np.linalg.norm(direction @ u, axis=1) for u in prec_chol], axis=0)
    np.testing.assert_array_equal(resp, np.eye(3)[nearest])
    # a component of weight 0 takes nothing; exact ties share
    zero = _log_resp_beyond_overflow(X, [0.5, 0.5, 0.0], means, prec_chol, "full")
    assert np.all(np.exp(zero)[:, 2] == 0.0)
    tie = _log_resp_beyond_overflow(
        np.array([[0.0, 1e200]]), [0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.ones(2), "spherical"
    )
    np.testing.assert_array_equal(np.exp(tie), [[0.5, 0.5]])


def test_formula_responsibilities_far_from_every_component_are_not_nan():
    weights, means, covariances = gmmlib.article_parameters()
    X = np.array([[0.0, 0.0], [1e160, 1e160], [1e200, -1e200]])
    resp = gmmlib.responsibilities(X, weights, means, covariances)
    assert not np.any(np.isnan(resp))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_more_components_than_distinct_samples(init_params):
    """Two distinct points, three components: as in scikit-learn, the fit works with
    reg_covar > 0 (a component that starts empty keeps a weight of ~1e-17), and with
    reg_covar = 0 the collapse is named."""
    X = np.repeat([[3.0, 3.0], [5.0, 5.0]], 50, axis=0)
    model = _fit(X, init_params=init_params, random_state=0)
    for name in ("weights_", "means_", "covariances_"):
        assert np.all(np.isfinite(getattr(model, name)))
    if init_params in ("kmeans", "k-means++"):  # a component on each point
        heavy = model.weights_ > 1e-6
        assert np.all(np.isin(np.round(model.means_[heavy], 6), [3.0, 5.0]))
    with pytest.raises(ValueError, match="reg_covar"):
        _fit(X, init_params=init_params, random_state=0, reg_covar=0.0)


@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_a_constant_column_fits_with_reg_covar_and_says_collapsed_without(covariance_type):
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [rng.normal(size=300), np.full(300, 7.0), rng.normal(size=300) + np.repeat([0, 6, 12], 100)]
    )
    model = _fit(X, covariance_type=covariance_type, random_state=0)
    np.testing.assert_allclose(np.sort(model.means_[:, 2]), [0, 6, 12], atol=0.3)
    np.testing.assert_allclose(model.means_[:, 1], 7.0, rtol=1e-12)
    if covariance_type != "spherical":  # the spherical variance averages the columns
        with pytest.raises(ValueError, match="collapsed|not positive definite|zero or negative"):
            _fit(X, covariance_type=covariance_type, random_state=0, reg_covar=0.0)
