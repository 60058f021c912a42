"""Time EM iterations of gmmlib, scikit-learn and plain loops; write the results as JSON.

This script only measures. ``benchmarks/report.py`` turns its JSON into the table, the chart
and the target checks (the book's chapters 10 and 11 and the README use that module).

What is measured
----------------
A list of cases crossed with a list of implementations. A case is a problem size
(N samples, K components, d features), a covariance type and what is timed (``"fit"``: EM
iterations; ``"fit-missing"``: EM iterations on the same data with a fraction
``missing_rate`` of the entries knocked out, missing completely at random, fitted with
``missing="em"``), with its iteration counts and its number of rounds; every implementation
that supports the case is timed on it (only gmmlib fits data with missing values). To add
a row (another covariance type, another size), add a :class:`Case` to ``CASES``; to add a
column, add an :class:`Implementation` to ``IMPLEMENTATIONS``.

Every implementation starts from the same parameters (weights, means and covariances drawn once
per case), runs the same number of iterations with ``tol=0`` and the same ``reg_covar``, and the
final means are compared with gmmlib's, so that the timings are of the same computation.

Implementations
---------------
gmmlib           ``gmmlib.GaussianMixture.fit`` (it iterates on ``gmmlib.EMEngine``; on a
                 ``"fit-missing"`` case with ``missing="em"``, on its pattern-grouped path)
scikit-learn     ``sklearn.mixture.GaussianMixture.fit``
gmmlib-formulas  the plain vectorised loop of gmmlib's formula functions:
                 ``responsibilities`` then ``m_step``, as the book writes EM
textbook         densities from ``scipy.stats.multivariate_normal.pdf``, a Python loop over
                 components (written below; full covariances only)
gmmlib-engine    the engine's iterations alone (``EMEngine.step``), without the estimator's
                 checks and start; its block kernel compiled by Numba when installed
engine-numpy     the same iterations with the engine's NumPy block kernel
                 (``backend="numpy"``, what gmmlib uses without Numba)

How a fit is timed
------------------
A call of ``fit`` does some work once: it checks its input, sets up the start, and after the
last iteration computes a final E-step (and scikit-learn the labels). Both fits are called
through their public API only, started from the same parameters (``weights_init``,
``means_init``, and ``covariances_init`` for gmmlib, ``precisions_init`` for scikit-learn) with
``tol=0``, so each runs exactly ``max_iter`` iterations. Each is timed whole twice, at
``max_iter=n`` and at ``max_iter=1``, and::

    seconds per iteration = (T(n) - T(1)) / (n - 1)

The one-off work is the same in both calls and cancels; what remains is n - 1 iterations of
the fit's own loop, convergence test included. Nothing inside either library is patched,
wrapped or counted, so the benchmark survives their refactorings. Neither estimator accepts
``max_iter=0``, and measuring the one-off work on its own would need their private parts;
the price of the difference is one more (short) fit per round. The whole fit divided by n is
kept as well (``fit_seconds_per_iteration``). The loops (formulas, textbook, engine) start from
the given parameters and stop after the last M-step: they have no one-off work to remove and
are timed whole, T(n) / n. The convergence warnings of ``tol=0`` are silenced (those only).

Rounds
------
Every implementation is timed the same number of times: the case's ``rounds`` (``--rounds``
overrides it). A round times each implementation once (a fit once at n and once at 1), in an
order that rotates from round to round, so that a burst of load from other work on a shared
machine hits all implementations alike; each keeps its best time of the rounds (the minimum is
the least disturbed; the load average is recorded). Before the rounds, every implementation
runs once on a few rows, so that no round pays for imports or Numba's compilation.

Memory and the compute limit
----------------------------
* Peak memory: the peak of ``tracemalloc`` during one separate run (n iterations) above what
  was allocated before it. NumPy reports its array allocations to tracemalloc; BLAS work
  buffers are not included.
* The compute limit: an EM iteration with full covariances needs about 4·N·K·d²
  floating-point operations (2·N·K·d² for the whitened vectors of the E-step, as many for the
  scatter matrices of the M-step; stored per case as ``flops_per_iteration``). The benchmark
  times a float64 3000 × 3000 matrix product on all cores before and after the cases; the
  report divides by the better rate.

Usage::

    python benchmarks/bench_em.py                        # all cases, results/bench_em.json
    python benchmarks/bench_em.py --sizes small,medium --iterations 10
    python benchmarks/bench_em.py --quick                # tiny sizes, 2 rounds, nothing written
    python benchmarks/bench_em.py --quick --output /tmp/bench.json

OpenBLAS: on some processors the environment sets ``OPENBLAS_CORETYPE`` (and
``OPENBLAS_L2_SIZE``) for old OpenBLAS builds; they slow a current NumPy. For a benchmark,
unset both for that command alone (``make bench`` does)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_em.py

The BLAS that runs is printed (threadpoolctl) and stored in the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import multivariate_normal

import gmmlib

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # report.py, when this file is imported rather than run
    sys.path.insert(0, str(HERE))
import report  # noqa: E402  (the reporting half, benchmarks/report.py)

DEFAULT_OUTPUT = report.DEFAULT_JSON
REG_COVAR = 1e-6
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MATMUL_N = 3000
PREDICTIONS = ("predict", "score_samples")  # operations timed as calls of a fitted model


# -- cases ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One row group of the result: a problem, what is timed, how often."""

    name: str
    n_samples: int
    n_components: int
    n_features: int
    iterations: int  # EM iterations per timed run (at least 2: fits are timed by difference)
    slow_iterations: int  # iterations of the slow implementations (the textbook loop)
    rounds: int  # timed runs per implementation, the best is kept
    covariance_type: str = "full"
    operation: str = "fit"  # what is timed: "fit" = EM iterations, "fit-missing" = with NaN;
    # "predict", "score_samples": calls of a fitted model
    implementations: tuple[str, ...] | None = None  # None: every one that supports the case
    missing_rate: float = 0.0  # "fit-missing": the fraction of entries knocked out (MCAR)

    @property
    def flops_per_iteration(self) -> float | None:
        """Floating-point operations of one EM iteration (full covariances: 4·N·K·d²)."""
        if self.operation == "fit" and self.covariance_type == "full":
            return 4.0 * self.n_samples * self.n_components * self.n_features**2
        return None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "flops_per_iteration": self.flops_per_iteration}


#: The other covariance types and the predictions: gmmlib beside scikit-learn only.
_PAIR = ("gmmlib", "scikit-learn")
#: The missing-value case: the medium problem with 20 % of its entries missing (MCAR).
MISSING = {"operation": "fit-missing", "missing_rate": 0.2}
CASES = (
    Case("small", 2_000, 3, 2, iterations=50, slow_iterations=50, rounds=5),
    Case("medium", 100_000, 8, 8, iterations=10, slow_iterations=5, rounds=3),
    Case("medium-missing", 100_000, 8, 8, iterations=10, slow_iterations=5, rounds=3, **MISSING),
    # 5 iterations: (T(5) - T(1)) / 4 halves the noise of two whole fits that 3 left
    Case("large", 1_000_000, 16, 16, iterations=5, slow_iterations=1, rounds=3),
    *(
        Case(f"medium-{t}", 100_000, 8, 8, 10, 10, 5, t, implementations=_PAIR)
        for t in COVARIANCE_TYPES[1:]
    ),
    *(
        Case(f"large-{t}", 1_000_000, 16, 16, 3, 3, 3, t, implementations=_PAIR)
        for t in COVARIANCE_TYPES[1:]
    ),
    # the high-dimensional case the article's readers asked about (part two, chapter 1)
    Case("high-dimensional", 5_000, 3, 1_000, 3, 3, 5, implementations=_PAIR),
    # calls of a few milliseconds: a burst of other work (or another library's BLAS
    # threads still spinning after its call) moves one round's time by half; 15 rounds
    *(
        Case(f"medium-{t}-{op}", 100_000, 8, 8, 10, 10, 15, t, op, implementations=_PAIR)
        for op in ("predict", "score_samples")
        for t in COVARIANCE_TYPES
    ),
)
#: --quick: tiny problems under the same names, few iterations and rounds (a smoke test).
QUICK_CASES = (
    Case("small", 2_000, 3, 2, iterations=5, slow_iterations=5, rounds=2),
    Case("medium", 10_000, 4, 4, iterations=3, slow_iterations=2, rounds=2),
    Case("medium-diag", 10_000, 4, 4, 3, 3, 2, "diag", implementations=_PAIR),
    Case("medium-full-predict", 10_000, 4, 4, 3, 3, 2, "full", "predict", _PAIR),
    Case("medium-missing", 10_000, 4, 4, iterations=3, slow_iterations=2, rounds=2, **MISSING),
)


# -- problems ------------------------------------------------------------------------------
@dataclass
class Problem:
    """The data of a case and the one start every implementation begins from."""

    X: np.ndarray
    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray  # shaped for the covariance type, as in scikit-learn
    precisions: np.ndarray  # their inverses, as scikit-learn's precisions_init wants them
    operation: str = "fit"  # the case's: "fit" runs EM; the others call a fitted model
    missing: bool = False  # whether X holds NaN entries (a "fit-missing" case)

    def rows(self, n: int) -> Problem:
        """The same start on the first n rows (for the warm-up)."""
        return dataclasses.replace(self, X=self.X[:n])


def make_problem(case: Case, seed: int = 0) -> Problem:
    """Data from a random mixture, and one shared start (w, μ, Σ).

    A case with a ``missing_rate`` has the data and the start of the same case without
    it, then that fraction of the entries set to NaN, each independently (MCAR; a row
    that lost every entry gets one back, at random), with a generator of its own.
    """
    rng = np.random.default_rng(seed)
    N, K, d = case.n_samples, case.n_components, case.n_features
    centres = rng.normal(scale=4.0, size=(K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    weights = rng.dirichlet(np.full(K, 5.0))
    X, _ = gmmlib.sample_mixture(N, weights, centres, covariances, "full", rng)
    # The start: equal weights, K data points as means, the data covariance for all.
    means = X[rng.choice(N, size=K, replace=False)]
    cov = np.cov(X.T).reshape(d, d) + 0.1 * np.eye(d)
    start_cov = {
        "full": np.repeat(cov[None], K, axis=0),
        "tied": cov,
        "diag": np.repeat(np.diag(cov)[None], K, axis=0),
        "spherical": np.full(K, np.diag(cov).mean()),
    }[case.covariance_type]
    full_or_tied = case.covariance_type in ("full", "tied")
    precisions = np.linalg.inv(start_cov) if full_or_tied else 1.0 / start_cov
    if case.missing_rate:
        X = knock_out(X, case.missing_rate, np.random.default_rng(seed + 1))
    weights = np.full(K, 1.0 / K)
    missing = bool(case.missing_rate)
    return Problem(
        X, case.covariance_type, weights, means, start_cov, precisions, case.operation, missing
    )


def knock_out(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of X with each entry set to NaN with probability ``rate`` (MCAR); a row that
    lost every entry gets one of them back, chosen at random (``fit`` refuses empty rows)."""
    X = X.copy()
    holes = rng.uniform(size=X.shape) < rate
    empty = np.flatnonzero(holes.all(axis=1))
    holes[empty, rng.integers(X.shape[1], size=empty.size)] = False
    X[holes] = np.nan
    return X


# -- the implementations -------------------------------------------------------------------
def textbook_em(problem: Problem, n_iter: int):
    """EM as a textbook writes it: densities, then the three updates, component by component."""
    X = problem.X
    N, d = X.shape
    weights, means = problem.weights.copy(), problem.means.copy()
    covariances = problem.covariances.copy()
    K = weights.shape[0]
    for _ in range(n_iter):
        dens = np.empty((N, K))
        for k in range(K):
            dens[:, k] = weights[k] * multivariate_normal.pdf(X, means[k], covariances[k])
        resp = dens / dens.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0)
        weights = nk / N
        for k in range(K):
            means[k] = resp[:, k] @ X / nk[k]
            diff = X - means[k]
            covariances[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + REG_COVAR * np.eye(d)
    return weights, means, covariances


def formulas_em(problem: Problem, n_iter: int):
    """The plain vectorised EM of the book: gmmlib's formula functions in a loop."""
    X, cov_type = problem.X, problem.covariance_type
    weights, means, covariances = problem.weights, problem.means, problem.covariances
    for _ in range(n_iter):
        resp = gmmlib.responsibilities(X, weights, means, covariances, cov_type)
        weights, means, covariances = gmmlib.m_step(X, resp, cov_type, REG_COVAR)
    return weights, means, covariances


def engine_em(problem: Problem, n_iter: int, backend: str = "auto"):
    """The engine's iterations alone, as GaussianMixture.fit drives them."""
    cov_type = problem.covariance_type
    weights, means, covariances = problem.weights, problem.means, problem.covariances
    with gmmlib.EMEngine(problem.X, cov_type, REG_COVAR, backend=backend) as engine:
        for _ in range(n_iter):
            prec_chol = gmmlib.precision_cholesky(covariances, cov_type)
            _, weights, means, covariances = engine.step(weights, means, prec_chol)
    return weights, means, covariances


def engine_numpy_em(problem: Problem, n_iter: int):
    return engine_em(problem, n_iter, backend="numpy")


#: Models fitted for the prediction cases, made once per problem and library (not timed).
_FITTED: dict = {}


def _predictions(problem: Problem, n_calls: int, fit, library: str):
    """n calls of the fitted model's ``problem.operation`` on the problem's rows.

    The model is the library's one-iteration fit from the problem's start, made on the
    first call and kept: only the predictions are timed (a loop, T(n) / n).
    """
    key = (library, id(problem.X), problem.X.shape)
    if key not in _FITTED:
        _FITTED[key] = fit(dataclasses.replace(problem, operation="fit"), 1, model=True)
    model = _FITTED[key]
    method = getattr(model, problem.operation)
    for _ in range(n_calls):
        method(problem.X)
    return model.weights_, model.means_, model.covariances_


def gmmlib_fit(problem: Problem, n_iter: int, model: bool = False):
    """``gmmlib.GaussianMixture.fit`` from the problem's start, exactly n_iter iterations.

    ``missing="em"`` for a problem with missing values; for a prediction case: n_iter
    calls of the fitted model's prediction instead.
    """
    if problem.operation in PREDICTIONS:
        return _predictions(problem, n_iter, gmmlib_fit, "gmmlib")
    model_ = gmmlib.GaussianMixture(
        len(problem.weights),
        covariance_type=problem.covariance_type,
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=n_iter,
        weights_init=problem.weights,
        means_init=problem.means,
        covariances_init=problem.covariances,
        random_state=0,
        missing="em" if problem.missing else "raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmlib.ConvergenceWarning)  # tol=0: expected
        model_.fit(problem.X)
    assert model_.n_iter_ == n_iter
    return model_ if model else (model_.weights_, model_.means_, model_.covariances_)


def sklearn_fit(problem: Problem, n_iter: int, model: bool = False):
    """``sklearn.mixture.GaussianMixture.fit`` from the same start, exactly n_iter iterations.

    For a prediction case: n_iter calls of the fitted model's prediction instead.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    if problem.operation in PREDICTIONS:
        return _predictions(problem, n_iter, sklearn_fit, "scikit-learn")
    model_ = GaussianMixture(
        len(problem.weights),
        covariance_type=problem.covariance_type,
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=n_iter,
        init_params="random_from_data",  # unused: all three starting parameters are given
        weights_init=problem.weights,
        means_init=problem.means,
        precisions_init=problem.precisions,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: expected
        model_.fit(problem.X)
    assert model_.n_iter_ == n_iter
    return model_ if model else (model_.weights_, model_.means_, model_.covariances_)


@dataclass(frozen=True)
class Implementation:
    """A column of the result: how to run n EM iterations from a problem's start."""

    name: str
    run: Callable[[Problem, int], tuple]  # (problem, n_iter) -> (weights, means, covariances)
    whole_call: bool  # a public call with one-off work: timed by difference (see above)
    slow: bool = False  # runs the case's slow_iterations
    covariance_types: tuple[str, ...] = COVARIANCE_TYPES
    operations: tuple[str, ...] = ("fit",)

    def supports(self, case: Case) -> bool:
        chosen = case.implementations is None or self.name in case.implementations
        return (
            chosen
            and case.operation in self.operations
            and case.covariance_type in self.covariance_types
        )

    def timed_by_difference(self, case: Case) -> bool:
        """A whole fit (one-off work to remove); predictions are a plain loop of calls."""
        return self.whole_call and case.operation in ("fit", "fit-missing")

    def iterations(self, case: Case) -> int:
        return case.slow_iterations if self.slow else case.iterations


_ALL_OPERATIONS = ("fit", *PREDICTIONS)
IMPLEMENTATIONS = (
    Implementation(
        "gmmlib", gmmlib_fit, whole_call=True, operations=(*_ALL_OPERATIONS, "fit-missing")
    ),
    Implementation("scikit-learn", sklearn_fit, whole_call=True, operations=_ALL_OPERATIONS),
    Implementation("gmmlib-formulas", formulas_em, whole_call=False),
    Implementation(
        "textbook", textbook_em, whole_call=False, slow=True, covariance_types=("full",)
    ),
    Implementation("gmmlib-engine", engine_em, whole_call=False),
    Implementation("engine-numpy", engine_numpy_em, whole_call=False),
)
BY_NAME = {impl.name: impl for impl in IMPLEMENTATIONS}
REFERENCE = "gmmlib"  # the final means of the others are compared with its


# -- measuring -----------------------------------------------------------------------------
def timed(func):
    """``(wall seconds, value)`` of one call of ``func()``."""
    gc.collect()
    t0 = time.perf_counter()
    value = func()
    return time.perf_counter() - t0, value


def peak_extra_mib(func) -> float:
    """Peak of tracemalloc during ``func()`` above what was traced before it, in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        func()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - before) / 2**20


def measure_case(case: Case, impls, rounds: int, memory: bool = True) -> list[dict]:
    """Time every implementation in ``impls`` on ``case``; one result dict per implementation.

    ``rounds`` rounds, each timing every implementation once (a whole call at n and at 1
    iteration), in an order rotated by one from round to round; the best of the rounds is kept.
    """
    problem = make_problem(case)
    warm = problem.rows(min(case.n_samples, 500))
    for impl in impls:  # imports, Numba's compilation, first-touch of the code paths
        impl.run(warm, 1)
    runs = {impl.name: {"n": [], "1": []} for impl in impls}
    params = {}
    for r in range(rounds):
        for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
            n = impl.iterations(case)
            t, params[impl.name] = timed(lambda i=impl, n=n: i.run(problem, n))
            runs[impl.name]["n"].append(t)
            if impl.timed_by_difference(case):
                runs[impl.name]["1"].append(timed(lambda i=impl: i.run(problem, 1))[0])
    results = []
    for impl in impls:
        n, t = impl.iterations(case), runs[impl.name]
        row = {
            "case": case.name,
            "implementation": impl.name,
            "iterations": n,
            "best_of": rounds,
            "timing": "fit difference" if impl.timed_by_difference(case) else "loop",
            "seconds_runs": t["n"],
        }
        if impl.timed_by_difference(case):
            difference = min(t["n"]) - min(t["1"])
            per_iteration = difference / (n - 1)
            row["seconds_runs_1_iteration"] = t["1"]
            row["fit_seconds_per_iteration"] = min(t["n"]) / n
            row["one_off_seconds"] = min(t["1"]) - per_iteration
            if not per_iteration > 0:  # noise larger than n - 1 iterations: no figure
                print(f"warning: {case.name}, {impl.name}: T(n) - T(1) = {difference:.2e} s")
                per_iteration = row["one_off_seconds"] = None
        else:
            per_iteration = min(t["n"]) / n
        row["seconds_per_iteration"] = per_iteration
        row["peak_extra_mib"] = (
            peak_extra_mib(lambda i=impl, n=n: i.run(problem, n)) if memory else None
        )
        row["max_abs_diff_means"] = None
        results.append(row)
    if REFERENCE in params:
        ref_n = BY_NAME[REFERENCE].iterations(case)
        for row in results:
            if row["implementation"] != REFERENCE and row["iterations"] == ref_n:
                diff = np.abs(np.asarray(params[row["implementation"]][1]) - params[REFERENCE][1])
                row["max_abs_diff_means"] = float(diff.max())
    return results


def matmul_gflops(n: int = MATMUL_N, repeats: int = 3) -> float:
    """Rate of a float64 n × n matrix product on all cores, in GFLOP/s (best of a few)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b  # warm up
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


# -- the machine ---------------------------------------------------------------------------
def machine_description() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {model}, {platform.system()} {platform.machine()}"


def blas_description() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def versions() -> dict:
    out = {"numpy": np.__version__, "scipy": scipy.__version__, "gmmlib": gmmlib.__version__}
    for name, module in (("sklearn", "sklearn"), ("numba", "numba")):
        try:
            out[name] = __import__(module).__version__
        except ImportError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


METHOD = {
    "fits": "whole public fit from the same start, tol=0, timed at max_iter=n and max_iter=1: "
    "(T(n) - T(1)) / (n - 1); fit_seconds_per_iteration = T(n) / n",
    "loops": "T(n) / n",
    "rounds": "every implementation timed once per round, order rotated; best of the rounds",
    "peak_extra_mib": "tracemalloc peak during one run of n iterations, above the memory "
    "traced before it (NumPy allocations; BLAS buffers not included)",
    "compute_limit": "flops_per_iteration / (the better of the float64 matmul rates)",
}


# -- main ----------------------------------------------------------------------------------
def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ",".join(BY_NAME)
    add = parser.add_argument
    add("--sizes", "--cases", dest="sizes", help="comma-separated subset of the cases")
    add("--iterations", type=_at_least(2), help="EM iterations per timed run (default: per case)")
    add("--textbook-iterations", type=_at_least(1), help="the slow textbook loop's iterations")
    add("--rounds", type=_at_least(1), help="rounds, the same for every implementation")
    add("--implementations", default=names, help=f"comma-separated subset of {names}")
    add("--output", help=f"JSON file (default: {DEFAULT_OUTPUT.relative_to(HERE.parent)})")
    add("--quick", action="store_true", help="tiny sizes, 2 rounds, written only to --output")
    add("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args(argv)

    table = {case.name: case for case in (QUICK_CASES if args.quick else CASES)}
    chosen = args.sizes.split(",") if args.sizes else list(table)
    unknown = [n for n in chosen if n not in table]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {','.join(table)}")
    changes = {
        field: value
        for field, value in [
            ("iterations", args.iterations),
            ("slow_iterations", args.textbook_iterations),
            ("rounds", args.rounds),
        ]
        if value is not None
    }
    args.cases = [dataclasses.replace(table[n], **changes) for n in chosen]
    bad = [i for i in args.implementations.split(",") if i not in BY_NAME]
    if bad:
        parser.error(f"unknown implementation(s) {bad}; choose from {names}")
    args.impls = [BY_NAME[i] for i in args.implementations.split(",")]
    if args.output is None and not args.quick:
        args.output = str(DEFAULT_OUTPUT)
    if args.quick and args.output and Path(args.output).resolve() == DEFAULT_OUTPUT.resolve():
        parser.error("--quick never writes the stored result; give another --output")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(
                f"note: {var}={os.environ[var]} is set; it can slow NumPy's OpenBLAS. Run with "
                "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...` for a benchmark.",
                file=sys.stderr,
            )
    load_before = os.getloadavg()
    print(f"machine: {machine_description()}")
    for info in blas_description():
        print(f"BLAS: {info}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}")
    gflops_before = matmul_gflops()
    print(f"float64 matmul ({MATMUL_N} x {MATMUL_N}, all cores): {gflops_before:.1f} GFLOP/s")

    results = []
    for case in args.cases:
        impls = [impl for impl in args.impls if impl.supports(case)]
        print(
            f"\n{case.name}: {case.n_samples} x {case.n_components} x {case.n_features}, "
            f"{case.covariance_type}, {case.rounds} rounds ... ",
            end="",
            flush=True,
        )
        t0 = time.perf_counter()
        rows = measure_case(case, impls, case.rounds, memory=not args.no_memory)
        print(f"{time.perf_counter() - t0:.0f} s")
        for row in rows:
            diff = row["max_abs_diff_means"]
            if diff is not None and diff > 1e-6:
                print(f"warning: {row['implementation']} means differ from gmmlib's by {diff:.1e}")
        results.extend(rows)

    gflops_after = matmul_gflops()
    load_after = os.getloadavg()
    print(f"\nfloat64 matmul again: {gflops_after:.1f} GFLOP/s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)}\n")

    result = {
        "schema": report.SCHEMA,
        "date": datetime.date.today().isoformat(),
        "machine": machine_description(),
        "versions": versions(),
        "engine_backend": gmmlib.EMEngine(np.zeros((1, 1))).backend,
        "blas": blas_description(),
        "environment": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "matmul": {
            "n": MATMUL_N,
            "gflops": max(gflops_before, gflops_after),
            "gflops_before": gflops_before,
            "gflops_after": gflops_after,
        },
        "quick": args.quick,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "method": METHOD,
        "cases": [case.to_json() for case in args.cases],
        "results": results,
    }
    report.validate(result)
    print(report.text_report(result))
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
        print(f"\nresults written to {out}")
    return result


if __name__ == "__main__":
    main()
