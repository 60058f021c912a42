"""GaussianMixture on a Dask array: streamed fit, start and predictions (Dask is optional).

The fast tests run on Dask's threaded scheduler; the slow one on a ``dask.distributed``
cluster of two worker processes whose memory is smaller than the data.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

import gmmlib
from gmmlib._init import MAX_START_ROWS, _streamed_start, initial_parameters

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(1200, 3)), rng.normal(size=(800, 3)) + [4, 0, 2]])
    rng.shuffle(X)
    weight = rng.uniform(0.0, 2.0, X.shape[0])
    weight[::7] = 0.0
    return X, weight


def assert_same_fit(a, b, rtol=1e-10):
    for name in PARAMS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=rtol)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_fit_on_dask_equals_fit_in_memory(data, covariance_type, weighted):
    """Up to MAX_START_ROWS rows the start is the in-memory one; EM streams the chunks."""
    X, weight = data
    sw = weight if weighted else None
    kw = dict(n_components=2, covariance_type=covariance_type, random_state=0, tol=1e-8)
    expected = gmmlib.GaussianMixture(**kw).fit(X, sample_weight=sw)
    model = gmmlib.GaussianMixture(**kw).fit(da.from_array(X, chunks=(300, 2)), sample_weight=sw)
    assert_same_fit(model, expected)


@pytest.mark.parametrize("method", ["kmeans", "k-means++", "random_from_data"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_streamed_start_on_dask_equals_the_memmap_start(data, tmp_path, method, weighted):
    """Beyond max_rows rows: the same sampled rows and centres as a memmap, one pass of sums
    over the chunks (added in another order: equal to rounding)."""
    X, weight = data
    sw = weight if weighted else None
    mapped = np.memmap(tmp_path / "X.dat", dtype=np.float64, mode="w+", shape=X.shape)
    mapped[:] = X
    for cov_type in ("full", "diag"):
        args = (2, method, None, cov_type, 1e-6, sw)
        a = initial_parameters(mapped, *args[:2], np.random.default_rng(5), *args[3:], max_rows=500)
        b = initial_parameters(
            da.from_array(X, chunks=(333, 3)),
            *args[:2],
            np.random.default_rng(5),
            *args[3:],
            max_rows=500,
        )
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_streamed_random_start_on_dask_is_a_start(data):
    """``random``: every chunk draws its own responsibilities (not the memmap's numbers)."""
    X, _ = data
    Xd = da.from_array(X, chunks=(300, 3))
    w, m, c = initial_parameters(
        Xd, 3, "random", np.random.default_rng(0), "full", 1e-6, max_rows=500
    )
    again = initial_parameters(
        Xd, 3, "random", np.random.default_rng(0), "full", 1e-6, max_rows=500
    )
    np.testing.assert_allclose(w.sum(), 1.0)
    np.testing.assert_allclose(m, again[1], rtol=1e-13)  # reproducible with the rng
    assert np.all(np.linalg.eigvalsh(c) > 0)
    assert np.all(np.abs(m - X.mean(axis=0)) < 0.5)  # random responsibilities: near the mean


def test_predictions_on_dask_are_lazy_dask_arrays(data):
    X, weight = data
    model = gmmlib.GaussianMixture(2, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(300, 2))
    for name in ("predict", "predict_proba", "score_samples"):
        result = getattr(model, name)(Xd)
        assert isinstance(result, da.Array), name
        expected = getattr(model, name)(X)
        assert result.dtype == expected.dtype and result.shape == expected.shape
        np.testing.assert_allclose(result.compute(), expected, rtol=1e-12, atol=1e-300)
    for name in ("score", "bic", "aic"):
        for sw in (None, weight):
            got = getattr(model, name)(Xd, sample_weight=sw)
            assert isinstance(got, float)
            assert got == pytest.approx(getattr(model, name)(X, sample_weight=sw), rel=1e-12)


def test_nonfinite_dask_data_refused(data):
    """fit checks finiteness by one streamed reduction; predict when it is computed."""
    X, _ = data
    model = gmmlib.GaussianMixture(2, random_state=0).fit(X)
    bad = X.copy()
    bad[1234, 1] = np.inf
    Xd = da.from_array(bad, chunks=(300, 3))
    message = r"X contains NaN or infinity in 1 row\(s\) \(row 1234\)"
    with pytest.raises(ValueError, match=message):
        gmmlib.GaussianMixture(2).fit(Xd)
    labels = model.predict(Xd)  # nothing computed yet
    with pytest.raises(ValueError, match=message):
        labels.compute()


def test_dask_dtype_and_shape_checked_at_once():
    with pytest.raises(ValueError, match="1-D"):
        gmmlib.GaussianMixture(2).fit(da.zeros(10, chunks=5))
    with pytest.raises(ValueError, match="must be numeric"):
        gmmlib.GaussianMixture(2).fit(da.from_array(np.array([["a", "b"]] * 4)))
    model = gmmlib.GaussianMixture(2, random_state=0).fit(
        da.from_array(np.arange(40).reshape(20, 2), chunks=(7, 2))  # integers: as float64
    )
    assert model.means_.dtype == np.float64


# -- on a dask.distributed cluster --------------------------------------------------------
N_FEATURES, CHUNK_ROWS, N_CHUNKS = 2, 1_000_000, 52  # 52 chunks of 16 MB: 832 MB in all
# per worker: the data do not fit in one. A worker that compiles the Numba kernels (a
# cold cache) peaks near 300 MB before it holds any data, so the limit leaves room for that.
WORKER_MEMORY = 768 * 2**20


def _generated_chunk(block_id=None):
    """Chunk i of the data, generated where it is computed (seeded by i)."""
    rng = np.random.default_rng(block_id[0])
    half = CHUNK_ROWS // 2
    first = rng.normal(size=(half, N_FEATURES))
    return np.concatenate([first, rng.normal(size=(CHUNK_ROWS - half, N_FEATURES)) + 3.0])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::gmmlib.ConvergenceWarning")
def test_fit_on_a_distributed_cluster_streams():
    """Two worker processes with 768 MiB each fit 832 MB of data (the streamed start, then
    EM) as in memory, to 1e-10; gathering the data on one worker fails."""
    distributed = pytest.importorskip("distributed")
    X = da.map_blocks(
        _generated_chunk,
        chunks=((CHUNK_ROWS,) * N_CHUNKS, (N_FEATURES,)),
        dtype=np.float64,
    )
    assert X.nbytes > WORKER_MEMORY
    kw = dict(n_components=2, random_state=0, tol=0.0, max_iter=3)
    with (
        dask.config.set(
            {
                "distributed.scheduler.allowed-failures": 0,
                # No pausing, no spilling to disk: a worker that holds more than its limit
                # is killed (at 95 %), so the test fails at once instead of waiting forever
                # on a paused worker, and data cannot escape to disk.
                "distributed.worker.memory.target": False,
                "distributed.worker.memory.spill": False,
                "distributed.worker.memory.pause": False,
            }
        ),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=WORKER_MEMORY,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        model = gmmlib.GaussianMixture(**kw).fit(X)
        labels = model.predict(X)
        assert isinstance(labels, da.Array)
        first = labels[:CHUNK_ROWS].compute()
        # the data gathered on one worker do not fit in it
        with pytest.raises((distributed.scheduler.KilledWorker, MemoryError)):
            client.compute(X.rechunk({0: -1}).sum()).result(timeout=60)
    Xm = X.compute()  # the test process holds the data for the reference
    start = _streamed_start(
        Xm, 2, "kmeans", np.random.default_rng(0), "full", 1e-6, None, MAX_START_ROWS
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        expected = gmmlib.GaussianMixture(
            2,
            tol=0.0,
            max_iter=3,
            weights_init=start[0],
            means_init=start[1],
            covariances_init=start[2],
        ).fit(Xm)
    assert_same_fit(model, expected)
    np.testing.assert_array_equal(first, expected.predict(Xm[:CHUNK_ROWS]))
