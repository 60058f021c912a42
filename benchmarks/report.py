"""Read the benchmark's JSON: the table, the chart and the target checks, in one place.

``benchmarks/bench_em.py`` measures and writes ``benchmarks/results/bench_em.json``; this module
only reads such a file. The chapters "gmmlib beside scikit-learn" and "Making EM fast" import it
(they add this folder to ``sys.path``), ``bench_em.py`` prints with it, and the README's table
comes from it. It needs only the standard library (matplotlib for :func:`plot`), not gmmlib.

Usage::

    python benchmarks/report.py               # summary, table, compute limit, target checks
    python benchmarks/report.py --markdown    # the README's table
    python benchmarks/report.py --json other.json --plot /tmp/bench.png

The JSON (``"schema": 2``)
--------------------------
Metadata: ``date``, ``machine``, ``versions``, ``engine_backend``, ``blas``, ``environment``,
``load_average`` (``before``/``after``), ``matmul`` (``n``, ``gflops``: the better of
``gflops_before`` and ``gflops_after``), ``quick``, ``command``, ``method`` (how it was measured,
in words). Then two lists:

``cases``
    ``name``, ``n_samples``, ``n_components``, ``n_features``, ``covariance_type``,
    ``operation`` (``"fit"``: EM iterations; ``"fit-missing"``: EM iterations with a fraction
    ``missing_rate`` of the entries missing, optional otherwise), ``iterations``,
    ``slow_iterations``, ``rounds``, ``flops_per_iteration`` (4·N·K·d² for a full-covariance
    fit, else null). The table, the chart and the speed, compute and memory targets read the
    ``"fit"`` cases; the ``"fit-missing"`` case has its own target (:func:`missing_values`).
``results``
    one per case and implementation: ``case``, ``implementation``, ``iterations``, ``best_of``
    (the timed runs the best was taken from),
    ``timing`` (``"fit difference"``, ``"loop"``, or ``"steps"`` in a converted old file),
    ``seconds_per_iteration``, ``peak_extra_mib``, ``max_abs_diff_means`` (against gmmlib's
    final means, same iterations; null for gmmlib), and for fits
    ``fit_seconds_per_iteration`` (the whole fit / n). Optional: ``seconds_runs``,
    ``seconds_runs_1_iteration``, ``one_off_seconds``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "bench_em.json"
SCHEMA = 2

#: Implementations in the order of the table and the chart; colour i is matplotlib's "Ci".
ORDER = ("textbook", "scikit-learn", "gmmlib-formulas", "gmmlib", "gmmlib-engine", "engine-numpy")
#: Column titles of the README's table.
LABELS = {
    "gmmlib": "gmmlib",
    "scikit-learn": "scikit-learn",
    "gmmlib-formulas": "formula functions",
    "textbook": "textbook loop",
    "gmmlib-engine": "engine alone",
    "engine-numpy": "engine, NumPy kernel",
}
README_COLUMNS = ("gmmlib", "scikit-learn", "gmmlib-formulas", "textbook", "engine-numpy")
REFERENCE = "scikit-learn"  # speed-ups are over this implementation

# The targets set for gmmlib (chapter 11 and the drop-in issue).
TARGET_SPEEDUP = 10.0  # at least this many times scikit-learn's speed per iteration ...
SPEEDUP_SIZES = ((100_000, 8, 8), (1_000_000, 16, 16))  # ... at these N × K × d,
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")  # ... for every covariance type
HIGH_DIMENSIONAL_SIZE, TARGET_HIGH_DIMENSIONAL = (5_000, 3, 1_000), 2.0  # full, per iteration
PREDICTIONS, TARGET_PREDICTIONS = ("predict", "score_samples"), 5.0  # per call, every type
TARGET_FRACTION = 0.60  # of the (dense) compute limit, at the largest case with a flop count
TARGET_BYTES_PER_SAMPLE = 8.0  # memory added by a fit at the largest N: < one float64 per row
# With missing values (issue 10): an iteration of missing="em" at this N × K × d, full
# covariances, 20 % of the entries missing, within this factor of the complete-data fit's.
TARGET_MISSING_RATIO = 3.0
MISSING_SIZE = (100_000, 8, 8)

_CASE_KEYS = ("name", "n_samples", "n_components", "n_features", "covariance_type", "operation")
_RESULT_KEYS = ("case", "implementation", "iterations", "seconds_per_iteration", "peak_extra_mib")


# -- reading -------------------------------------------------------------------------------
def load(path=DEFAULT_JSON) -> dict:
    """The benchmark result stored at ``path``, checked by :func:`validate`."""
    bench = json.loads(Path(path).read_text())
    validate(bench)
    return bench


def validate(bench: dict) -> None:
    """Raise ``ValueError`` unless ``bench`` is a result of this schema."""
    if bench.get("schema") != SCHEMA:
        raise ValueError(
            f"benchmark JSON has schema {bench.get('schema')!r}, this report reads {SCHEMA}; "
            "re-run benchmarks/bench_em.py"
        )
    for key in ("date", "machine", "versions", "matmul", "method", "cases", "results"):
        if key not in bench:
            raise ValueError(f"benchmark JSON lacks {key!r}")
    names = set()
    for case in bench["cases"]:
        missing = [k for k in _CASE_KEYS if k not in case]
        if missing:
            raise ValueError(f"case {case.get('name')!r} lacks {missing}")
        if case["name"] in names:
            raise ValueError(f"case {case['name']!r} appears twice")
        names.add(case["name"])
    seen = set()
    for result in bench["results"]:
        missing = [k for k in _RESULT_KEYS if k not in result]
        if missing:
            raise ValueError(f"result {result.get('implementation')!r} lacks {missing}")
        if result["case"] not in names:
            raise ValueError(f"result for unknown case {result['case']!r}")
        key = (result["case"], result["implementation"])
        if key in seen:
            raise ValueError(f"two results for {key}")
        seen.add(key)


def _work(case: dict) -> int:
    return case["n_samples"] * case["n_components"] * case["n_features"] ** 2


def cases(bench: dict, operation: str | None = "fit") -> list[dict]:
    """The cases of ``operation`` (None: all), smallest amount of work first (N·K·d²)."""
    chosen = [c for c in bench["cases"] if operation is None or c["operation"] == operation]
    return sorted(chosen, key=_work)


#: The operations the tables show, in this order (the missing-value case has its sentence).
TABLE_OPERATIONS = ("fit", "predict", "score_samples")


def table_cases(bench: dict) -> list[dict]:
    """The cases of the tables: the fits, then the predictions, each by amount of work."""
    return [case for operation in TABLE_OPERATIONS for case in cases(bench, operation)]


def case_by_name(bench: dict, name: str) -> dict:
    return next(case for case in bench["cases"] if case["name"] == name)


def find_case(bench: dict, size, covariance_type="full", operation="fit") -> dict | None:
    """The case of ``size`` = (N, K, d) for that covariance type and operation, if run."""
    for case in bench["cases"]:
        if (
            (case["n_samples"], case["n_components"], case["n_features"]) == tuple(size)
            and case["covariance_type"] == covariance_type
            and case["operation"] == operation
        ):
            return case
    return None


#: Okabe and Ito's colour-blind-safe palette (black left out), one colour per implementation.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#F0E442", "#D55E00", "#CC79A7")


def _order(impl: str) -> int:
    return ORDER.index(impl) if impl in ORDER else len(ORDER)


def results_for(bench: dict, case_name: str) -> dict[str, dict]:
    """{implementation: result} of one case, in the order of ``ORDER``."""
    here = [r for r in bench["results"] if r["case"] == case_name]
    return {r["implementation"]: r for r in sorted(here, key=lambda r: _order(r["implementation"]))}


def implementations(bench: dict) -> list[str]:
    return sorted({r["implementation"] for r in bench["results"]}, key=_order)


def size_label(case: dict, sep: str = " × ") -> str:
    """``"100,000 × 8 × 8"``, with the covariance type and operation when not full / fit."""
    label = sep.join(f"{case[k]:,}" for k in ("n_samples", "n_components", "n_features"))
    extras = [case["covariance_type"]] if case["covariance_type"] != "full" else []
    if case.get("missing_rate"):
        extras.append(f"{case['missing_rate']:.0%} missing")
    elif case["operation"] != "fit":
        extras.append(case["operation"])
    return label + (f" ({', '.join(extras)})" if extras else "")


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def speedup(bench: dict, case_name: str, impl: str, over: str = REFERENCE) -> float | None:
    """Seconds per iteration of ``over`` divided by those of ``impl`` on one case."""
    here = results_for(bench, case_name)
    if impl not in here or over not in here:
        return None
    a, b = here[over]["seconds_per_iteration"], here[impl]["seconds_per_iteration"]
    return a / b if _finite(a) and _finite(b) and b > 0 else None


# -- the table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of the table: an implementation on a case."""

    case: str
    size: str
    implementation: str
    iterations: int
    best_of: int | None  # timed runs the best was taken from
    seconds_per_iteration: float | None
    speedup: float | None  # over scikit-learn, per iteration
    peak_extra_mib: float | None
    max_abs_diff_means: float | None  # against gmmlib's final means


def rows(bench: dict) -> list[Row]:
    """The table's rows: cases by amount of work, implementations in ``ORDER``."""
    out = []
    for case in table_cases(bench):
        for impl, r in results_for(bench, case["name"]).items():
            out.append(
                Row(
                    case=case["name"],
                    size=size_label(case),
                    implementation=impl,
                    iterations=r["iterations"],
                    best_of=r.get("best_of"),
                    seconds_per_iteration=r["seconds_per_iteration"],
                    speedup=speedup(bench, case["name"], impl),
                    peak_extra_mib=r["peak_extra_mib"],
                    max_abs_diff_means=r.get("max_abs_diff_means"),
                )
            )
    return out


def _fmt(x, spec: str, suffix: str = "") -> str:
    return f"{x:{spec}}{suffix}" if _finite(x) else ""


def markdown_table(bench: dict) -> str:
    """All rows as a markdown table (the chapters show it)."""
    lines = [
        "| N × K × d | implementation | iterations | best of | s per iteration "
        "| vs scikit-learn | peak extra MiB | means vs gmmlib |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows(bench):
        lines.append(
            f"| {row.size} | {row.implementation} | {row.iterations} | {row.best_of or ''} "
            f"| {_fmt(row.seconds_per_iteration, '.3g')} | {_fmt(row.speedup, '.1f', '×')} "
            f"| {_fmt(row.peak_extra_mib, '.1f')} | {_fmt(row.max_abs_diff_means, '.0e')} |"
        )
    return "\n".join(lines)


def readme_table(bench: dict) -> str:
    """One line per case, one column per implementation: the README's table."""
    sklearn = bench["versions"].get("sklearn")
    titles = [
        LABELS[i] + (f" {sklearn}" if i == "scikit-learn" and sklearn else "")
        for i in README_COLUMNS
    ]
    head = ["N × K × d", *titles, "gmmlib vs scikit-learn", "MiB added, gmmlib / scikit-learn"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in table_cases(bench):
        here = results_for(bench, case["name"])
        cells = [size_label(case).replace(",", " ")]
        for impl in README_COLUMNS:
            r = here.get(impl)
            cells.append(_fmt(r["seconds_per_iteration"], ".3g", " s") if r else "")
        cells.append(_fmt(speedup(bench, case["name"], "gmmlib"), ".1f", "×"))
        mib = [
            _fmt(here[i]["peak_extra_mib"], ".1f") if i in here else ""
            for i in ("gmmlib", "scikit-learn")
        ]
        cells.append(" / ".join(mib))
        lines.append("| " + " | ".join(cells) + " |")
    limit = compute_limit(bench)
    gmmlib = limit and results_for(bench, limit.case).get("gmmlib")
    if gmmlib and _finite(gmmlib["seconds_per_iteration"]):
        fraction = limit.fraction(gmmlib["seconds_per_iteration"])
        lines += [
            "",
            f"At the largest size an iteration does 4·N·K·d² = {limit.flops / 1e9:.1f} GFLOP; "
            f"against a float64 {bench['matmul']['n']} × {bench['matmul']['n']} matmul timed "
            f"in the same run ({limit.gflops:.1f} GFLOP/s, the better of two timings) gmmlib "
            f"reaches **{fraction:.0%}** of that limit.",
        ]
    text = missing_values_text(bench)
    if text:
        lines += ["", text]
    checks = check_targets(bench)
    if checks:
        lines += ["", "The targets, in this run:", ""]
        lines += [f"- {'met' if c.met else '**not met**'}: {c.describe()}" for c in checks]
    return "\n".join(lines)


# -- the compute limit and the targets -----------------------------------------------------
@dataclass(frozen=True)
class ComputeLimit:
    """The time an iteration's flops take at the speed of a large float64 matrix product."""

    case: str
    size: str
    flops: float
    gflops: float

    @property
    def seconds(self) -> float:
        return self.flops / (self.gflops * 1e9)

    def fraction(self, seconds_per_iteration: float) -> float:
        """Which fraction of the limit an iteration of that many seconds reaches."""
        return self.seconds / seconds_per_iteration


def compute_limit(bench: dict) -> ComputeLimit | None:
    """The limit at the case with the most samples among those with a flop count
    (full-covariance fits): the large case, not the high-dimensional one (more flops, few
    samples: its target is a speed-up)."""
    counted = [c for c in cases(bench) if c.get("flops_per_iteration")]
    gflops = bench["matmul"].get("gflops")
    if not counted or not gflops:
        return None
    case = max(counted, key=lambda c: (c["n_samples"], _work(c)))
    return ComputeLimit(case["name"], size_label(case), case["flops_per_iteration"], gflops)


@dataclass(frozen=True)
class Check:
    """A target, the value measured for it, and whether the value meets it."""

    target: str  # "speed-up", "compute limit" or "memory"
    case: str
    size: str
    implementation: str
    value: float
    threshold: float
    met: bool

    def describe(self) -> str:
        """The measured number and the target, in words (no verdict: assert ``met``)."""
        if self.target == "missing values":
            return (
                f"{self.implementation} at {self.size}: an iteration takes {self.value:.2f}× "
                f"the complete-data fit's (target: within {self.threshold:g}×)"
            )
        if self.target == "speed-up":
            per = "per call" if any(op in self.size for op in PREDICTIONS) else "per iteration"
            return (
                f"{self.implementation} at {self.size}: {self.value:.1f}× scikit-learn's speed "
                f"{per} (target: at least {self.threshold:g}×)"
            )
        if self.target == "compute limit":
            return (
                f"{self.implementation} at {self.size}: {self.value:.0%} of the compute limit "
                f"(target: at least {self.threshold:.0%})"
            )
        return (
            f"{self.implementation} at {self.size}: a fit adds {self.value:.1f} bytes per "
            f"sample (target: below {self.threshold:g}, one float64 per sample)"
        )


def check_targets(bench: dict, implementation: str = "gmmlib") -> list[Check]:
    """Every target the stored cases allow to check, for ``implementation``.

    * speed-up: at least ``TARGET_SPEEDUP`` × scikit-learn per iteration at each of
      ``SPEEDUP_SIZES``, for every covariance type (fit); ``TARGET_HIGH_DIMENSIONAL`` × at
      ``HIGH_DIMENSIONAL_SIZE``; ``TARGET_PREDICTIONS`` × per call of ``predict`` and
      ``score_samples`` at the first of ``SPEEDUP_SIZES``, every covariance type;
    * compute limit: at least ``TARGET_FRACTION`` of :func:`compute_limit`;
    * memory: the peak a fit adds at the largest N (full, fit), per sample, below
      ``TARGET_BYTES_PER_SAMPLE``: a single float64 array of length N would break it, so the
      fit allocates nothing that grows with N.

    A case or an implementation missing from the file gives no check (compare the count).
    """
    checks = []
    wanted = [
        (size, covariance_type, "fit", TARGET_SPEEDUP)
        for size in SPEEDUP_SIZES
        for covariance_type in COVARIANCE_TYPES
    ]
    wanted.append((HIGH_DIMENSIONAL_SIZE, "full", "fit", TARGET_HIGH_DIMENSIONAL))
    wanted += [
        (SPEEDUP_SIZES[0], covariance_type, operation, TARGET_PREDICTIONS)
        for operation in PREDICTIONS
        for covariance_type in COVARIANCE_TYPES
    ]
    for size, covariance_type, operation, threshold in wanted:
        case = find_case(bench, size, covariance_type, operation)
        value = case and speedup(bench, case["name"], implementation)
        if value is not None:
            checks.append(
                Check(
                    "speed-up",
                    case["name"],
                    size_label(case),
                    implementation,
                    value,
                    threshold,
                    value >= threshold,
                )
            )
    limit = compute_limit(bench)
    result = limit and results_for(bench, limit.case).get(implementation)
    if result and _finite(result["seconds_per_iteration"]):
        value = limit.fraction(result["seconds_per_iteration"])
        checks.append(
            Check(
                "compute limit",
                limit.case,
                limit.size,
                implementation,
                value,
                TARGET_FRACTION,
                value >= TARGET_FRACTION,
            )
        )
    fits = [c for c in cases(bench) if c["covariance_type"] == "full" and c["operation"] == "fit"]
    if fits:
        case = max(fits, key=lambda c: c["n_samples"])
        result = results_for(bench, case["name"]).get(implementation)
        if result and _finite(result["peak_extra_mib"]):
            value = result["peak_extra_mib"] * 2**20 / case["n_samples"]
            checks.append(
                Check(
                    "memory",
                    case["name"],
                    size_label(case),
                    implementation,
                    value,
                    TARGET_BYTES_PER_SAMPLE,
                    value < TARGET_BYTES_PER_SAMPLE,
                )
            )
    return checks


def missing_values(bench: dict, implementation: str = "gmmlib") -> Check | None:
    """The missing-value target: seconds per iteration of the ``"fit-missing"`` case at
    ``MISSING_SIZE`` (full covariances) over those of the complete-data fit of the same
    size, at most ``TARGET_MISSING_RATIO``; None when either case is not in the file.

    Kept out of :func:`check_targets`, whose list the chapter "Making EM fast" asserts.
    """
    missing = find_case(bench, MISSING_SIZE, operation="fit-missing")
    complete = find_case(bench, MISSING_SIZE)
    if missing is None or complete is None:
        return None
    a = results_for(bench, missing["name"]).get(implementation)
    b = results_for(bench, complete["name"]).get(implementation)
    if not (
        a and b and _finite(a["seconds_per_iteration"]) and _finite(b["seconds_per_iteration"])
    ):
        return None
    ratio = a["seconds_per_iteration"] / b["seconds_per_iteration"]
    return Check(
        "missing values",
        missing["name"],
        size_label(missing),
        implementation,
        ratio,
        TARGET_MISSING_RATIO,
        ratio <= TARGET_MISSING_RATIO,
    )


def missing_values_text(bench: dict, implementation: str = "gmmlib") -> str | None:
    """The missing-value case in one sentence (seconds, ratio, memory added), or None."""
    check = missing_values(bench, implementation)
    if check is None:
        return None
    result = results_for(bench, check.case)[implementation]
    case = case_by_name(bench, check.case)
    text = (
        f"With {case['missing_rate']:.0%} of the entries missing (MCAR) at "
        f"{size_label(case).split(' (')[0]}, full covariances, an iteration of "
        f'`missing="em"` takes {result["seconds_per_iteration"]:.3g} s, '
        f"{check.value:.2f}× the complete-data fit's"
    )
    if _finite(result["peak_extra_mib"]):
        per_sample = result["peak_extra_mib"] * 2**20 / case["n_samples"]
        text += (
            f"; the fit adds {result['peak_extra_mib']:.1f} MiB ({per_sample:.0f} bytes per row)"
        )
    return text + "."


# -- words and the chart -------------------------------------------------------------------
def summary(bench: dict) -> str:
    """Where, when and how the stored numbers were measured, in a few lines."""
    lines = [f"benchmark of {bench['date']} on {bench['machine']}"]
    versions = ", ".join(f"{k} {v}" for k, v in bench["versions"].items() if v)
    lines.append(f"versions: {versions}")
    if bench.get("engine_backend"):
        lines.append(f"engine kernel: {bench['engine_backend']}")
    load = bench.get("load_average")
    if load:
        lines.append(
            "load average (1 min) before and after: "
            + ", ".join(f"{load[k][0]:.1f}" for k in ("before", "after"))
        )
    mm = bench["matmul"]
    lines.append(f"float64 {mm['n']} x {mm['n']} matrix product: {mm['gflops']:.1f} GFLOP/s")
    method = bench["method"]
    lines.append(f"fits timed: {method['fits']}")
    lines.append(f"loops timed: {method['loops']}")
    lines.append(f"rounds: {method['rounds']}")
    if method.get("converted"):
        lines.append(f"note: {method['converted']}")
    if bench.get("quick"):
        lines.append("QUICK RUN: tiny sizes, a smoke test; the numbers mean little")
    return "\n".join(lines)


def plot(bench: dict, ax=None, operation: str = "fit", covariance_type: str = "full"):
    """Seconds per iteration, one group of bars per case of ``operation``, log scale.

    Only the cases of ``covariance_type`` (the other types have two bars each: the
    table shows them).

    Returns the figure (draw on ``ax`` if given, else on a new figure).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.8))
    else:
        fig = ax.figure
    all_cases = [c for c in cases(bench, operation) if c["covariance_type"] == covariance_type]
    impls = implementations(bench)
    width = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, case in enumerate(all_cases):
            r = results_for(bench, case["name"]).get(impl)
            if r and _finite(r["seconds_per_iteration"]):
                xs.append(i + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["seconds_per_iteration"])
        ax.bar(xs, ys, width, color=OKABE_ITO[_order(impl) % len(OKABE_ITO)], label=impl)
    ax.set_yscale("log")
    ax.set_xticks(range(len(all_cases)))
    ax.set_xticklabels([size_label(c) for c in all_cases])
    ax.set_xlabel("N × K × d (samples × components × features)")
    ax.set_ylabel("seconds per EM iteration")
    ax.set_title(
        f"One EM iteration, full covariances unless marked (benchmark of {bench['date']})",
        fontsize=10,
    )
    ax.legend(fontsize=8, ncol=min(len(impls), 6), loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


def text_report(bench: dict) -> str:
    """Everything in plain text: the summary, the table, the limit and the checks."""
    parts = [summary(bench), "", markdown_table(bench)]
    limit = compute_limit(bench)
    if limit:
        parts += [
            "",
            f"compute limit at {limit.size}: 4·N·K·d² = {limit.flops / 1e9:.1f} GFLOP at "
            f"{limit.gflops:.1f} GFLOP/s = {limit.seconds:.3g} s per iteration",
        ]
    checks = check_targets(bench)
    missing = missing_values(bench)
    checks += [missing] if missing else []
    if checks:
        parts.append("")
        for check in checks:
            parts.append(f"{'met    ' if check.met else 'NOT MET'}  {check.describe()}")
    text = missing_values_text(bench)
    if text:
        parts += ["", text]
    return "\n".join(parts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="the benchmark's JSON file")
    parser.add_argument(
        "--markdown", action="store_true", help="print the README's table and limit sentence"
    )
    parser.add_argument("--plot", metavar="PNG", help="also save the chart to this file")
    args = parser.parse_args(argv)
    bench = load(args.json)
    print(readme_table(bench) if args.markdown else text_report(bench))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        plot(bench).savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
