"""GaussianMixture: EM never decreases the likelihood with reg_covar=0 (and can with
reg_covar > 0), sample weights, invariances, warm starts, n_init, max_iter=0, the starting
parameters, feature names, and the scikit-learn-style API (scikit-learn's own tools are in
test_sklearn_api.py)."""

import re
import warnings

import helpers as h
import numpy as np
import pytest
from helpers import COV_TYPES
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import gmmlib
from gmmlib._validation import INIT_METHODS


def _fit_quietly(gm, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        return gm.fit(X, **kwargs)


def _start(X, K, covariance_type, seed=0):
    """A data-driven start (one M-step from random hard labels), as user-given parameters."""
    rng = np.random.default_rng(seed)
    resp = np.eye(K)[rng.permutation(np.arange(len(X)) % K)]
    w, m, c = gmmlib.m_step(X, resp, covariance_type)
    return {"weights_init": w, "means_init": m, "covariances_init": c}


# -- with reg_covar=0, EM never decreases the log-likelihood ------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_components=st.integers(1, 4),
    n_features=st.integers(1, 3),
    n_per_component=st.integers(4, 25),
    spread=st.floats(0.0, 6.0),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    init_params=st.sampled_from(INIT_METHODS),
    weighted=st.booleans(),
)
def test_em_never_decreases_the_log_likelihood(
    covariance_type,
    seed,
    n_components,
    n_features,
    n_per_component,
    spread,
    scale,
    init_params,
    weighted,
):
    rng = np.random.default_rng(seed)
    n = n_components * n_per_component + n_features + 1
    X, _, _ = h.blobs(rng, n, n_components, n_features, spread=spread)
    X *= scale
    sample_weight = rng.uniform(0.1, 3.0, size=n) if weighted else None
    gm = gmmlib.GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        reg_covar=0.0,  # the exact M-step: reg_covar > 0 is not the maximiser of Q
        tol=0.0,
        max_iter=25,
        init_params=init_params,
        random_state=seed,
    )
    try:
        _fit_quietly(gm, X, sample_weight=sample_weight)
    except ValueError as err:  # a component collapsed (the likelihood was heading to +inf)
        assert "reg_covar" in str(err)
        reject()
    history = gm.log_likelihood_history_
    assert history.shape == (gm.n_iter_ + 1,) and gm.n_iter_ == 25
    assert np.all(np.isfinite(history))
    drops = np.diff(history)
    assert np.all(drops >= -1e-10 * np.maximum(1.0, np.abs(history[1:])))
    # the last entry is the mean log-likelihood of the fitted parameters
    sw = np.ones(n) if sample_weight is None else sample_weight
    total = gmmlib.log_likelihood(
        X, gm.weights_, gm.means_, gm.covariances_, covariance_type, sample_weight=sw
    )
    np.testing.assert_allclose(history[-1], total / sw.sum(), rtol=1e-10, atol=1e-12)


def test_history_lower_bound_and_iteration_count():
    X, _ = gmmlib.article_samples(n_samples=400)
    gm = gmmlib.GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert gm.converged_
    assert len(gm.log_likelihood_history_) == gm.n_iter_ + 1
    assert gm.lower_bound_ == gm.log_likelihood_history_[-2]
    np.testing.assert_allclose(gm.score(X), gm.log_likelihood_history_[-1], rtol=1e-12)
    # it stopped because the last change fell below tol, and not earlier
    changes = np.abs(np.diff(gm.log_likelihood_history_[:-1]))
    assert changes[-1] < 1e-8 and np.all(changes[:-1] >= 1e-8)


# -- sample weights ----------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_sample_weights_equal_repeated_rows(covariance_type):
    rng = np.random.default_rng(61)
    X, _, _ = h.blobs(rng, 40, 3, 2)
    reps = rng.integers(0, 4, size=40)
    reps[:3] = 1  # keep a few rows for sure
    start = _start(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=15, **start)
    weighted = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X, sample_weight=reps)
    repeated = _fit_quietly(gmmlib.GaussianMixture(3, **kw), np.repeat(X, reps, axis=0))
    h.assert_params_close(weighted, repeated, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        weighted.log_likelihood_history_, repeated.log_likelihood_history_, rtol=1e-10
    )
    assert weighted.n_iter_ == repeated.n_iter_
    # scaling every weight by the same factor changes nothing
    scaled = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X, sample_weight=0.37 * reps)
    h.assert_params_close(weighted, scaled, rtol=1e-10, atol=1e-10)


def test_zero_weight_equals_dropping_the_row():
    rng = np.random.default_rng(62)
    X, _, _ = h.blobs(rng, 30, 2, 2)
    X[4] = [1e3, -1e3]  # an outlier that would matter if it were not dropped
    sw = np.ones(30)
    sw[4] = 0.0
    keep = np.arange(30) != 4
    start = _start(X[keep], 2, "full")
    kw = dict(tol=0.0, max_iter=10, **start)
    a = _fit_quietly(gmmlib.GaussianMixture(2, **kw), X, sample_weight=sw)
    b = _fit_quietly(gmmlib.GaussianMixture(2, **kw), X[keep])
    h.assert_params_close(a, b, rtol=1e-10, atol=1e-10)


# -- invariances ---------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_permuting_rows_changes_nothing(covariance_type):
    rng = np.random.default_rng(63)
    X, _, _ = h.blobs(rng, 50, 3, 2)
    perm = rng.permutation(50)
    start = _start(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, **start)
    a = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X)
    b = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X[perm])
    h.assert_params_close(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.log_likelihood_history_, b.log_likelihood_history_, rtol=1e-12)
    np.testing.assert_array_equal(a.predict(X)[perm], b.predict(X[perm]))


def test_affine_change_of_data_moves_a_full_covariance_fit_the_same_way():
    rng = np.random.default_rng(64)
    X, _, _ = h.blobs(rng, 80, 3, 3)
    A = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    b = rng.standard_normal(3) * 5
    Y = X @ A.T + b
    start = _start(X, 3, "full")
    w0, m0, c0 = start["weights_init"], start["means_init"], start["covariances_init"]
    kw = dict(tol=0.0, max_iter=12, reg_covar=0.0)
    fx = _fit_quietly(
        gmmlib.GaussianMixture(3, weights_init=w0, means_init=m0, covariances_init=c0, **kw), X
    )
    fy = _fit_quietly(
        gmmlib.GaussianMixture(
            3,
            weights_init=w0,
            means_init=m0 @ A.T + b,
            covariances_init=A @ c0 @ A.T,
            **kw,
        ),
        Y,
    )
    np.testing.assert_allclose(fy.weights_, fx.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fy.means_, fx.means_ @ A.T + b, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fy.covariances_, A @ fx.covariances_ @ A.T, rtol=1e-8, atol=1e-8)
    # the likelihood picks up the Jacobian: log p_Y(y) = log p_X(x) − log|det A|
    log_det = np.log(abs(np.linalg.det(A)))
    np.testing.assert_allclose(
        fy.log_likelihood_history_, fx.log_likelihood_history_ - log_det, rtol=1e-10
    )
    np.testing.assert_allclose(
        gmmlib.log_likelihood(Y, fy.weights_, fy.means_, fy.covariances_),
        gmmlib.log_likelihood(X, fx.weights_, fx.means_, fx.covariances_) - 80 * log_det,
        rtol=1e-10,
    )


# -- warm start and n_init -----------------------------------------------------------------
def test_warm_start_continues_from_the_previous_solution():
    rng = np.random.default_rng(65)
    X, _, _ = h.blobs(rng, 60, 3, 2)
    start = _start(X, 3, "full")
    warm = gmmlib.GaussianMixture(3, tol=0.0, max_iter=5, warm_start=True, **start)
    _fit_quietly(warm, X)
    first_history = warm.log_likelihood_history_.copy()
    _fit_quietly(warm, X)
    cold = _fit_quietly(gmmlib.GaussianMixture(3, tol=0.0, max_iter=10, **start), X)
    h.assert_params_close(warm, cold, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        np.r_[first_history[:-1], warm.log_likelihood_history_],
        cold.log_likelihood_history_,
        rtol=1e-12,
    )
    # without warm_start a second fit starts afresh and repeats the first
    again = gmmlib.GaussianMixture(3, tol=0.0, max_iter=5, **start)
    _fit_quietly(again, X)
    _fit_quietly(again, X)
    np.testing.assert_allclose(again.log_likelihood_history_, first_history, rtol=1e-12)


def test_n_init_keeps_the_best_final_log_likelihood():
    rng = np.random.default_rng(66)
    X, _, _ = h.blobs(rng, 90, 4, 2, spread=2.0)
    kw = dict(init_params="random", max_iter=30, tol=0.0)
    best = _fit_quietly(
        gmmlib.GaussianMixture(4, n_init=5, random_state=np.random.default_rng(7), **kw), X
    )
    # the same five starts, one fit each, drawn in turn from one generator
    shared = np.random.default_rng(7)
    singles = [
        _fit_quietly(gmmlib.GaussianMixture(4, n_init=1, random_state=shared, **kw), X)
        for _ in range(5)
    ]
    finals = np.array([s.log_likelihood_history_[-1] for s in singles])
    assert np.ptp(finals) > 1e-6  # the starts really end in different places
    np.testing.assert_allclose(best.log_likelihood_history_[-1], finals.max(), rtol=1e-12)
    h.assert_params_close(best, singles[int(np.argmax(finals))], rtol=1e-10, atol=1e-12)
    # and never worse than the first start alone (same seed)
    first = _fit_quietly(gmmlib.GaussianMixture(4, random_state=np.random.default_rng(7), **kw), X)
    assert best.log_likelihood_history_[-1] >= first.log_likelihood_history_[-1]


# -- the API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fitted_model_methods_agree_with_the_formula_functions(covariance_type):
    X, _ = gmmlib.article_samples(n_samples=300)
    Xnew = gmmlib.article_samples(n_samples=50, random_state=1)[0]
    gm = gmmlib.GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, gm.predict(X))
    theta = (gm.weights_, gm.means_, gm.covariances_)
    proba = gm.predict_proba(Xnew)
    np.testing.assert_allclose(
        proba, gmmlib.responsibilities(Xnew, *theta, covariance_type), rtol=1e-12, atol=1e-300
    )
    np.testing.assert_array_equal(gm.predict(Xnew), proba.argmax(1))
    np.testing.assert_allclose(
        gm.score_samples(Xnew),
        gmmlib.log_mixture_density(Xnew, *theta, covariance_type),
        rtol=1e-12,
    )
    assert gm.score(Xnew) == pytest.approx(gm.score_samples(Xnew).mean(), rel=1e-14)
    # precisions_cholesky_ factors the inverse of covariances_
    K, d = gm.means_.shape
    full = h.to_full(gm.covariances_, covariance_type, K, d)
    prec = h.to_full(
        gm.precisions_cholesky_**2
        if covariance_type in ("diag", "spherical")
        else gm.precisions_cholesky_,
        covariance_type,
        K,
        d,
    )
    if covariance_type in ("full", "tied"):
        prec = prec @ np.swapaxes(prec, -1, -2)
    np.testing.assert_allclose(prec, np.linalg.inv(full), rtol=1e-9)
    # information criteria with an independent parameter count
    n_cov = {"full": K * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": K * d, "spherical": K}
    p = n_cov[covariance_type] + K * d + K - 1
    ll = gmmlib.log_likelihood(Xnew, *theta, covariance_type)
    assert gm.bic(Xnew) == pytest.approx(-2 * ll + p * np.log(len(Xnew)), rel=1e-12)
    assert gm.aic(Xnew) == pytest.approx(-2 * ll + 2 * p, rel=1e-12)


def test_sample_from_the_fitted_model():
    X, _ = gmmlib.article_samples(n_samples=300)
    gm = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    S, labels = gm.sample(5000, random_state=3)
    assert S.shape == (5000, 2) and labels.shape == (5000,)
    np.testing.assert_array_equal(S, gm.sample(5000, random_state=3)[0])
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 5000, gm.weights_, atol=0.03)
    for k in range(3):
        np.testing.assert_allclose(S[labels == k].mean(0), gm.means_[k], atol=0.25)


def test_fit_returns_self_and_params_round_trip():
    gm = gmmlib.GaussianMixture(2, covariance_type="diag", tol=1e-4)
    assert gm.get_params()["covariance_type"] == "diag"
    assert gm.set_params(n_components=3, max_iter=7) is gm
    assert gm.n_components == 3 and gm.max_iter == 7
    with pytest.raises(ValueError, match="Unknown parameter 'n_compnents'"):
        gm.set_params(n_compnents=2)
    assert "n_components=3" in repr(gm) and "max_iter=7" in repr(gm)
    X, _ = gmmlib.article_samples(n_samples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        assert gm.fit(X) is gm
    assert gm.n_features_in_ == 2


def test_verbose_prints_every_verbose_interval_iterations(capsys):
    X, _ = gmmlib.article_samples(n_samples=200)
    gm = gmmlib.GaussianMixture(
        3, verbose=1, verbose_interval=1, tol=0.0, max_iter=4, random_state=0
    )
    _fit_quietly(gm, X)
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("  iteration")]
    assert len(lines) == 4
    assert f"{gm.log_likelihood_history_[0]:.6f}" in lines[0]
    assert out[0] == "Initialisation 0" and "did not converge: 4 iterations" in out[-1]
    # the default interval is scikit-learn's, 10; verbose=2 adds the change and the time
    gm.set_params(verbose=2, verbose_interval=10, max_iter=25)
    _fit_quietly(gm, X)
    lines = [line for line in capsys.readouterr().out.splitlines() if "  iteration" in line]
    assert [line.split()[1] for line in lines] == ["10", "20"]
    assert all("change" in line and "time" in line for line in lines)


# -- what EM guarantees: monotone with reg_covar=0 (above), not with reg_covar > 0 ------------
def test_reg_covar_can_decrease_the_log_likelihood():
    """The docstring's caveat is real: from the exact (reg_covar=0) fit of a nearly flat
    cluster, one regularised iteration adds reg_covar to a variance of ~1e-8 and the plain
    log-likelihood falls; the fit with reg_covar=0 never falls (the hypothesis test above)."""
    rng = np.random.default_rng(8)
    flat = np.c_[rng.standard_normal(60), 1e-4 * rng.standard_normal(60)] + [6.0, 0.0]
    X = np.vstack([rng.standard_normal((60, 2)), flat])
    start = _start(X[np.r_[0:60, 60:120]], 2, "full")
    exact = _fit_quietly(
        gmmlib.GaussianMixture(2, reg_covar=0.0, tol=1e-12, max_iter=500, **start), X
    )
    assert np.all(np.diff(exact.log_likelihood_history_) >= -1e-12)
    assert exact.covariances_.min(axis=(1, 2)).min() < 1e-6  # one variance is tiny
    kw = dict(
        weights_init=exact.weights_, means_init=exact.means_, covariances_init=exact.covariances_
    )
    ridge = _fit_quietly(gmmlib.GaussianMixture(2, reg_covar=1e-6, tol=0.0, max_iter=5, **kw), X)
    drops = np.diff(ridge.log_likelihood_history_)
    assert drops[0] < -0.1  # a fall, not rounding
    # and it settles at the regularised fixed point: no further fall to speak of
    assert np.all(drops[1:] > -1e-6)


# -- n_init: the kept start, and starts that collapse -------------------------------------------
def _three_groups_one_a_point():
    rng = np.random.default_rng(0)
    return np.vstack(
        [
            rng.standard_normal((40, 2)),
            rng.standard_normal((40, 2)) + [8.0, 0.0],
            np.tile([4.0, 8.0], (10, 1)),  # ten copies of one point
        ]
    )


def test_n_init_skips_a_start_that_collapses_and_keeps_the_best_valid_one():
    """scikit-learn's test_gaussian_mixture_setting_best_params, with n_init > 1: two of six
    starts put a component on the ten copies (reg_covar=0); each is skipped with a warning
    that names it, and everything the fit reports belongs to the best of the other four."""
    X = _three_groups_one_a_point()
    kw = dict(reg_covar=0.0, init_params="random_from_data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best = gmmlib.GaussianMixture(3, n_init=6, random_state=np.random.default_rng(0), **kw)
        best.fit(X)
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(skipped) == 2
    assert all(
        re.match(r"Start \d of n_init=6 failed and was skipped: Component", m) for m in skipped
    )
    # the same six starts, one fit each, drawn in turn from one generator
    shared, finals, fits = np.random.default_rng(0), [], []
    for _ in range(6):
        single = gmmlib.GaussianMixture(3, random_state=shared, **kw)
        try:
            _fit_quietly(single, X)
        except ValueError as err:
            assert "reg_covar" in str(err)
            finals.append(-np.inf)
        else:
            finals.append(single.log_likelihood_history_[-1])
        fits.append(single)
    assert sum(np.isneginf(finals)) == 2
    kept = fits[int(np.argmax(finals))]
    h.assert_params_close(best, kept, rtol=1e-12, atol=1e-12)
    for name in ("n_iter_", "converged_", "lower_bound_"):
        assert getattr(best, name) == getattr(kept, name), name
    np.testing.assert_array_equal(best.lower_bounds_, kept.lower_bounds_)
    np.testing.assert_array_equal(best.log_likelihood_history_, kept.log_likelihood_history_)


def test_every_start_collapsing_raises_the_clear_error():
    X = _three_groups_one_a_point()[80:]  # only the ten copies and nothing else
    X = np.vstack([X, X + [1.0, 0.0], X + [0.0, 1.0]])  # three points, ten copies each
    gm = gmmlib.GaussianMixture(3, reg_covar=0.0, n_init=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(
            ValueError, match=r"^All n_init=3 starts failed\. The first: .*reg_covar"
        ):
            gm.fit(X)
    assert not hasattr(gm, "means_")
    # with one start, the error is the collapse itself, as before
    with pytest.raises(ValueError, match=r"^(Component|The tied).*reg_covar"):
        gm.set_params(n_init=1).fit(X)


def test_lower_bound_belongs_to_the_kept_start():
    """scikit-learn's test_init, by gmmlib's measure: with n_init=10 the kept start's final
    log-likelihood is never below the first start's alone, and lower_bound_ (and
    lower_bounds_) are the kept start's, not the last start's."""
    for random_state in range(15):
        X, _, _ = h.blobs(np.random.default_rng(random_state), 50, 2, 2, spread=2.0)
        one = _fit_quietly(gmmlib.GaussianMixture(2, max_iter=1, random_state=random_state), X)
        ten = _fit_quietly(
            gmmlib.GaussianMixture(2, n_init=10, max_iter=1, random_state=random_state), X
        )
        assert ten.score(X) >= one.score(X)
        assert ten.lower_bound_ == ten.lower_bounds_[-1] == ten.log_likelihood_history_[-2]
        assert ten.score(X) == pytest.approx(ten.log_likelihood_history_[-1], rel=1e-12)


# -- warm starts --------------------------------------------------------------------------------
def test_a_loop_of_warm_fits_converges_and_stops():
    """With max_iter=1 each warm fit is one iteration; the convergence test carries over
    from fit to fit (it restarted from -inf, so converged_ never became true)."""
    X, _ = gmmlib.article_samples(n_samples=400)
    warm = gmmlib.GaussianMixture(3, warm_start=True, max_iter=1, tol=1e-6, random_state=0)
    lower_bounds = []
    for _ in range(500):
        _fit_quietly(warm, X)
        lower_bounds.append(warm.lower_bound_)
        if warm.converged_:
            break
    assert warm.converged_ and warm.n_iter_ == 1
    cold = gmmlib.GaussianMixture(3, max_iter=500, tol=1e-6, random_state=0).fit(X)
    assert cold.converged_ and len(lower_bounds) == cold.n_iter_
    np.testing.assert_allclose(lower_bounds, cold.lower_bounds_, rtol=1e-12)
    h.assert_params_close(warm, cold, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "change", [{"n_components": 2}, {"covariance_type": "diag"}, {"covariance_type": "tied"}]
)
def test_warm_start_after_the_settings_changed_starts_afresh(change):
    """scikit-learn keeps the old number of components, or fails on a broadcasting error;
    gmmlib fits the new model from a fresh start, then continues from that one."""
    X, _ = gmmlib.article_samples(n_samples=300)
    kw = dict(tol=0.0, max_iter=5, random_state=0)
    warm = _fit_quietly(gmmlib.GaussianMixture(3, warm_start=True, **kw), X)
    warm.set_params(**change)
    _fit_quietly(warm, X)
    settings = {"n_components": 3, **change}
    fresh = _fit_quietly(gmmlib.GaussianMixture(**settings, **kw), X)
    h.assert_params_close(warm, fresh, rtol=1e-12, atol=1e-12)
    assert warm.means_.shape == fresh.means_.shape and np.shape(warm.covariances_) == np.shape(
        fresh.covariances_
    )
    _fit_quietly(warm, X)  # and the next warm fit continues it
    longer = _fit_quietly(gmmlib.GaussianMixture(**settings, **{**kw, "max_iter": 10}), X)
    h.assert_params_close(warm, longer, rtol=1e-10, atol=1e-12)


# -- max_iter=0, precisions_init, a complete start ----------------------------------------------
@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_max_iter_zero_only_initialises(init_params):
    X, _ = gmmlib.article_samples(n_samples=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: nothing was meant to converge
        gm = gmmlib.GaussianMixture(3, max_iter=0, init_params=init_params, random_state=1).fit(X)
    assert gm.n_iter_ == 0 and not gm.converged_ and gm.lower_bound_ == -np.inf
    assert gm.lower_bounds_.shape == (0,) and gm.log_likelihood_history_.shape == (1,)
    rng = np.random.default_rng(1)
    resp = gmmlib.initial_responsibilities(X, 3, init_params, rng)
    w, m, c = gmmlib.m_step(X, resp, "full", reg_covar=1e-6)
    for fitted, expected in ((gm.weights_, w), (gm.means_, m), (gm.covariances_, c)):
        np.testing.assert_allclose(fitted, expected, rtol=1e-12, atol=1e-14)
    # the start of a one-iteration fit is this one
    one = _fit_quietly(
        gmmlib.GaussianMixture(3, max_iter=1, init_params=init_params, random_state=1), X
    )
    assert one.lower_bound_ == pytest.approx(gm.log_likelihood_history_[0], rel=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_precisions_init_is_the_same_start_as_covariances_init(covariance_type):
    rng = np.random.default_rng(67)
    X, _, _ = h.blobs(rng, 80, 3, 2)
    start = _start(X, 3, covariance_type)
    precisions = h.precisions_for_sklearn(start["covariances_init"], covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=8)
    by_cov = _fit_quietly(gmmlib.GaussianMixture(3, **kw, **start), X)
    start["precisions_init"] = precisions
    del start["covariances_init"]
    by_prec = _fit_quietly(gmmlib.GaussianMixture(3, **kw, **start), X)
    h.assert_params_close(by_prec, by_cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        by_prec.log_likelihood_history_, by_cov.log_likelihood_history_, rtol=1e-12
    )
    # the fitted precisions_ are the inverses of the fitted covariances_
    K, d = by_prec.means_.shape
    prec = h.to_full(by_prec.precisions_, covariance_type, K, d)
    cov = h.to_full(by_prec.covariances_, covariance_type, K, d)
    np.testing.assert_allclose(prec @ cov, np.broadcast_to(np.eye(d), (K, d, d)), atol=1e-9)


def test_a_complete_user_start_needs_no_initial_m_step(monkeypatch):
    """As scikit-learn (its test counts calls of a private helper): weights, means and
    precisions all given, neither initial responsibilities nor an M-step are computed."""
    import gmmlib._estimator as estimator

    X, _ = gmmlib.article_samples(n_samples=300)
    start = gmmlib.GaussianMixture(3, max_iter=0, random_state=0).fit(X)

    def forbidden(*args, **kwargs):
        raise AssertionError("the start was computed, though it was given")

    monkeypatch.setattr(estimator, "initial_parameters", forbidden)
    gm = gmmlib.GaussianMixture(
        3, weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    ).fit(X)
    assert gm.converged_
    with pytest.raises(AssertionError, match="was given"):
        gmmlib.GaussianMixture(3, weights_init=start.weights_, means_init=start.means_).fit(X)


# -- sample weights in score, bic and aic -------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_compressed_data_report_the_bic_of_the_repeated_rows(covariance_type):
    rng = np.random.default_rng(68)
    X, _, _ = h.blobs(rng, 50, 3, 2)
    counts = rng.integers(1, 5, size=50)
    start = _start(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, **start)
    compressed = _fit_quietly(gmmlib.GaussianMixture(3, **kw), X, sample_weight=counts)
    repeated_rows = np.repeat(X, counts, axis=0)
    repeated = _fit_quietly(gmmlib.GaussianMixture(3, **kw), repeated_rows)
    h.assert_params_close(compressed, repeated, rtol=1e-10, atol=1e-10)
    for method in ("bic", "aic", "score"):
        weighted = getattr(compressed, method)(X, sample_weight=counts)
        assert weighted == pytest.approx(getattr(repeated, method)(repeated_rows), rel=1e-10)
    # the independent formula: N in the penalty is the number of repeated rows
    ll = h.scipy_log_likelihood(
        X,
        compressed.weights_,
        compressed.means_,
        h.to_full(compressed.covariances_, covariance_type, 3, 2),
        sample_weight=counts,
    )
    p = compressed._n_parameters()
    assert compressed.bic(X, sample_weight=counts) == pytest.approx(
        -2 * ll + p * np.log(counts.sum()), rel=1e-10
    )
    # and no weights is weights of one
    assert compressed.bic(X) == pytest.approx(
        compressed.bic(X, sample_weight=np.ones(50)), rel=1e-14
    )


# -- the kernel, feature names ------------------------------------------------------------------
def test_backend_is_passed_to_the_engine(monkeypatch):
    import gmmlib._estimator as estimator

    X, _ = gmmlib.article_samples(n_samples=300)
    seen = []

    class Recording(estimator.EMEngine):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("backend"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(estimator, "EMEngine", Recording)
    numpy_fit = gmmlib.GaussianMixture(3, backend="numpy", random_state=0).fit(X)
    auto_fit = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    assert seen == ["numpy", "auto"]
    h.assert_params_close(numpy_fit, auto_fit, rtol=1e-9, atol=1e-12)


class _Frame:
    """The least a data frame has for gmmlib: named columns, and an array."""

    def __init__(self, data, columns):
        self._data, self.columns = np.asarray(data), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __getitem__(self, columns):
        return _Frame(self._data[:, [self.columns.index(c) for c in columns]], columns)


def test_feature_names_are_kept_and_checked():
    X, _ = gmmlib.article_samples(n_samples=300)
    df = _Frame(X, ["x", "y"])
    gm = gmmlib.GaussianMixture(3, random_state=0).fit(df)
    assert gm.feature_names_in_.dtype == object and list(gm.feature_names_in_) == ["x", "y"]
    np.testing.assert_array_equal(
        gm.predict(df), gmmlib.GaussianMixture(3, random_state=0).fit(X).predict(X)
    )
    # the columns reordered: once a silently wrong answer, now an error that says what to do
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(
            ValueError, match=r"same order as they were in fit\.\n.*feature_names_in_"
        ):
            getattr(gm, method)(df[["y", "x"]])
    with pytest.raises(ValueError, match=r"unseen at fit time:\n- z\n.*yet now missing:\n- y\n"):
        gm.predict(_Frame(X, ["x", "z"]))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        gm.predict(X)
    # names that are not all strings are not kept (as in scikit-learn); a mix is an error
    assert not hasattr(gmmlib.GaussianMixture(3).fit(_Frame(X, [0, 1])), "feature_names_in_")
    with pytest.raises(TypeError, match="string names"):
        gmmlib.GaussianMixture(3).fit(_Frame(X, ["x", 1]))
    # a fit on an array forgets the names
    gm.fit(X)
    assert not hasattr(gm, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but GaussianMixture was fitted"):
        gm.predict(df)
