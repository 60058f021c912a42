"""Bad input gets a clear error that says what to change, and nothing is lost."""

import copy
import re
import warnings

import numpy as np
import pytest

import gmmlib
from gmmlib._validation import check_not_collapsed

FITTED_ATTRIBUTES = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "lower_bounds_",
    "log_likelihood_history_",
    "n_features_in_",
)


@pytest.fixture(scope="module")
def data():
    return gmmlib.article_samples(n_samples=200, random_state=3)[0]


def _fit(X, **kwargs):
    return gmmlib.GaussianMixture(**{"n_components": 2, "random_state": 0, **kwargs}).fit(X)


# -- the data ----------------------------------------------------------------------------
def test_1d_data_says_which_reshape_to_use(data):
    with pytest.raises(ValueError, match=r"1-D .*X\.reshape\(-1, 1\)"):
        _fit(data[:, 0])
    gm = _fit(data)
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        gm.predict(data[0])
    with pytest.raises(ValueError, match=r"reshape"):
        gmmlib.log_gaussian_density(np.zeros(3), np.zeros(1), np.eye(1))


def test_3d_data_is_rejected(data):
    with pytest.raises(ValueError, match=r"must be 2-D"):
        _fit(data[None])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_the_row(data, bad):
    X = data.copy()
    X[17, 1] = bad
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 row\(s\) \(row 17\)"):
        _fit(X)
    X[5, 0] = bad
    with pytest.raises(ValueError, match=r"2 row\(s\) \(row 5, 17\)"):
        _fit(X)
    gm = _fit(data)
    with pytest.raises(ValueError, match=r"row 5, 17"):
        gm.predict(X[:20])
    with pytest.raises(ValueError, match=r"row 5, 17"):
        gmmlib.log_mixture_density(X, *gmmlib.article_parameters())


def test_non_numeric_data_is_rejected():
    with pytest.raises(ValueError, match=r"must be numeric.*dtype=float"):
        _fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]]))
    with pytest.raises(ValueError, match=r"complex"):
        _fit(np.ones((5, 2)) * 1j)


def test_sparse_data_get_advice_that_works(data):
    """Once told to use np.asarray(X, dtype=float), which fails on a sparse matrix."""
    from scipy import sparse

    gm = _fit(data)
    for X in (sparse.csr_matrix(data), sparse.csr_array(data), sparse.coo_array(data)):
        for call in (_fit, gm.predict, gm.score):
            with pytest.raises(ValueError, match=r"Sparse data .* X\.toarray\(\)") as info:
                call(X)
            assert isinstance(info.value, TypeError)  # as scikit-learn raises it
        with pytest.raises(ValueError, match=r"Sparse data"):
            gmmlib.log_mixture_density(X, *gmmlib.article_parameters())
        assert np.array_equal(gm.predict(X.toarray()), gm.predict(data))


def test_object_arrays_of_numbers_are_numbers(data):
    """As in scikit-learn: an object array of numbers is read as float64, anything else
    in it is an error that names the entry."""
    a, b = _fit(data), _fit(data.astype(object))
    np.testing.assert_array_equal(a.means_, b.means_)
    assert b.means_.dtype == np.float64
    bad = data.astype(object)
    bad[0, 0] = {"foo": "bar"}
    with pytest.raises(
        TypeError, match=r"dtype object .*argument must be a string or a real number"
    ):
        _fit(bad)
    bad[0, 0] = "a"
    with pytest.raises(ValueError, match=r"not a number \(could not convert string to float"):
        _fit(bad)
    bad[0, 0] = None  # NumPy reads None as NaN, which is then named
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 row\(s\) \(row 0\)"):
        _fit(bad)


def test_empty_data(data):
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(12, 0\)\) while a minimum"):
        _fit(np.empty((12, 0)))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        _fit(np.empty((0, 3)))


def test_fewer_samples_than_components(data):
    with pytest.raises(ValueError, match=r"n_components=5 needs at least 5 samples.*got 3"):
        _fit(data[:3], n_components=5)
    # samples with zero weight do not count
    with pytest.raises(ValueError, match=r"n_components=3 needs at least 3 samples.*got 2"):
        gmmlib.GaussianMixture(3).fit(data[:10], sample_weight=np.r_[1.0, 1.0, np.zeros(8)])


# -- the constructor's parameters ------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True, None])
def test_n_components_must_be_a_positive_integer(data, value):
    with pytest.raises(ValueError, match=r"n_components must be"):
        _fit(data, n_components=value)


def test_numpy_integer_n_components_is_accepted(data):
    assert _fit(data, n_components=np.int64(2)).means_.shape == (2, 2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"covariance_type": "ful"}, r"covariance_type must be one of 'full', 'tied'.*got 'ful'"),
        ({"init_params": "kmean"}, r"init_params must be one of 'kmeans'.*got 'kmean'"),
        ({"tol": -1e-3}, r"tol must be a finite number >= 0; got -0\.001"),
        ({"tol": np.nan}, r"tol must be a finite number >= 0"),
        ({"reg_covar": -1e-6}, r"reg_covar must be a finite number >= 0"),
        ({"reg_covar": "small"}, r"reg_covar must be a non-negative number"),
        ({"max_iter": -1}, r"max_iter must be at least 0"),
        ({"max_iter": 5.0}, r"max_iter must be an integer; got 5\.0"),
        ({"warm_start": 1}, r"warm_start must be True or False; got 1"),
        ({"verbose_interval": 0}, r"verbose_interval must be at least 1"),
        ({"backend": "cuda"}, r"backend must be one of 'auto', 'numba', 'numpy'"),
        ({"random_state": -1}, r"random_state must be None, an integer seed >= 0"),
        ({"precisions_init": np.ones(2), "covariances_init": np.ones(2)}, r"give one of them"),
        ({"n_init": 0}, r"n_init must be at least 1"),
    ],
)
def test_invalid_constructor_parameters(data, params, message):
    with pytest.raises(ValueError, match=message):
        _fit(data, **params)


# -- user-given starting parameters ---------------------------------------------------------
def test_weights_init_must_sum_to_one(data):
    # scikit-learn's wording first (its own tests look for it), then what to do
    with pytest.raises(ValueError, match=r"sum\(weights\) = 1\.20000\. Divide weights_init"):
        _fit(data, weights_init=[0.6, 0.6])
    with pytest.raises(ValueError, match=r"range \[0, 1\], but got min value -0\.50000, max"):
        _fit(data, weights_init=[1.5, -0.5])
    with pytest.raises(
        ValueError, match=r"shape of \(2,\), but got \(3,\): .*one weight per component"
    ):
        _fit(data, weights_init=[0.2, 0.3, 0.5])


def test_means_init_shape(data):
    with pytest.raises(
        ValueError, match=r"'means' should have the shape of \(2, 2\), but got \(2, 3\)"
    ):
        _fit(data, means_init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"means_init contains NaN"):
        _fit(data, means_init=[[0.0, np.nan], [1.0, 1.0]])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_precisions_init_is_checked(data, covariance_type):
    bad_shape = {"full": np.ones((3, 2, 2)), "tied": np.ones((3, 3)), "diag": np.ones((3, 2))}
    with pytest.raises(ValueError, match=rf"'{covariance_type} precision' should have the shape"):
        _fit(
            data,
            covariance_type=covariance_type,
            precisions_init=bad_shape.get(covariance_type, np.ones(3)),
        )
    not_pd = {
        "full": np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]),
        "tied": np.array([[1.0, 2.0], [2.0, 1.0]]),
        "diag": np.array([[1.0, 1.0], [0.0, 1.0]]),
        "spherical": np.array([1.0, -1.0]),
    }[covariance_type]
    with pytest.raises(ValueError, match=rf"'{covariance_type} precision' should be"):
        _fit(data, covariance_type=covariance_type, precisions_init=not_pd)


def test_covariances_init_must_be_positive_definite(data):
    not_pd = np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match=r"covariance 1 is not positive definite"):
        _fit(data, covariances_init=not_pd)
    asym = np.array([np.eye(2), [[3.0, 2.0], [1.0, 2.0]]])  # the article's printed Σ₂
    with pytest.raises(ValueError, match=r"covariance 1 is not symmetric.*\(S \+ S\.T\) / 2"):
        _fit(data, covariances_init=asym)
    with pytest.raises(ValueError, match=r"strictly positive; component\(s\) \[0\]"):
        _fit(data, covariance_type="diag", covariances_init=np.array([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"spherical covariances must be strictly positive"):
        _fit(data, covariance_type="spherical", covariances_init=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"must have shape \(2, 2, 2\)"):
        _fit(data, covariances_init=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"tied covariance is not positive definite"):
        _fit(data, covariance_type="tied", covariances_init=np.zeros((2, 2)))


def test_sample_weight_is_checked(data):
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(200,\)"):
        gmmlib.GaussianMixture(2).fit(data, sample_weight=np.ones(199))
    w = np.ones(200)
    w[4] = -1.0
    with pytest.raises(ValueError, match=r"sample\(s\) \[4\] are not"):
        gmmlib.GaussianMixture(2).fit(data, sample_weight=w)
    with pytest.raises(ValueError, match=r"sums to zero"):
        gmmlib.GaussianMixture(2).fit(data, sample_weight=np.zeros(200))


# -- using the model ---------------------------------------------------------------------------
def test_wrong_number_of_features_at_predict(data):
    gm = _fit(data)
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(
            ValueError, match=r"X has 3 features, but GaussianMixture is expecting 2 features"
        ):
            getattr(gm, method)(np.zeros((4, 3)))


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic", "sample"]
)
def test_using_the_model_before_fit(data, method):
    gm = gmmlib.GaussianMixture(2)
    args = (5,) if method == "sample" else (data,)
    with pytest.raises(gmmlib.NotFittedError, match=r"not fitted yet. Call 'fit'") as info:
        getattr(gm, method)(*args)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AttributeError)


# -- collapsing components ------------------------------------------------------------------------
def _duplicated_points(offset=(0.0, 0.0)):
    """Three distinct points, each repeated: every k-means cluster is a single point."""
    points = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]]) + offset
    return np.repeat(points, 10, axis=0)


def _named_components(message):
    """The component indices a collapse message names, at the start of the message:
    "Component 2 has ..." or "Component(s) [0, 2] have ..."."""
    match = re.match(r"Component (\d+) has |Component\(s\) \[(\d+(?:, \d+)*)\] have ", message)
    assert match, f"the message does not start by naming the component(s): {message!r}"
    single, several = match.groups()
    return [int(single)] if single is not None else [int(k) for k in several.split(", ")]


def _one_component_on_a_point(offset, k_bad):
    """Two clouds and ten copies of one point; component ``k_bad`` starts on the point."""
    rng = np.random.default_rng(0)
    centres = [np.array([0.0, 0.0]), np.array([8.0, 0.0])]
    point = np.array([4.0, 8.0]) + offset
    X = np.vstack([c + rng.standard_normal((40, 2)) for c in centres] + [np.tile(point, (10, 1))])
    centres.insert(k_bad, point)
    return X, np.array(centres)


_UNIT_COVARIANCES = {
    "full": np.stack([np.eye(2)] * 3),
    "diag": np.ones((3, 2)),
    "spherical": np.ones(3),
}


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("offset", [(0.0, 0.0), (1.0, 2.0), (1.3, 2.7)])
@pytest.mark.parametrize("k_bad", [0, 1, 2])
def test_collapse_onto_a_point_names_the_component_and_suggests_reg_covar(
    covariance_type, offset, k_bad
):
    # Only component k_bad sits on the duplicated point; the message must name it, and only
    # it (the hint's "1e-6" holds digits too, so the index is read where it belongs).
    X, means_init = _one_component_on_a_point(offset, k_bad)
    start = dict(
        weights_init=np.full(3, 1 / 3),
        means_init=means_init,
        covariances_init=_UNIT_COVARIANCES[covariance_type],
    )
    gm = gmmlib.GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0, **start)
    with pytest.raises(ValueError) as info:
        gm.fit(X)
    message = str(info.value)
    assert _named_components(message) == [k_bad], message
    assert "reg_covar" in message
    assert not hasattr(gm, "means_")
    # with reg_covar the same data fits, with finite parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        gm.set_params(reg_covar=1e-6).fit(X)
    for a in (gm.weights_, gm.means_, gm.covariances_, gm.log_likelihood_history_):
        assert np.all(np.isfinite(a))


@pytest.mark.parametrize("offset", [(0.0, 0.0), (1.0, 2.0), (1.3, 2.7)])
def test_collapse_of_the_tied_covariance_says_so(offset):
    X = _duplicated_points(offset)  # every cluster a point: the pooled covariance is zero
    gm = gmmlib.GaussianMixture(3, covariance_type="tied", reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match=r"^The tied covariance has .*reg_covar"):
        gm.fit(X)
    assert not hasattr(gm, "means_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        gm.set_params(reg_covar=1e-6).fit(X)
    assert np.all(np.isfinite(gm.covariances_))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("k_bad", [0, 1, 2])
def test_rounding_noise_variance_is_called_collapsed_and_named(covariance_type, k_bad):
    """A variance of 1e-31 at a mean of size ~3 is rounding noise (ε|μ|)², not spread."""
    means = np.array([[1.3, 2.7], [-2.0, 0.5], [3.0, -1.0]])
    variances = np.ones((3, 2))
    variances[k_bad, :] = 1e-31
    covariances = {
        "full": np.stack([np.diag(v) for v in variances]),
        "diag": variances,
        "spherical": variances.mean(axis=1),
    }[covariance_type]
    np.linalg.cholesky(np.diag(variances[k_bad]))  # positive definite all the same
    with pytest.raises(ValueError, match=r"collapsed.*reg_covar") as info:
        check_not_collapsed(means, covariances, covariance_type)
    assert _named_components(str(info.value)) == [k_bad]


def test_collapse_during_em_is_named_not_nan():
    """A component that starts on an outlier shrinks onto it within one iteration."""
    rng = np.random.default_rng(71)
    X = np.vstack([rng.standard_normal((50, 2)), [[100.0, 100.0]]])
    start = dict(
        weights_init=[0.5, 0.5],
        means_init=[[0.0, 0.0], [100.0, 100.0]],
        covariances_init=np.stack([np.eye(2), np.eye(2)]),
    )
    gm = gmmlib.GaussianMixture(2, reg_covar=0.0, **start)
    with pytest.raises(ValueError, match=r"Component 1 .*Increase reg_covar"):
        gm.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)
        gm.set_params(reg_covar=1e-6).fit(X)
    np.testing.assert_allclose(gm.covariances_[1], 1e-6 * np.eye(2), rtol=1e-6, atol=1e-20)
    assert np.all(np.isfinite(gm.log_likelihood_history_))


# -- convergence, dtype, failed fits -----------------------------------------------------------
def test_reaching_max_iter_warns(data):
    with pytest.warns(gmmlib.ConvergenceWarning, match=r"did not converge.*max_iter=2 "):
        gm = _fit(data, max_iter=2, tol=0.0)
    assert not gm.converged_ and gm.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converged fit warns nothing
        gm = _fit(data, max_iter=500, tol=1e-3)
    assert gm.converged_


def test_float32_input_is_computed_in_float64(data):
    """EM runs in float64; float32 data get the float64 results rounded once to float32."""
    X32 = data.astype(np.float32)
    gm32 = _fit(X32, tol=1e-8, max_iter=300)
    gm64 = _fit(X32.astype(np.float64), tol=1e-8, max_iter=300)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm32, name).dtype == np.float32, name
        np.testing.assert_array_equal(getattr(gm32, name), getattr(gm64, name).astype(np.float32))
    np.testing.assert_array_equal(gm32.log_likelihood_history_, gm64.log_likelihood_history_)
    assert gm32.log_likelihood_history_.dtype == np.float64 and gm32.n_iter_ == gm64.n_iter_
    assert gm32.predict_proba(X32).dtype == np.float32
    assert gm32.score_samples(X32).dtype == np.float32
    # float64 data, or a float64 model, give float64 results
    assert gm32.score_samples(X32.astype(np.float64)).dtype == np.float64
    assert gm64.predict_proba(X32).dtype == np.float64
    np.testing.assert_allclose(gm32.score_samples(X32), gm64.score_samples(X32), rtol=1e-6)
    assert isinstance(gm32.score(X32), float)
    assert gmmlib.log_gaussian_density(X32, [0, 0], np.eye(2)).dtype == np.float64


def _snapshot(gm):
    return {name: copy.deepcopy(getattr(gm, name)) for name in FITTED_ATTRIBUTES}


def _assert_unchanged(gm, snapshot):
    for name, before in snapshot.items():
        np.testing.assert_array_equal(getattr(gm, name), before, err_msg=name)


def test_a_failed_fit_leaves_the_fitted_model_unchanged(data):
    gm = _fit(data, n_components=3)
    before = _snapshot(gm)
    bad = data.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        gm.fit(bad)
    _assert_unchanged(gm, before)
    with pytest.raises(ValueError, match="n_components"):
        gm.set_params(n_components=0).fit(data)
    _assert_unchanged(gm, before)
    # a failure in the middle of EM (a collapse) is no different
    gm.set_params(n_components=3, reg_covar=0.0)
    with pytest.raises(ValueError, match="reg_covar"):
        gm.fit(_duplicated_points())
    _assert_unchanged(gm, before)
    # a wrong start on a warm-started model
    gm.set_params(reg_covar=1e-6, warm_start=True)
    with pytest.raises(ValueError, match="warm_start"):
        gm.fit(np.hstack([data, data]))
    _assert_unchanged(gm, before)
    np.testing.assert_array_equal(gm.predict(data), _fit(data, n_components=3).predict(data))


@pytest.mark.parametrize("n_line", [2, 3, 7])
def test_collapse_onto_a_line_is_named_not_fitted(n_line):
    """A component holding only collinear points has a singular covariance with
    normal-sized variances; it must be reported, not returned with a huge likelihood."""
    rng = np.random.default_rng(5)
    t = np.linspace(-1.0, 1.0, n_line)
    line = np.c_[10.0 + t, 10.0 + 2.0 * t]  # exactly on y = 2x - 10
    X = np.vstack([rng.standard_normal((60, 2)), line])
    start = dict(
        weights_init=[0.9, 0.1],
        means_init=[[0.0, 0.0], line.mean(axis=0)],
        covariances_init=np.stack([np.eye(2), np.eye(2)]),
    )
    gm = gmmlib.GaussianMixture(2, reg_covar=0.0, max_iter=50, **start)
    with pytest.raises(ValueError, match=r"reg_covar") as info:
        gm.fit(X)
    assert _named_components(str(info.value)) == [1]
    assert not hasattr(gm, "means_")


def test_an_ill_scaled_but_valid_covariance_is_not_called_collapsed():
    # variances 1e12 and 1 with correlation 0.5: badly scaled, far from singular
    cov = np.array([[[1e12, 0.5e6], [0.5e6, 1.0]]])
    check_not_collapsed(np.zeros((1, 2)), cov, "full")
    check_not_collapsed(np.zeros((1, 2)), cov[0], "tied")


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_a_positive_definite_but_rounding_singular_covariance_is_called_collapsed(
    covariance_type,
):
    # Cholesky succeeds (eigenvalues ~2 and ~5e-16), yet the samples lie on a line
    cov = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-15]])
    np.linalg.cholesky(cov)
    covariances = cov if covariance_type == "tied" else cov[None]
    with pytest.raises(ValueError, match=r"line or plane.*reg_covar"):
        check_not_collapsed(np.ones((1, 2)), covariances, covariance_type)


# -- where the checks live ---------------------------------------------------------------------
def test_the_formula_modules_raise_no_message_of_their_own():
    """Every message is written in gmmlib._validation; the other modules only call its checks."""
    import pathlib

    package = pathlib.Path(gmmlib.__file__).parent
    modules = [p.stem for p in package.glob("_*.py") if p.stem not in ("__init__", "_validation")]
    assert {"_e_step", "_engine", "_estimator"} <= set(modules)
    for name in modules:
        source = (package / f"{name}.py").read_text(encoding="utf-8")
        assert "ValueError(" not in source, f"gmmlib/{name}.py builds its own ValueError"


def test_new_argument_checks():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    with pytest.raises(ValueError, match=r"covariance_type='full' must have shape \(n_components"):
        gmmlib.precision_cholesky(np.eye(2), "full")
    with pytest.raises(ValueError, match=r"covariance_type must be one of"):
        gmmlib.precision_cholesky(np.ones(2), "round")
    w, m, c = np.array([0.5, 0.5]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2)
    with pytest.raises(ValueError, match=r"old_means has 3 components but means has 2"):
        gmmlib.q_function_brute_force(X, w, m, c, np.full(3, 1 / 3), np.zeros((3, 2)), c[[0, 0, 0]])
    resp = np.full((6, 2), 0.5)
    with pytest.raises(ValueError, match=r"means has 3 rows but n_components is 2"):
        gmmlib.q_gradient_means(X, resp, np.zeros((3, 2)), c)
    with pytest.raises(ValueError, match=r"covariance 1 is not positive definite"):
        gmmlib.q_gradient_covariances(X, resp, m, np.stack([np.eye(2), np.zeros((2, 2))]))
    with pytest.raises(ValueError, match=r"n_components=7 needs at least 7 samples; got 6"):
        gmmlib.initial_responsibilities(X, 7, "kmeans", rng)
    with pytest.raises(ValueError, match=r"Invalid value for 'n_samples': 0\. .*n_samples >= 1"):
        _fit(X).sample(0)


def test_initial_responsibilities_takes_a_seed_or_a_generator():
    X = np.random.default_rng(1).standard_normal((30, 2))
    for method in ("kmeans", "k-means++", "random", "random_from_data"):
        np.testing.assert_array_equal(
            gmmlib.initial_responsibilities(X, 3, method, 5),
            gmmlib.initial_responsibilities(X, 3, method, np.random.default_rng(5)),
        )
