"""score_samples, predict and predict_proba on the blocked path (``gmmlib._engine.row_results``).

Compared with the independent SciPy log-densities of ``helpers``, on both backends and
every covariance type; rows whose distances overflow; memmaps and float32; and the
promise that predicting adds no (N, K) temporaries (measured by tracemalloc).
"""

from __future__ import annotations

import tracemalloc

import helpers as h
import numpy as np
import pytest
from scipy.special import logsumexp

import gmmlib
from gmmlib._kernels import have_numba

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not have_numba(), reason="Numba is not installed"))]  # fmt: skip


def _fitted(rng, covariance_type, backend, n=3000, K=4, d=3):
    X, _, _ = h.blobs(rng, n, K, d, covariance_type)
    gm = gmmlib.GaussianMixture(
        K, covariance_type=covariance_type, random_state=0, backend=backend
    ).fit(X)
    return gm, X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_rows_match_scipy(covariance_type, backend):
    rng = np.random.default_rng(5)
    gm, X = _fitted(rng, covariance_type, backend)
    # more rows than a block, and rows far from every component
    X_new = np.vstack([rng.normal(0, 3, size=(9000, 3)), [[40.0, -40.0, 40.0]]])
    full = h.to_full(gm.covariances_, covariance_type, 4, 3)
    log_joint = h.scipy_log_joint(X_new, gm.weights_, gm.means_, full)
    log_density = logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(gm.score_samples(X_new), log_density, rtol=1e-11)
    np.testing.assert_allclose(
        gm.predict_proba(X_new), np.exp(log_joint - log_density[:, None]), atol=1e-12
    )
    assert np.array_equal(gm.predict(X_new), np.argmax(log_joint, axis=1))
    assert gm.score(X_new) == pytest.approx(log_density.mean(), rel=1e-12)


@pytest.mark.skipif(not have_numba(), reason="Numba is not installed")
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("separation", [30.0, 3000.0], ids=["near", "far"])
def test_rows_of_the_expanded_kernel_and_its_fallback(separation, covariance_type, monkeypatch):
    """Diagonal and spherical covariances: the log-densities as one matrix product while
    the means lie within ~100 standard deviations of their weighted mean, the
    per-component kernel beyond (the expansion would lose digits); both match SciPy."""
    from gmmlib import _engine, _kernels

    calls = []
    expanded = _kernels.compiled_expanded_rows

    def counted(*args):
        calls.append(1)
        return expanded(*args)

    monkeypatch.setattr(_kernels, "compiled_expanded_rows", counted)
    rng = np.random.default_rng(8)
    means = np.array([[0.0, 0.0, 0.0], [separation, 1.0, 0.0], [-separation, 2.0, 1.0]])
    variances = np.array([[1.0, 2.0, 0.5], [0.7, 1.0, 1.5], [1.2, 0.9, 1.0]])
    if covariance_type == "spherical":
        variances = variances[:, 0]
    weights = np.array([0.3, 0.3, 0.4])
    X_new = means[rng.integers(0, 3, 5000)] + rng.normal(0, 1.5, size=(5000, 3))
    full = h.to_full(variances, covariance_type, 3, 3)
    log_joint = h.scipy_log_joint(X_new, weights, means, full)
    log_density = logsumexp(log_joint, axis=1)
    prec_chol = gmmlib.precision_cholesky(variances, covariance_type)

    def rows(what):
        return _engine.row_results(X_new, weights, means, prec_chol, covariance_type, what,
                                   backend="numba")  # fmt: skip

    np.testing.assert_allclose(rows("score_samples"), log_density, rtol=1e-11)
    proba = np.exp(log_joint - log_density[:, None])
    np.testing.assert_allclose(rows("predict_proba"), proba, atol=1e-12)
    assert np.array_equal(rows("predict"), np.argmax(log_joint, axis=1))
    assert bool(calls) == (separation**2 / 2 < _engine._EXPANSION_MAX)


@pytest.mark.skipif(not have_numba(), reason="Numba is not installed")
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("K, d", [(1, 1), (3, 1), (4, 2), (5, 7)])
def test_predict_of_the_expanded_kernel_for_every_width(d, K, covariance_type):
    """The compiled ``predict`` of diagonal and spherical covariances (its own kernel,
    vectorised across rows, ``_kernels._expanded_labels``) for one component, one
    feature (where both layouts are [u, 1, u²]) and more; a number of rows that is not
    a multiple of the block, and close components, so that many rows are near a tie."""
    from gmmlib import _engine

    rng = np.random.default_rng(14)
    means = rng.normal(0.0, 1.0, size=(K, d))
    variances = rng.uniform(0.3, 2.0, size=(K, d))
    if covariance_type == "spherical":
        variances = variances[:, 0]
    weights = rng.dirichlet(np.ones(K))
    X_new = rng.normal(0.0, 2.0, size=(3001, d))
    prec_chol = gmmlib.precision_cholesky(variances, covariance_type)
    full = h.to_full(variances, covariance_type, K, d)
    log_joint = h.scipy_log_joint(X_new, weights, means, full)
    constants = _engine.e_step_constants(weights, means, prec_chol, covariance_type)
    spherical = covariance_type == "spherical"
    # the expanded kernel is the one under test
    assert _engine.expansion_coefficients(constants, spherical) is not None
    labels = _engine.row_results(X_new, weights, means, prec_chol, covariance_type,
                                 "predict", backend="numba", n_threads=2)  # fmt: skip
    assert np.array_equal(labels, np.argmax(log_joint, axis=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_beyond_overflow_go_to_the_nearest_component(backend):
    """A row whose squared distances overflow: log P = -inf, γ = 1 at the nearest."""
    rng = np.random.default_rng(0)
    gm, _ = _fitted(rng, "full", backend)
    # along e_0, far enough, the whitened distance is 1e160 * sqrt(P_k[0, 0])
    nearest = int(np.argmin(gm.precisions_[:, 0, 0]))
    far = np.array([[1e160, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert gm.predict(far)[0] == nearest
    proba = gm.predict_proba(far)
    assert proba[0, nearest] == pytest.approx(1.0)
    assert not np.any(np.isnan(proba))
    scores = gm.score_samples(far)
    assert scores[0] == -np.inf and np.isfinite(scores[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_of_a_float32_memmap(tmp_path, backend):
    rng = np.random.default_rng(1)
    gm, X = _fitted(rng, "diag", backend)
    path = tmp_path / "X.f32"
    X.astype(np.float32).tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    expected = gm.score_samples(np.asarray(mapped, dtype=np.float64))
    np.testing.assert_allclose(gm.score_samples(mapped), expected, rtol=1e-12)
    assert np.array_equal(gm.predict(mapped), gm.predict(np.asarray(mapped, np.float64)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what", ["score_samples", "predict", "predict_proba", "score"])
def test_predicting_adds_constant_memory(what, backend):
    """Peak memory beyond the output does not grow with N: a few blocks per thread.

    (Before the blocked path it was the whole (N, K) log-joint, and more.) Measured by
    tracemalloc at N = 50 000 and at eight times as many rows.
    """
    rng = np.random.default_rng(2)
    K, d = 16, 4
    gm, _ = _fitted(rng, "full", backend, n=4000, K=K, d=d)
    method = getattr(gm, what)
    method(rng.normal(size=(5000, d)))  # imports, compilation, threads: not measured
    extra = {}
    for N in (50_000, 400_000):
        X = rng.normal(size=(N, d))
        # score returns a float: its pass only adds up
        output = {"predict_proba": 8 * N * K, "score": 0}.get(what, 8 * N)
        tracemalloc.start()
        try:
            method(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        extra[N] = peak - output
    growth = extra[400_000] - extra[50_000]
    assert growth < 2**20, f"{what}: {growth / 2**20:.1f} MiB more for 8 times the rows"
    assert extra[400_000] < 16 * 2**20  # the NumPy kernel keeps blocks of 4 MiB


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
@pytest.mark.parametrize("separation", [3.0, 3000.0], ids=["near", "far"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rows_are_refused_on_every_path(bad, separation, covariance_type, backend):
    """NaN or infinity in X: the error of ``check_data`` naming the row, for every
    prediction, although the values are checked only when a kernel flags a row (the
    compiled kernels, the expanded one for "near" diagonal and spherical means and the
    per-component one for "far") or before the NumPy path."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(6000, 3)) + separation * rng.integers(0, 3, size=(6000, 1))
    gm = gmmlib.GaussianMixture(
        3, covariance_type=covariance_type, random_state=0, backend=backend
    ).fit(X)
    for row in (0, 2500, 5999):
        X_bad = X.copy()
        X_bad[row, 1] = bad
        for what in ("predict", "predict_proba", "score_samples", "score"):
            with pytest.raises(ValueError, match=rf"X contains NaN or infinity in 1 row\(s\) "
                               rf"\(row {row}\)"):  # fmt: skip
                getattr(gm, what)(X_bad)


@pytest.mark.skipif(not have_numba(), reason="Numba is not installed")
@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_finite_data_take_no_separate_check_of_their_values(covariance_type, monkeypatch):
    """The pass over X that looks for NaN and infinity runs only when a compiled kernel
    flagged a row: not for finite data, but for a row whose distances overflow (whose
    results then come from the reference path, as without the deferral)."""
    from gmmlib import _estimator

    rng = np.random.default_rng(12)
    gm, X = _fitted(rng, covariance_type, "numba")
    checks = []
    check = _estimator.check_finite
    monkeypatch.setattr(
        _estimator, "check_finite", lambda *a, **k: checks.append(1) or check(*a, **k)
    )
    labels = gm.predict(X)
    gm.score_samples(X)
    assert checks == []
    X_far = np.vstack([X[:10], [[1e160, 0.0, 0.0]]])
    assert np.array_equal(gm.predict(X_far)[:10], labels[:10])
    assert checks == [1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("covariance_type", h.COV_TYPES)
def test_predict_of_equal_components_is_the_first_as_argmax(covariance_type, backend):
    """Two identical components tie on every row: ``predict`` gives the first of them,
    as np.argmax does (the compiled predict scans each row's log-joints)."""
    rng = np.random.default_rng(13)
    gm, X = _fitted(rng, covariance_type, backend)
    twin = gmmlib.GaussianMixture(
        5, covariance_type=covariance_type, backend=backend, max_iter=0,
        weights_init=np.append(gm.weights_, gm.weights_[1]) / (1 + gm.weights_[1]),
        means_init=np.vstack([gm.means_, gm.means_[1]]),
        precisions_init=(gm.precisions_ if covariance_type == "tied"
                         else np.concatenate([gm.precisions_, gm.precisions_[1:2]])),
    ).fit(X)  # fmt: skip
    full = h.to_full(twin.covariances_, covariance_type, 5, 3)
    log_joint = h.scipy_log_joint(X, twin.weights_, twin.means_, full)
    labels = twin.predict(X)
    assert np.array_equal(labels, np.argmax(log_joint, axis=1))
    assert 4 not in labels and 1 in labels
