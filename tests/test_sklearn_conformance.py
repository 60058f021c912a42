"""scikit-learn's own tests of its GaussianMixture, run against gmmlib.GaussianMixture.

scikit-learn ships its tests in its wheel: ``sklearn/mixture/tests/test_gaussian_mixture.py``
and ``test_mixture.py``. At collection, this module reads their text from the installed
scikit-learn, changes the one line of each that imports ``GaussianMixture`` so that it
imports gmmlib's (and nothing else: every other import, scikit-learn's private helpers
included, still comes from scikit-learn), writes the result to a temporary directory,
imports it (through pytest's assertion rewriting, so failures show their values) and
binds every ``test_*`` function into this module under its own name. pytest then
collects each of scikit-learn's tests, with its parametrisations and marks, as a test of
this file: ``tests/test_sklearn_conformance.py::test_warm_start[0]`` is scikit-learn's
``test_warm_start`` with ``seed=0``, run on gmmlib.

Why copied at test time rather than vendored: the suite is always the one of the
scikit-learn version installed (requirements.txt pins it), with no copy of its
BSD-licensed code kept in this repository to fall out of date; a new scikit-learn whose
files no longer hold the import line fails loudly here (``_rewrite``), never silently.
No conftest is needed: a plain module binding functions is collected as any other.

The fixtures that scikit-learn's ``conftest.py`` gives these tests are defined below:
``global_random_seed`` (42, or ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` as scikit-learn
reads it) and ``global_dtype``, which runs float32 as well as float64 here (scikit-learn
runs float32 only with ``SKLEARN_RUN_FLOAT32_TESTS=1``): gmmlib returns float32
parameters for float32 data, and these tests check it.

A test is skipped only for a reason given in ``SKIPPED`` (it tests scikit-learn's
private helpers or methods, asserts an exact message that gmmlib words differently for
a stated reason, or needs what gmmlib does not do, the array API); tests in
``tests/test_sklearn_api.py`` cover the behaviour behind each skip that has one. The
second half runs ``check_estimator``'s checks (``parametrize_with_checks``) on
gmmlib's estimator; a check may fail only if scikit-learn's own GaussianMixture fails it
too, which is computed here, not listed.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 6):
    pytest.skip(
        "scikit-learn >= 1.6 has the estimator tags these tests use", allow_module_level=True
    )
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_estimator,
    parametrize_with_checks,
)

import gmmlib  # noqa: E402

SKLEARN_TEST_FILES = ("test_gaussian_mixture.py", "test_mixture.py")

#: scikit-learn's tests that do not run on gmmlib, each with the reason.
PRIVATE = "tests scikit-learn's private helper {} (gmmlib has its own, tested in {})"
MESSAGE = "asserts scikit-learn's exact message; {}"
SKIPPED = {
    "test_suffstat_sk_full": PRIVATE.format(
        "_estimate_gaussian_covariances_full", "tests/test_m_step.py"
    ),
    "test_suffstat_sk_tied": PRIVATE.format(
        "_estimate_gaussian_covariances_tied", "tests/test_m_step.py"
    ),
    "test_suffstat_sk_diag": PRIVATE.format(
        "_estimate_gaussian_covariances_diag", "tests/test_m_step.py"
    ),
    "test_gaussian_suffstat_sk_spherical": PRIVATE.format(
        "_estimate_gaussian_covariances_spherical", "tests/test_m_step.py"
    ),
    "test_compute_log_det_cholesky": PRIVATE.format(
        "_compute_log_det_cholesky", "tests/test_gaussian.py"
    ),
    "test_gaussian_mixture_log_probabilities": PRIVATE.format(
        "_estimate_log_gaussian_prob", "tests/test_gaussian.py"
    ),
    "test_gaussian_mixture_precisions_init": (
        "calls scikit-learn's private methods GaussianMixture._set_parameters and "
        "_initialize; gmmlib's precisions_init is tested in tests/test_estimator.py and "
        "tests/test_sklearn_api.py (the same iterations as scikit-learn's from it)"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts the calls of scikit-learn's private _estimate_gaussian_parameters, which "
        "gmmlib never calls; that a complete user start needs no initial M-step is tested "
        "in tests/test_estimator.py"
    ),
    "test_check_weights": "the test "
    + MESSAGE.format(
        "for weights outside [0, 1] it expects 'max value <the minimum>, min value <the "
        "maximum>' (scikit-learn prints the two the wrong way round); gmmlib's message "
        "has scikit-learn's wording with the values under their right names, and its "
        "other two messages pass (tests/test_sklearn_api.py)"
    ),
    "test_regularisation": (
        "gmmlib raises the ValueError this test expects for components that collapse "
        "with reg_covar=0, but the test "
        + MESSAGE.format(
            "gmmlib's names the collapsed components and the way out (reg_covar, fewer "
            "components, standardising), the text the book's chapter on singularities "
            "prints; the same fits are tested in tests/test_sklearn_api.py"
        )
    ),
    "test_gaussian_mixture_setting_best_params": (
        "gmmlib is stricter: with reg_covar=0 this start's components 0 and 1 collapse "
        "onto single points in one iteration (variances below 1e-15); scikit-learn returns "
        "that degenerate model, gmmlib raises the error naming them, as n_init=1 leaves no "
        "other start to keep. What the test is about (when starts diverge, the kept "
        "start's parameters, n_iter_, lower_bound_ and lower_bounds_ are set) is tested "
        "with n_init > 1 in tests/test_estimator.py"
    ),
    "test_init": (
        "asserts scikit-learn's choice among n_init starts, the one with the best "
        "lower_bound_ (the log-likelihood at the start of the last iteration); gmmlib keeps "
        "the one with the best final log-likelihood, the fitted model's own (documented), "
        "and with max_iter=1 the two choices differ for random_state=9. That the kept "
        "start is never worse than the first alone, by gmmlib's measure, and that "
        "lower_bound_ is the kept start's, is tested in tests/test_estimator.py"
    ),
    "test_gaussian_mixture_array_api_compliance": (
        "gmmlib computes with NumPy only: it does not dispatch on the array API "
        "(sklearn.config_context(array_api_dispatch=True))"
    ),
    "test_gaussian_mixture_raises_where_array_api_not_implemented": (
        "gmmlib computes with NumPy only: it does not dispatch on the array API"
    ),
}

#: Parametrisations that are not about gmmlib: scikit-learn's test_mixture.py runs the
#: same tests on its BayesianGaussianMixture, which the rewrite leaves scikit-learn's.
NOT_GMMLIB = "runs scikit-learn's BayesianGaussianMixture, not a GaussianMixture"


# -- the copied suite ------------------------------------------------------------------
def _rewrite(source: str, filename: str) -> str:
    """``source`` with ``GaussianMixture`` imported from gmmlib, and no other change."""
    pattern = re.compile(r"^from sklearn\.mixture import (.+)$", re.MULTILINE)
    matches = [m for m in pattern.finditer(source) if "GaussianMixture" in m.group(1).split(", ")]
    if len(matches) != 1:
        raise RuntimeError(
            f"sklearn/mixture/tests/{filename} (scikit-learn {sklearn.__version__}) does not "
            "import GaussianMixture in one line 'from sklearn.mixture import ...': update "
            "tests/test_sklearn_conformance.py for this scikit-learn"
        )
    match = matches[0]
    others = [n for n in match.group(1).split(", ") if n != "GaussianMixture"]
    lines = [f"from sklearn.mixture import {', '.join(others)}"] if others else []
    lines.append("from gmmlib import GaussianMixture")
    return source[: match.start()] + "\n".join(lines) + source[match.end() :]


def _load_suite() -> dict:
    """scikit-learn's test functions, by name, from the rewritten copies of its files."""
    tests_dir = Path(importlib.util.find_spec("sklearn.mixture").origin).parent / "tests"
    missing = [f for f in SKLEARN_TEST_FILES if not (tests_dir / f).is_file()]
    if missing:
        pytest.skip(
            f"this scikit-learn installation has no {missing} in {tests_dir}",
            allow_module_level=True,
        )
    tmp = Path(tempfile.mkdtemp(prefix="gmmlib-sklearn-conformance-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    tag = sklearn.__version__.replace(".", "_").replace("+", "_")
    functions: dict = {}
    sys.path.insert(0, str(tmp))
    try:
        for filename in SKLEARN_TEST_FILES:
            source = (tests_dir / filename).read_text(encoding="utf-8")
            # test_*.py, so that pytest's import hook rewrites its asserts
            name = f"test_sklearn_{tag}_{Path(filename).stem[len('test_') :]}_on_gmmlib"
            (tmp / f"{name}.py").write_text(_rewrite(source, filename), encoding="utf-8")
            module = importlib.import_module(name)
            assert module.GaussianMixture is gmmlib.GaussianMixture
            for attr, obj in vars(module).items():
                if attr.startswith("test_") and callable(obj):
                    if attr in functions:
                        raise RuntimeError(f"two of scikit-learn's files define {attr}")
                    functions[attr] = obj
    finally:
        sys.path.remove(str(tmp))
    unknown = set(SKIPPED) - set(functions)
    if unknown:
        raise RuntimeError(f"SKIPPED names tests scikit-learn no longer has: {sorted(unknown)}")
    return functions


def _skipped(name: str, reason: str):
    """A test that stands for scikit-learn's ``name``, skipped once (not per parameter)."""

    @pytest.mark.skip(reason=reason)
    def test():
        pass

    test.__name__ = test.__qualname__ = name
    return test


for _name, _test in _load_suite().items():
    globals()[_name] = _skipped(_name, SKIPPED[_name]) if _name in SKIPPED else _test
del _name, _test


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def global_dtype(request):
    """scikit-learn's fixture, with float32 always on (gmmlib returns float32 for it)."""
    return request.param


def _seeds():
    value = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if value is None:
        return [42]
    if value == "all":
        return list(range(100))
    start, _, stop = value.partition("-")
    return list(range(int(start), int(stop or start) + 1))


@pytest.fixture(params=_seeds())
def global_random_seed(request):
    """scikit-learn's fixture: 42, or the seeds of SKLEARN_TESTS_GLOBAL_RANDOM_SEED."""
    return request.param


@pytest.fixture(autouse=True)
def _only_gmmlib(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None:
        estimator = callspec.params.get("estimator")
        if estimator is not None and not isinstance(estimator, gmmlib.GaussianMixture):
            pytest.skip(NOT_GMMLIB)


# -- check_estimator -------------------------------------------------------------------
#: The parameters scikit-learn's own test_common runs GaussianMixture's checks with
#: (sklearn/utils/_test_common/instance_generator.py: n_init=2, max_iter=5).
CHECK_PARAMS = dict(n_init=2, max_iter=5)


def _sklearn_results() -> list:
    """scikit-learn's own GaussianMixture through the same checks, at collection."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_estimator(SklearnGaussianMixture(**CHECK_PARAMS), on_fail=None, on_skip=None)


_SKLEARN_RESULTS = _sklearn_results()
#: The checks scikit-learn's own GaussianMixture fails, with the reason: computed, not listed.
_SKLEARN_FAILS = {
    r["check_name"]: f"scikit-learn's own GaussianMixture fails it too: {r['exception']}"
    for r in _SKLEARN_RESULTS
    if r["status"] == "failed"
}

with warnings.catch_warnings():
    # "Estimator GaussianMixture does not inherit from sklearn.base.BaseEstimator": by
    # design, gmmlib implements the protocol instead of importing scikit-learn, and these
    # checks are how it is tested.
    warnings.filterwarnings("ignore", "Estimator GaussianMixture does not inherit", UserWarning)
    _with_checks = parametrize_with_checks(
        [gmmlib.GaussianMixture(**CHECK_PARAMS)],
        expected_failed_checks=lambda estimator: _SKLEARN_FAILS,
    )


@_with_checks
def test_check_estimator(estimator, check):
    check(estimator)


def test_gmmlib_gets_every_check_sklearns_own_class_passes():
    """Every check scikit-learn's GaussianMixture passes runs on gmmlib's above (where it
    must pass: only scikit-learn's own failures may be expected to fail). gmmlib gets a few
    more, those that ``fit(sample_weight=...)`` brings."""
    ours = set()
    for param in _with_checks.args[1]:
        check = getattr(param, "values", param)[1]
        ours.add(getattr(check, "func", check).__name__)
    passed = {r["check_name"] for r in _SKLEARN_RESULTS if r["status"] == "passed"}
    assert len(passed) >= 35  # scikit-learn 1.9.1: 40 of its 41 (one skips: array API)
    assert passed <= ours, sorted(passed - ours)
    assert not set(_SKLEARN_FAILS) & passed
