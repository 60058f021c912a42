"""The engine's pass for many features (``gmmlib._wide``): BLAS on big blocks.

From ``WIDE_FEATURES`` features on, full and tied covariances are summed by triangular
and symmetric BLAS products over big blocks, in the data's own frame. Compared here
with the formula functions (``responsibilities`` then ``m_step``) to 1e-10, weighted and
not, over several blocks, data far from the origin, a start far from the data (the
second pass about the new means), a memmap of float32, and rows that no component can
explain (the blocked kernels take over).
"""

from __future__ import annotations

import functools

import helpers as h
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import gmmlib
from gmmlib import (
    EMEngine,
    _engine,
    _wide,
    log_likelihood,
    precision_cholesky,
)
from gmmlib._gaussian import CovarianceCholesky, _covariance_cholesky

D, N, K, REG = 130, 2000, 3, 1e-6


@pytest.fixture(autouse=True)
def wide_from_128_features(monkeypatch):
    """The pass starts at ``WIDE_FEATURES`` (300) features; tested from 128, to be quick."""
    monkeypatch.setattr(_engine, "WIDE_FEATURES", 128)


def _problem(seed=0, offset=1e3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(K, D))
    labels = rng.integers(0, K, N)
    X = offset + centres[labels] + rng.normal(size=(N, D)) * rng.uniform(0.5, 2.0, D)
    start_means = X[rng.choice(N, K, replace=False)]
    start_cov = np.repeat((np.cov(X.T) + 0.1 * np.eye(D))[None], K, axis=0)
    weights = rng.uniform(0.0, 3.0, N)
    weights[::10] = 0.0
    return X, (np.full(K, 1 / K), start_means, start_cov), weights


# d = 130: log-likelihoods are in the hundreds, so the histories are compared relatively
_reference = functools.partial(h.reference_em, reg_covar=REG, n_iter=3)
_engine_run = functools.partial(h.engine_em, n_iter=3)
_assert_same = functools.partial(h.assert_same_em, history_rtol=1e-12, history_atol=0.0)
_of_type = h.cov_of_type


@pytest.fixture(scope="module")
def problem():
    return _problem()


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("block_size", [None, 97], ids=["one-block", "97-rows"])
def test_wide_pass_computes_the_formula_iterations(problem, covariance_type, weighted, block_size):
    X, start, sample_weight = problem
    sw = sample_weight if weighted else None
    engine = EMEngine(X, covariance_type, REG, sw, block_size=block_size)
    assert engine._wide
    _assert_same(
        _engine_run(engine, start, covariance_type), _reference(X, start, covariance_type, sw)
    )
    w, m, c = start[0], start[1], _of_type(start[2], covariance_type)
    expected = log_likelihood(X, w, m, c, covariance_type, sw)
    total = len(X) if sw is None else sw.sum()
    mean_ll = engine.mean_log_likelihood(w, m, precision_cholesky(c, covariance_type))
    assert mean_ll == pytest.approx(expected / total, rel=1e-13)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_wide_pass_solves_with_the_covariances_factors(problem, covariance_type, weighted):
    """Given Σ_k = L_k L_kᵀ (a CovarianceCholesky), the pass solves with L_k: the same
    sums as multiplying by U_k = L_k⁻ᵀ, and the same iterations as the formulas."""
    X, start, sample_weight = problem
    sw = sample_weight if weighted else None
    w, m, c = start[0], start[1], _of_type(start[2], covariance_type)
    factors = _covariance_cholesky(c, covariance_type)
    assert isinstance(factors, CovarianceCholesky)
    solved = _wide.wide_sums(X, sw, w, m, factors, block=300)
    multiplied = _wide.wide_sums(X, sw, w, m, precision_cholesky(c, covariance_type), block=300)
    assert solved[0] == pytest.approx(multiplied[0], rel=1e-13)
    for a, b in zip(solved[1:], multiplied[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-9 * np.abs(b).max())
    engine = EMEngine(X, covariance_type, REG, sw)
    assert engine.takes_covariance_factors
    _assert_same(
        _engine_run(engine, start, covariance_type, factor=_covariance_cholesky),
        _reference(X, start, covariance_type, sw),
    )
    expected = log_likelihood(X, w, m, c, covariance_type, sw)
    total = len(X) if sw is None else sw.sum()
    assert engine.mean_log_likelihood(w, m, factors) == pytest.approx(expected / total, rel=1e-13)


@pytest.mark.filterwarnings("ignore::gmmlib.ConvergenceWarning")
def test_the_estimator_gives_the_wide_pass_the_covariances_factors(problem, monkeypatch):
    """The estimator's loop passes L_k (no triangular inverse per iteration) and inverts
    once at the end: the fit equals the blocked kernels' fit, precisions_cholesky_ the
    factor of covariances_."""
    X = problem[0]
    given = []
    original = _wide.wide_sums

    def spied(*args, **kwargs):
        given.append(type(args[4]))
        return original(*args, **kwargs)

    monkeypatch.setattr(_engine, "wide_sums", spied)
    fit = functools.partial(gmmlib.GaussianMixture, 3, max_iter=4, tol=0.0, random_state=0)
    wide = fit().fit(X)
    assert given.count(CovarianceCholesky) >= 4  # every iteration after the first
    monkeypatch.setattr(_engine, "WIDE_FEATURES", 10**9)
    blocked = fit().fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(wide, name), getattr(blocked, name), rtol=1e-9,
                                   atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(
        wide.precisions_cholesky_, precision_cholesky(wide.covariances_), rtol=1e-12, atol=1e-14
    )


def test_wide_pass_only_for_many_features_and_full_or_tied(problem):
    X = problem[0]
    assert EMEngine(X, "full")._wide and EMEngine(X, "tied")._wide
    assert not EMEngine(X, "diag")._wide and not EMEngine(X, "spherical")._wide
    assert not EMEngine(X[:, :127], "full")._wide


def test_wide_pass_leaves_blas_its_threads(problem):
    """The blocked kernels hold BLAS to one thread (their threads share the blocks); the
    wide pass is BLAS's own threads on big blocks, so the engine must not hold it."""
    X, start, _ = problem
    before = [info["num_threads"] for info in threadpool_info()]
    engine = EMEngine(X, "full", REG)
    with engine:
        engine.step(start[0], start[1], precision_cholesky(start[2]))
        assert [info["num_threads"] for info in threadpool_info()] == before


def _spied_second_passes(monkeypatch):
    """For each call of ``wide_sums`` by the engine, whether it was the second pass (sums
    about the new means, ``centres=``)."""
    calls = []
    original = _wide.wide_sums

    def counted(*args, **kwargs):
        calls.append(kwargs.get("centres") is not None)
        return original(*args, **kwargs)

    monkeypatch.setattr(_engine, "wide_sums", counted)
    return calls


def test_wide_pass_sums_again_after_a_long_move(monkeypatch):
    """A start thousands of standard deviations from the data: the one-pass update
    would cancel its digits, and the engine sums again about the new means."""
    X, (w, m, c), _ = _problem(seed=1, offset=0.0)
    start = (w, m + 1e5, c)
    calls = _spied_second_passes(monkeypatch)
    engine = EMEngine(X, "full", REG)
    _assert_same(
        _engine_run(engine, start, "full", n_iter=2),
        _reference(X, start, "full", None, n_iter=2),
    )
    assert any(calls)  # the second pass ran


def test_wide_pass_reads_a_float32_memmap(problem, tmp_path):
    X, start, _ = problem
    X32 = X.astype(np.float32)
    path = tmp_path / "X32.dat"
    X32.tofile(path)
    X_file = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    engine = EMEngine(X_file, "full", REG, block_size=128)
    assert engine._wide
    X_read = X32.astype(np.float64)
    _assert_same(_engine_run(engine, start, "full"), _reference(X_read, start, "full", None))


def test_rows_beyond_overflow_leave_the_wide_pass_for_the_blocked_kernel(problem, monkeypatch):
    """A row whose squared distances overflow has log P = -inf: the wide pass is not
    finite and the step is the blocked NumPy kernel's, as without the wide pass."""
    X, start, _ = problem
    X_far = np.vstack([X, np.full((1, D), 1e200)])
    sw = np.ones(len(X_far))
    sw[-1] = 0.0  # weight 0: as if the row were not there
    w, m, c = start[0], start[1], start[2]
    prec_chol = precision_cholesky(c)
    wide = EMEngine(X_far, "full", REG, sw, backend="numpy")
    assert wide._wide
    with wide:
        result = wide.step(w, m, prec_chol)
        # given the covariances' factors, the blocked kernel gets the precisions' ones
        from_factors = wide.step(w, m, _covariance_cholesky(c, "full"))
    monkeypatch.setattr(_engine, "WIDE_FEATURES", 10**9)
    blocked = EMEngine(X_far, "full", REG, sw, backend="numpy")
    assert not blocked._wide
    with blocked:
        expected = blocked.step(w, m, prec_chol)
    for a, b in zip(result, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(from_factors, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# -- one component's scatter as the data's minus the others' (the complement) ---------------
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_data_moments_are_the_datas_scatter_about_its_mean(problem, weighted):
    """Two passes of blocks: the weighted mean, then Σ w (x - c)(x - c)ᵀ by dsyrk (its upper
    triangle); data 1e3 from the origin, weights with zeros, 7 blocks."""
    X, _, sample_weight = problem
    sw = sample_weight if weighted else np.ones(len(X))
    moments = _wide.data_moments(X, sample_weight if weighted else None, block=300)
    mean = sw @ X / sw.sum()
    np.testing.assert_allclose(moments.centre, mean, rtol=1e-14)
    assert moments.total_weight == pytest.approx(sw.sum(), rel=1e-14)
    np.testing.assert_allclose(moments.first, 0.0, atol=1e-9 * sw.sum())
    expected = np.triu((X - mean).T @ ((X - mean) * sw[:, None]))
    np.testing.assert_allclose(moments.upper, expected, rtol=1e-12, atol=1e-12 * expected.max())
    point = X[5]
    diagonal = sw @ (X - point) ** 2
    np.testing.assert_allclose(_wide.moments_diagonal(moments, point), diagonal, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_complement_scatter_equals_the_summed_one(problem, covariance_type, weighted):
    """Component k's scatter taken as the data's minus the others' (each moved to μ_k by
    a rank-2 update) is the one dsyrk sums, for every k: responsibilities add up to 1."""
    X, start, sample_weight = problem
    sw = sample_weight if weighted else None
    w, m, c = start[0], start[1], _of_type(start[2], covariance_type)
    prec_chol = precision_cholesky(c, covariance_type)
    moments = _wide.data_moments(X, sw, block=300)
    summed = _wide.wide_sums(X, sw, w, m, prec_chol, block=300)
    scale = np.abs(summed[2]).max()
    # the same moments about a point that is not the mean: Σ w (x - c) is then not 0
    c0 = X[0]
    weight = np.ones(len(X)) if sw is None else sw
    about_c0 = _wide.DataMoments(
        c0,
        float(weight.sum()),
        weight @ (X - c0),
        np.triu((X - c0).T @ ((X - c0) * weight[:, None])),
    )
    for k in range(K):
        for data in (moments, about_c0):
            taken = _wide.wide_sums(X, sw, w, m, prec_chol, block=300, complement=(k, data))
            assert taken[0] == summed[0]
            np.testing.assert_array_equal(taken[1], summed[1])
            np.testing.assert_allclose(taken[2], summed[2], rtol=0.0, atol=1e-13 * scale)


def _spied_complement(monkeypatch):
    """The components ``EMEngine._complement`` chooses (None: none), call by call."""
    chosen = []
    original = EMEngine._complement

    def spied(self, *args):
        result = original(self, *args)
        chosen.append(None if result is None else result[0])
        return result

    monkeypatch.setattr(EMEngine, "_complement", spied)
    return chosen


@pytest.mark.parametrize("factor", [precision_cholesky, _covariance_cholesky],
                         ids=["precisions-factors", "covariances-factors"])  # fmt: skip
def test_engine_takes_one_scatter_as_the_complement(problem, monkeypatch, factor):
    """On overlapping clusters the engine sums K - 1 scatters, and its data moments once
    per engine; the iterations are still the formulas' to 1e-10."""
    X, start, sample_weight = problem
    chosen = _spied_complement(monkeypatch)
    moments_made = []
    original = _engine.data_moments
    monkeypatch.setattr(
        _engine, "data_moments", lambda *a, **k: moments_made.append(1) or original(*a, **k)
    )
    engine = EMEngine(X, "full", REG, sample_weight)
    _assert_same(
        _engine_run(engine, start, "full", factor=factor),
        _reference(X, start, "full", sample_weight),
    )
    assert len(chosen) == 3 and None not in chosen
    assert len(moments_made) == 1


def _separated(spacing, variance=1.0, seed=2):
    """Three unit-variance clusters ``spacing`` apart per coordinate, and a start at
    them with covariances ``variance`` I: the data's spread about the middle cluster is
    ~(1 + 2 spacing² / 3) / (variance / 3) times a start variance times N_k."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, N)
    X = spacing * np.arange(K)[labels, None] + rng.normal(size=(N, D))
    means = spacing * np.arange(K)[:, None] + rng.normal(0.0, 0.1, size=(K, D))
    return X, (np.full(K, 1 / K), means, np.repeat(variance * np.eye(D)[None], K, axis=0))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("factor", [precision_cholesky, _covariance_cholesky],
                         ids=["precisions-factors", "covariances-factors"])  # fmt: skip
def test_engine_sums_every_scatter_when_the_data_spread_far_more(
    monkeypatch, covariance_type, factor
):
    """Clusters 25 standard deviations apart, a start with variances 1/4: the complement
    would round at ~5·10³ (full: N_k = N / 3) or ~1.7·10³ (tied: the pooled N) times
    N_k Σ_k, more than ``_COMPLEMENT_MAX_LOSS``, so the engine sums all K scatters (the
    precisions' factors give 1 / P_jj = Σ_jj here)."""
    X, start = _separated(25.0, variance=0.25)
    chosen = _spied_complement(monkeypatch)
    _assert_same(
        _engine_run(EMEngine(X, covariance_type, REG), start, covariance_type, n_iter=1,
                    factor=factor),
        _reference(X, start, covariance_type, None, n_iter=1),
    )  # fmt: skip
    assert chosen == [None]


def test_predicted_variances_are_the_covariances_or_less():
    """From L_k: Σ_jj exactly; from U_k: 1 / P_jj, the conditional variance (≤ Σ_jj)."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(2, 6, 6))
    cov = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(6)
    from_l = _engine._variances_at_most(_covariance_cholesky(cov, "full"), 2, 6)
    np.testing.assert_allclose(from_l, np.diagonal(cov, axis1=1, axis2=2), rtol=1e-12)
    from_u = _engine._variances_at_most(precision_cholesky(cov), 2, 6)
    conditional = 1.0 / np.diagonal(np.linalg.inv(cov), axis1=1, axis2=2)
    np.testing.assert_allclose(from_u, conditional, rtol=1e-10)
    assert np.all(from_u < from_l)
    tied = _engine._variances_at_most(_covariance_cholesky(cov[0], "tied"), 2, 6)
    np.testing.assert_allclose(tied, np.diagonal(cov[[0, 0]], axis1=1, axis2=2), rtol=1e-12)


def test_engine_takes_the_complement_of_the_widest_component(problem, monkeypatch):
    """The component whose variances are largest against the data's spread rounds least."""
    X, (w, m, c), _ = problem
    c = c.copy()
    c[1] *= 50.0
    chosen = _spied_complement(monkeypatch)
    EMEngine(X, "full", REG).step(w, m, precision_cholesky(c))
    assert chosen == [1]


def test_engine_sums_again_when_the_complement_lost_its_digits(monkeypatch):
    """If the prediction let a complement through that rounds at 10⁸ times a variance,
    the step's cancellation test (with the data's scatter as the magnitude) sums again
    about the new means, and the result keeps its digits."""
    X, start = _separated(1e4)
    monkeypatch.setattr(_engine, "_COMPLEMENT_MAX_LOSS", np.inf)
    chosen = _spied_complement(monkeypatch)
    again = _spied_second_passes(monkeypatch)
    _assert_same(
        _engine_run(EMEngine(X, "full", REG), start, "full", n_iter=2),
        _reference(X, start, "full", None, n_iter=2),
    )
    assert None not in chosen and again.count(True) == 2
