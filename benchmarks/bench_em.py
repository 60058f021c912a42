"""Time one EM iteration of gmmlib against scikit-learn and a textbook loop.

Every implementation starts from the same parameters (weights, means and full
covariances drawn once per size; scikit-learn gets them as ``weights_init``,
``means_init`` and ``precisions_init``), runs the same number of iterations with
``tol=0`` and the same ``reg_covar``, and the final means are compared so that
the timings are of the same computation.

Implementations
---------------
gmmlib           ``gmmlib.GaussianMixture.fit`` (the blocked engine, gmmlib/engine.py)
scikit-learn     ``sklearn.mixture.GaussianMixture.fit``
gmmlib-formulas  the plain vectorised loop of gmmlib's formula functions:
                 ``responsibilities`` then ``m_step``, as the book writes EM
textbook         densities from ``scipy.stats.multivariate_normal.pdf``, a Python
                 loop over components (written below)
gmmlib-engine    the engine's iterations alone (``EMEngine.step``), without the
                 estimator's validation, initialisation and final prediction; its
                 block kernels compiled by Numba when installed (as gmmlib uses them)
engine-numpy     the same iterations with the engine's NumPy block kernel
                 (``backend="numpy"``, what gmmlib uses without Numba)

How it is measured
------------------
* Seconds per iteration of a ``fit`` are the time the fit spends in its EM
  iterations divided by their number: for gmmlib the calls of
  ``EMEngine.step`` (one per iteration), for scikit-learn its ``_e_step`` and
  ``_m_step`` calls in the loop (wrapped with a timer during the fit). What a
  fit does once (input checks, initialisation, the final log-likelihood or
  E-step, prediction) is left out; ``fit_seconds_per_iteration`` is the whole
  ``fit`` divided by the iterations. The loops (formulas, textbook, engine)
  are timed whole. All implementations are timed in turn, in a few
  interleaved rounds, and each keeps its best time (the minimum is the least
  disturbed by other work on a shared machine; the load average is recorded).
* Peak memory is the peak of ``tracemalloc`` during one separate fit (or
  loop) above what was allocated before it: NumPy reports its array
  allocations to tracemalloc, BLAS work buffers are not included.
* The compute limit: an EM iteration with full covariances needs about
  4·N·K·d² floating-point operations (2·N·K·d² for the whitened vectors of the
  E-step, as many for the scatter matrices of the M-step). The benchmark times
  a large float64 matrix product on all cores and reports which fraction of
  that rate gmmlib reaches at the largest size run.

Usage::

    python benchmarks/bench_em.py                       # all three sizes
    python benchmarks/bench_em.py --sizes small,medium --iterations 10
    python benchmarks/bench_em.py --quick               # a smoke run, nothing written

OpenBLAS: on some processors the environment sets ``OPENBLAS_CORETYPE`` (and
``OPENBLAS_L2_SIZE``) for old OpenBLAS builds; they slow a current NumPy. For a
benchmark, unset both for that command alone::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_em.py

The BLAS kernel that runs is printed (threadpoolctl) and stored in the result.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import multivariate_normal

import gmmlib
from gmmlib import GaussianMixture, m_step, precision_cholesky, responsibilities
from gmmlib._engine import EMEngine

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_em.json"
REG_COVAR = 1e-6

# name: (n_samples, n_components, n_features, iterations, textbook iterations, rounds)
SIZES = {
    "small": (2_000, 3, 2, 50, 50, 5),
    "medium": (100_000, 8, 8, 10, 5, 3),
    "large": (1_000_000, 16, 16, 3, 1, 3),
}
QUICK = {
    "small": (2_000, 3, 2, 10, 10, 2),
    "medium": (100_000, 8, 8, 3, 2, 1),
}
ALL_IMPLEMENTATIONS = (
    "gmmlib",
    "scikit-learn",
    "gmmlib-formulas",
    "textbook",
    "gmmlib-engine",
    "engine-numpy",
)


# -- problems ----------------------------------------------------------------------------
def make_problem(n_samples, n_components, n_features, seed=0):
    """Data from a random mixture, and one shared starting point (w, μ, Σ)."""
    rng = np.random.default_rng(seed)
    K, d = n_components, n_features
    centres = rng.normal(scale=4.0, size=(K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    weights = rng.dirichlet(np.full(K, 5.0))
    X, _ = gmmlib.sample_mixture(n_samples, weights, centres, covariances, "full", rng)
    # The start: equal weights, K data points as means, the data covariance for all.
    start_means = X[rng.choice(n_samples, size=K, replace=False)]
    start_cov = np.cov(X.T).reshape(d, d) + 0.1 * np.eye(d)
    start = (np.full(K, 1.0 / K), start_means, np.repeat(start_cov[None], K, axis=0))
    return X, start


# -- the implementations -------------------------------------------------------------------
def textbook_em(X, weights, means, covariances, n_iter, reg_covar=REG_COVAR):
    """EM as a textbook writes it: densities, then the three updates, component by component."""
    N, d = X.shape
    K = weights.shape[0]
    weights, means, covariances = weights.copy(), means.copy(), covariances.copy()
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
            covariances[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg_covar * np.eye(d)
    return weights, means, covariances


def formulas_em(X, weights, means, covariances, n_iter, reg_covar=REG_COVAR):
    """The plain vectorised EM of the book: gmmlib's formula functions in a loop."""
    for _ in range(n_iter):
        resp = responsibilities(X, weights, means, covariances, "full")
        weights, means, covariances = m_step(X, resp, "full", reg_covar)
    return weights, means, covariances


def engine_em(X, weights, means, covariances, n_iter, reg_covar=REG_COVAR, backend="auto"):
    """The engine's iterations alone, as GaussianMixture._run_em drives them."""
    engine = EMEngine(X, "full", reg_covar, backend=backend)
    with engine:
        for _ in range(n_iter):
            prec_chol = precision_cholesky(covariances, "full")
            _, weights, means, covariances = engine.step(weights, means, prec_chol)
    return weights, means, covariances


@contextmanager
def timed(cls, name, log):
    """Patch ``cls.name`` with a wrapper that appends the duration of every call to ``log``."""
    had_own = name in cls.__dict__
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - t0)

    setattr(cls, name, wrapper)
    try:
        yield log
    finally:
        if had_own:
            setattr(cls, name, original)
        else:
            delattr(cls, name)


def gmmlib_fit(X, start, n_iter):
    """Fit gmmlib; returns (params, seconds spent in the EM iterations of the fit)."""
    weights, means, covariances = start
    model = GaussianMixture(
        len(weights),
        covariance_type="full",
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=n_iter,
        init_params="random_from_data",  # unused: all three starting parameters are given
        weights_init=weights,
        means_init=means,
        covariances_init=covariances,
        random_state=0,
    )
    steps = []
    with warnings.catch_warnings(), timed(EMEngine, "step", steps):
        warnings.simplefilter("ignore")
        model.fit(X)
    assert len(steps) == n_iter
    return (model.weights_, model.means_, model.covariances_), sum(steps)


def sklearn_fit(X, start, n_iter):
    """Fit scikit-learn; returns (params, seconds spent in the EM iterations of the fit)."""
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    weights, means, covariances = start
    model = SKGaussianMixture(
        len(weights),
        covariance_type="full",
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=n_iter,
        init_params="random_from_data",  # unused: all three starting parameters are given
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
        random_state=0,
    )
    e_steps, m_steps = [], []
    with (
        warnings.catch_warnings(),
        timed(SKGaussianMixture, "_e_step", e_steps),
        timed(SKGaussianMixture, "_m_step", m_steps),
    ):
        warnings.simplefilter("ignore")
        model.fit(X)
    # n E-steps and M-steps in the loop, then one more E-step for the final labels
    assert len(m_steps) == n_iter and len(e_steps) == n_iter + 1
    return (model.weights_, model.means_, model.covariances_), sum(e_steps[:-1]) + sum(m_steps)


FITS = {"gmmlib": gmmlib_fit, "scikit-learn": sklearn_fit}
LOOPS = {
    "gmmlib-formulas": formulas_em,
    "textbook": textbook_em,
    "gmmlib-engine": engine_em,
    "engine-numpy": functools.partial(engine_em, backend="numpy"),
}


# -- measuring ------------------------------------------------------------------------------
def best_time(func, repeats):
    best, result = np.inf, None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_extra_mib(func):
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


#: Implementations fast enough to be timed a few extra times in every round.
FAST = ("gmmlib", "gmmlib-engine", "engine-numpy")


def measure_size(impls, X, start, iters, tb_iters, rounds, measure_memory=True):
    """Time every implementation in interleaved rounds; the best of all rounds is kept.

    Interleaving means a burst of load from other work on a shared machine hits
    all implementations alike, and taking the minimum keeps the quietest run.
    Returns {impl: (seconds per iteration, fit seconds per iteration or None,
    peak MiB, final params, iterations)}.
    """
    n_iters = {impl: tb_iters if impl == "textbook" else iters for impl in impls}
    best = {impl: {"iterations": np.inf, "total": np.inf, "params": None} for impl in impls}
    for _ in range(rounds):
        for impl in impls:
            n_iter = n_iters[impl]
            for _ in range(3 if impl in FAST else 1):
                gc.collect()
                t0 = time.perf_counter()
                if impl in FITS:
                    params, in_iterations = FITS[impl](X, start, n_iter)
                else:
                    params = LOOPS[impl](X, *start, n_iter)
                total = time.perf_counter() - t0
                in_iterations = in_iterations if impl in FITS else total
                b = best[impl]
                b["iterations"] = min(b["iterations"], in_iterations)
                b["total"] = min(b["total"], total)
                b["params"] = params
    out = {}
    for impl in impls:
        n_iter, b = n_iters[impl], best[impl]
        if impl in FITS:

            def run(f=FITS[impl], n=n_iter):
                return f(X, start, n)

            fit_per_iter = b["total"] / n_iter
        else:

            def run(f=LOOPS[impl], n=n_iter):
                return f(X, *start, n)

            fit_per_iter = None
        peak = peak_extra_mib(run) if measure_memory else float("nan")
        out[impl] = (b["iterations"] / n_iter, fit_per_iter, peak, b["params"], n_iter)
    return out


def matmul_gflops(n=3000, repeats=3):
    """Rate of a large float64 matrix product on all cores, in GFLOP/s (best of a few)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b  # warm up
    seconds, _ = best_time(lambda: a @ b, repeats)
    return 2.0 * n**3 / seconds / 1e9


def machine_description():
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


def blas_description():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def versions():
    out = {"numpy": np.__version__, "scipy": scipy.__version__, "gmmlib": gmmlib.__version__}
    try:
        import sklearn

        out["sklearn"] = sklearn.__version__
    except ImportError:
        out["sklearn"] = None
    out["numba"] = numba_version()
    out["python"] = platform.python_version()
    return out


def numba_version():
    try:
        import numba
    except ImportError:
        return None
    return numba.__version__


# -- main -----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated subset of small,medium,large (default: all; --quick: small,medium)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="EM iterations per fit for every size (default: 50, 10, 3 by size)",
    )
    parser.add_argument(
        "--textbook-iterations",
        type=int,
        default=None,
        help="iterations of the slow textbook loop (default: 50, 5, 1 by size)",
    )
    parser.add_argument(
        "--implementations",
        default=",".join(ALL_IMPLEMENTATIONS),
        help=f"comma-separated subset of {','.join(ALL_IMPLEMENTATIONS)}",
    )
    parser.add_argument(
        "--output",
        default=None,
        help=f"JSON file for the results (default: {DEFAULT_OUTPUT.relative_to(HERE.parent)}; "
        "--quick writes nothing unless --output is given)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small and medium sizes, few iterations, no file"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args(argv)
    table = QUICK if args.quick else SIZES
    names = (args.sizes or ",".join(table)).split(",")
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {','.join(SIZES)}")
    args.size_names = names
    args.table = {n: table.get(n, SIZES[n]) for n in names}
    impls = args.implementations.split(",")
    bad = [i for i in impls if i not in ALL_IMPLEMENTATIONS]
    if bad:
        parser.error(f"unknown implementation(s) {bad}")
    args.impls = impls
    if args.iterations is not None and args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.output is None and not args.quick:
        args.output = str(DEFAULT_OUTPUT)
    return args


def main(argv=None):
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
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    gflops = matmul_gflops()
    print(f"float64 matmul (3000 x 3000, all cores): {gflops:.1f} GFLOP/s\n")

    rows, agreement = [], []
    header = f"{'size (N x K x d)':>22} {'implementation':>16} {'iters':>5} "
    header += f"{'s/iter':>10} {'fit s/iter':>10} {'vs sklearn':>10} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for name in args.size_names:
        N, K, d, iters, tb_iters, rounds = args.table[name]
        if args.iterations is not None:
            iters = args.iterations
        if args.textbook_iterations is not None:
            tb_iters = args.textbook_iterations
        X, start = make_problem(N, K, d)
        size = f"{N} x {K} x {d}"
        measured = measure_size(
            args.impls, X, start, iters, tb_iters, rounds, measure_memory=not args.no_memory
        )
        results = {}
        for impl in args.impls:
            per_iter, fit_per_iter, peak, params, n_iter = measured[impl]
            results[impl] = (per_iter, n_iter, params)
            row = {
                "n_samples": N,
                "n_components": K,
                "n_features": d,
                "implementation": impl,
                "iterations": n_iter,
                "seconds_per_iteration": per_iter,
                "peak_extra_mib": peak,
            }
            if fit_per_iter is not None:
                row["fit_seconds_per_iteration"] = fit_per_iter
            rows.append(row)
            ref = measured.get("scikit-learn")
            ratio = f"{ref[0] / per_iter:9.1f}x" if ref and impl != "scikit-learn" else ""
            fit_s = f"{fit_per_iter:10.4f}" if fit_per_iter is not None else " " * 10
            print(
                f"{size:>22} {impl:>16} {n_iter:5d} {per_iter:10.4f} {fit_s} {ratio:>10} "
                f"{peak:9.1f}",
                flush=True,
            )
        # The speed-ups against scikit-learn, once all are known.
        if "scikit-learn" in results:
            sk = results["scikit-learn"][0]
            ratios = ", ".join(
                f"{impl} {sk / t:.2f}x"
                for impl, (t, _, _) in results.items()
                if impl != "scikit-learn"
            )
            print(f"{'':>22} speed-up over scikit-learn per iteration: {ratios}")
        # Same computation? Compare the final means of runs with the same iteration count.
        if "gmmlib" in results:
            _, n_ref, ref_params = results["gmmlib"]
            for impl, (_, n_iter, params) in results.items():
                if impl != "gmmlib" and n_iter == n_ref:
                    diff = float(np.max(np.abs(np.asarray(params[1]) - ref_params[1])))
                    agreement.append(
                        {"size": size, "implementation": impl, "max_abs_diff_means": diff}
                    )
                    print(f"{'':>22} max |means - gmmlib means| for {impl}: {diff:.1e}")
        del X
        print()

    largest = max(
        (r for r in rows if r["implementation"] == "gmmlib"),
        default=None,
        key=lambda r: r["n_samples"] * r["n_components"] * r["n_features"] ** 2,
    )
    fraction = None
    if largest is not None:
        flops = 4.0 * largest["n_samples"] * largest["n_components"] * largest["n_features"] ** 2
        limit = flops / (gflops * 1e9)
        fraction = limit / largest["seconds_per_iteration"]
        print(
            f"compute limit at {largest['n_samples']} x {largest['n_components']} x "
            f"{largest['n_features']}: 4*N*K*d^2 = {flops / 1e9:.1f} GFLOP at {gflops:.1f} "
            f"GFLOP/s = {limit:.3f} s per iteration; gmmlib takes "
            f"{largest['seconds_per_iteration']:.3f} s: {100 * fraction:.0f}% of the limit"
        )
    # The matmul rate again, after the fits: the better of the two counts (load varies).
    gflops_after = matmul_gflops()
    print(f"float64 matmul again: {gflops_after:.1f} GFLOP/s")
    if gflops_after > gflops and fraction is not None:
        fraction *= gflops / gflops_after
        gflops = gflops_after
        print(f"fraction of the compute limit at {gflops:.1f} GFLOP/s: {100 * fraction:.0f}%")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")

    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_description(),
        "versions": versions(),
        "rows": rows,
        "compute_limit": {
            "gflops_matmul": gflops,
            "fraction_of_limit_gmmlib_largest": fraction,
            "largest_size": None
            if largest is None
            else [largest["n_samples"], largest["n_components"], largest["n_features"]],
        },
        "engine_backend": EMEngine(np.zeros((1, 1))).backend,
        "blas": blas_description(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "environment": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "agreement": agreement,
        "method": {
            "seconds_per_iteration": "fits: time in the EM iterations of fit (gmmlib: "
            "EMEngine.step calls; scikit-learn: _e_step and _m_step calls of the loop) / n; "
            "loops: T(n) / n; wall clock, best of interleaved rounds",
            "peak_extra_mib": "tracemalloc peak during one fit or loop, above the memory "
            "traced before it (NumPy allocations; BLAS buffers not included)",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        },
    }
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
        print(f"results written to {out}")
    return result


if __name__ == "__main__":
    main()
