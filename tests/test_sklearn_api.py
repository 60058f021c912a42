"""gmmlib.GaussianMixture in scikit-learn's tools, as a scikit-learn user would use it.

scikit-learn is a test-only dependency; these tests are skipped without it. gmmlib never
imports scikit-learn: the estimator implements the protocol those tools use, and raises
the subclasses of scikit-learn's NotFittedError and ConvergenceWarning once scikit-learn is
loaded (gmmlib._validation). scikit-learn's own tests of its GaussianMixture run on gmmlib
in tests/test_sklearn_conformance.py; the tests here are the user's view.
"""

import inspect
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gmmlib

sklearn = pytest.importorskip("sklearn")
if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 6):
    pytest.skip(
        "scikit-learn >= 1.6 has the estimator tags these tests use", allow_module_level=True
    )
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402


@pytest.fixture(scope="module")
def X():
    return gmmlib.article_samples(n_samples=300, random_state=4)[0]


def _quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


# -- the tools the issue lists --------------------------------------------------------------
def test_grid_search_picks_the_number_of_components(X):
    search = GridSearchCV(gmmlib.GaussianMixture(), {"n_components": [1, 2, 3]}).fit(X)
    assert search.best_params_ == {"n_components": 3}
    assert isinstance(search.best_estimator_, gmmlib.GaussianMixture)
    # it scored each candidate with gmmlib's score: the held-out mean log-likelihood
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.argmax(scores) == 2


def test_cross_val_score_is_the_held_out_log_likelihood(X):
    gm = gmmlib.GaussianMixture(3, random_state=0)
    folds = KFold(3)
    scores = cross_val_score(gm, X, cv=folds)
    expected = [clone(gm).fit(X[train]).score(X[test]) for train, test in folds.split(X)]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_pipeline_with_a_scaler(X):
    pipe = make_pipeline(StandardScaler(), gmmlib.GaussianMixture(3, random_state=0)).fit(X)
    gm = pipe[-1]
    Z = StandardScaler().fit(X).transform(X)
    np.testing.assert_array_equal(pipe.predict(X), gm.predict(Z))
    np.testing.assert_allclose(pipe.predict_proba(X), gm.predict_proba(Z))
    np.testing.assert_allclose(pipe.score_samples(X), gm.score_samples(Z))
    assert pipe.score(X) == pytest.approx(gm.score(Z), rel=1e-14)
    # sample weights reach gmmlib through the pipeline, in fit and in score
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    pipe.fit(X, gaussianmixture__sample_weight=w)
    assert pipe.score(X, sample_weight=w) == pytest.approx(
        pipe[-1].score(Z, sample_weight=w), rel=1e-14
    )


def test_clone_and_check_is_fitted(X):
    gm = gmmlib.GaussianMixture(2, covariance_type="diag", reg_covar=1e-4, random_state=1)
    with pytest.raises(NotFittedError):
        check_is_fitted(gm)
    gm.fit(X)
    check_is_fitted(gm)
    copy = clone(gm)
    assert type(copy) is gmmlib.GaussianMixture and copy.get_params() == gm.get_params()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        check_is_fitted(copy)


def test_tags_are_those_of_sklearns_gaussian_mixture():
    assert get_tags(gmmlib.GaussianMixture()) == get_tags(SklearnGaussianMixture())
    assert get_tags(gmmlib.GaussianMixture()).estimator_type == "density_estimator"


def test_every_parameter_and_fitted_attribute_of_sklearn_is_there(X):
    theirs = inspect.signature(SklearnGaussianMixture).parameters
    ours = inspect.signature(gmmlib.GaussianMixture).parameters
    for name, parameter in theirs.items():
        assert name in ours, name
        assert ours[name].default == parameter.default, name
        assert ours[name].kind == parameter.kind, name
    # gmmlib's own parameters come after scikit-learn's, backend last
    assert list(ours)[-1] == "backend"
    fitted_theirs = _quietly(SklearnGaussianMixture(3, random_state=0).fit, X)
    fitted_ours = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    attributes = {a for a in vars(fitted_theirs) if a.endswith("_") and not a.startswith("_")}
    assert attributes <= set(vars(fitted_ours)), attributes - set(vars(fitted_ours))
    for name in attributes - {"lower_bounds_"}:  # one per iteration, and EM's paths differ
        a, b = getattr(fitted_ours, name), getattr(fitted_theirs, name)
        assert np.shape(a) == np.shape(b), name
    for gm in (fitted_ours, fitted_theirs):
        assert len(gm.lower_bounds_) == gm.n_iter_ and gm.lower_bound_ == gm.lower_bounds_[-1]


# -- the exceptions are scikit-learn's --------------------------------------------------------
def test_not_fitted_error_is_caught_as_sklearns(X):
    gm = gmmlib.GaussianMixture(2)
    for method in ("predict", "predict_proba", "score", "score_samples", "bic", "aic"):
        try:
            getattr(gm, method)(X)
        except NotFittedError as error:  # scikit-learn's class
            assert isinstance(error, gmmlib.NotFittedError)
            assert isinstance(error, ValueError) and isinstance(error, AttributeError)
        else:
            raise AssertionError(f"{method} did not raise")
    with pytest.raises(NotFittedError):
        gm.sample(3)


def test_convergence_warning_obeys_sklearns_filters(X):
    gm = gmmlib.GaussianMixture(3, max_iter=2, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge") as record:
        gm.fit(X)
    assert issubclass(record[0].category, gmmlib.ConvergenceWarning)
    assert record[0].category.__name__ == "ConvergenceWarning"  # as printed
    assert record[0].filename == __file__  # it points at the call of fit
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(gmmlib.ConvergenceWarning):
            gm.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)  # scikit-learn's filter silences it
        gm.fit(X)


def test_the_sklearn_exceptions_pickle(X):
    with pytest.raises(NotFittedError) as info:
        gmmlib.GaussianMixture().predict(X)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value) and str(again) == str(info.value)


def test_gmmlib_never_imports_sklearn():
    """Without scikit-learn loaded, gmmlib's own classes are raised, and nothing loads it."""
    code = (
        "import sys, warnings\n"
        "import numpy as np, gmmlib\n"
        "X = gmmlib.article_samples(n_samples=100)[0]\n"
        "try:\n"
        "    gmmlib.GaussianMixture(2).predict(X)\n"
        "except gmmlib.NotFittedError as e:\n"
        "    assert type(e) is gmmlib.NotFittedError, type(e)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    gmmlib.GaussianMixture(2, max_iter=1, tol=0.0).fit(X)\n"
        "assert w[0].category is gmmlib.ConvergenceWarning, w[0].category\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'sklearn'], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- behaviour scikit-learn's own tests check with its exact messages -----------------------------
def test_weights_init_messages_have_sklearns_wording(X):
    """scikit-learn's test_check_weights, less its swapped min/max (see the conformance suite)."""
    gm = gmmlib.GaussianMixture(2)
    gm.weights_init = np.full((2, 1), 0.5)
    with pytest.raises(
        ValueError, match=r"The parameter 'weights' should have the shape of \(2,\), but got"
    ):
        gm.fit(X)
    gm.weights_init = [0.3, 0.4]
    with pytest.raises(
        ValueError, match=r"The parameter 'weights' should be normalized, but got sum\(weights\) ="
    ):
        gm.fit(X)
    gm.weights_init = [1.2, 1.7]
    with pytest.raises(
        ValueError,
        match=r"should be in the range \[0, 1\], but got min value 1\.20000, max value 1\.70000",
    ):
        gm.fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_collapse_with_reg_covar_zero_raises_and_reg_covar_fixes_it(covariance_type):
    """scikit-learn's test_regularisation, with gmmlib's message (see the conformance suite)."""
    X = np.vstack((np.ones((5, 5)), np.zeros((5, 5))))
    gm = gmmlib.GaussianMixture(
        10, reg_covar=0, covariance_type=covariance_type, random_state=np.random.RandomState(0)
    )
    with pytest.raises(ValueError, match=r"(Component|tied covariance).*Increase reg_covar"):
        gm.fit(X)
    _quietly(gm.set_params(reg_covar=1e-6).fit, X)
    assert np.all(np.isfinite(gm.covariances_))


def test_same_precisions_init_same_iterations_as_sklearn(X):
    start = gmmlib.GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    kw = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        max_iter=10,
        tol=0.0,
    )
    ours = _quietly(gmmlib.GaussianMixture(3, **kw).fit, X)
    theirs = _quietly(SklearnGaussianMixture(3, **kw).fit, X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(
            getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-10, err_msg=name
        )
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-12)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-12)


# -- parameter types: as scikit-learn takes them ----------------------------------------------
#: (parameter, value, whether scikit-learn's GaussianMixture accepts it)
TYPED_VALUES = [
    ("n_components", np.int64(2), True),
    ("n_components", 2.0, False),
    ("n_components", np.float64(2.0), False),
    ("max_iter", np.int32(5), True),
    ("max_iter", 5.0, False),
    ("n_init", np.uint8(2), True),
    ("n_init", 2.0, False),
    ("verbose_interval", 2.0, False),
    ("tol", np.float32(1e-3), True),
    ("tol", 1, True),
    ("tol", "1e-3", False),
    ("reg_covar", np.int64(0), True),
    ("warm_start", np.bool_(True), True),
    ("warm_start", 1, False),
    ("warm_start", "yes", False),
    ("verbose", np.int8(0), True),
    ("verbose", 1.0, False),
    ("random_state", np.int64(3), True),
    ("random_state", np.random.RandomState(0), True),
    ("random_state", -1, False),
    ("random_state", 1.5, False),
    ("covariance_type", np.str_("diag"), True),
    ("init_params", np.str_("random"), True),
]


@pytest.mark.parametrize(("name", "value", "accepted"), TYPED_VALUES)
def test_parameter_types_are_accepted_as_sklearn_accepts_them(X, name, value, accepted):
    for cls in (SklearnGaussianMixture, gmmlib.GaussianMixture):
        gm = cls(2, max_iter=20, random_state=0).set_params(**{name: value})
        if accepted:
            _quietly(gm.fit, X)
        else:  # scikit-learn's InvalidParameterError is a ValueError and a TypeError
            with pytest.raises(ValueError, match=name):
                gm.fit(X)
            with pytest.raises(TypeError, match=name):
                gm.fit(X)


@pytest.mark.parametrize("name", ["n_components", "max_iter", "n_init", "tol", "reg_covar"])
def test_a_bool_is_refused_where_a_number_is_expected(X, name):
    """Stricter than scikit-learn, which takes max_iter=True as 1 (and fails on
    n_components=True with a bare TypeError)."""
    with pytest.raises(ValueError, match=name):
        gmmlib.GaussianMixture(2).set_params(**{name: True}).fit(X)


def test_random_state_instance_advances_as_in_sklearn(X):
    """A RandomState passed once gives different starts at each fit, a seed the same."""
    rs = np.random.RandomState(0)
    gm = gmmlib.GaussianMixture(3, init_params="random", max_iter=1, random_state=rs)
    first = _quietly(gm.fit, X).means_.copy()
    second = _quietly(gm.fit, X).means_.copy()
    assert not np.allclose(first, second)
    gm.set_params(random_state=7)
    np.testing.assert_array_equal(_quietly(gm.fit, X).means_, _quietly(gm.fit, X).means_)


# -- data frames (pandas, when installed) -----------------------------------------------------
def test_data_frame_columns_in_a_pipeline(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["x", "y"])
    pipe = make_pipeline(
        StandardScaler().set_output(transform="pandas"), gmmlib.GaussianMixture(3, random_state=0)
    ).fit(df)
    np.testing.assert_array_equal(pipe[-1].feature_names_in_, np.array(["x", "y"], dtype=object))
    gm = gmmlib.GaussianMixture(3, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, np.array(["x", "y"], dtype=object))
    # the columns swapped: scikit-learn raises, and so does gmmlib (once silently wrong)
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        gm.predict(df[["y", "x"]])
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        pipe.predict(df[["y", "x"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names") as record:
        np.testing.assert_array_equal(gm.predict(X), gm.predict(df))
    assert record[0].filename == __file__  # the warning points at the caller
    with pytest.warns(UserWarning, match="X does not have valid feature names") as record:
        gm.score(X)
    assert record[0].filename == __file__
