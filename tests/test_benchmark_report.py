"""benchmarks/report.py: the table, the compute limit and the target checks from a small JSON.

The report reads the benchmark's JSON only (no gmmlib), so these tests build a fixture by hand
with round numbers whose ratios are known, and check every figure and every verdict, including
targets that are not met.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


def _load_report():
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


report = _load_report()


def case(name, n, k, d, flops=True):
    return {
        "name": name,
        "n_samples": n,
        "n_components": k,
        "n_features": d,
        "covariance_type": "full",
        "operation": "fit",
        "iterations": 4,
        "slow_iterations": 2,
        "rounds": 3,
        "flops_per_iteration": 4.0 * n * k * d * d if flops else None,
    }


def result(case_name, impl, seconds, mib, diff=None, iterations=4):
    return {
        "case": case_name,
        "implementation": impl,
        "iterations": iterations,
        "best_of": 3,
        "timing": "fit difference" if impl in ("gmmlib", "scikit-learn") else "loop",
        "seconds_per_iteration": seconds,
        "peak_extra_mib": mib,
        "max_abs_diff_means": diff,
    }


@pytest.fixture
def bench():
    # medium: 1e5 x 8 x 8; large: 1e6 x 16 x 16 (4NKd^2 = 16.384 GFLOP); matmul 100 GFLOP/s,
    # so the limit at the large size is 0.16384 s per iteration.
    return {
        "schema": 2,
        "date": "2000-01-01",
        "machine": "test machine",
        "versions": {"numpy": "1", "sklearn": "9.9"},
        "matmul": {"n": 3000, "gflops": 100.0},
        "method": {"fits": "by difference", "loops": "T(n) / n", "rounds": "best of 3"},
        "cases": [
            case("large", 1_000_000, 16, 16),
            case("medium", 100_000, 8, 8),
            case("small", 2_000, 3, 2),
        ],
        "results": [
            result("small", "gmmlib", 0.001, 0.5),
            result("small", "scikit-learn", 0.002, 0.4, 1e-14),
            result("medium", "scikit-learn", 0.30, 40.0, 2e-13),
            result("medium", "gmmlib", 0.02, 1.5),
            result("medium", "textbook", 0.25, 30.0, None, iterations=2),
            result("large", "gmmlib", 0.4096, 3.0),
            result("large", "scikit-learn", 8.192, 800.0, 1e-12),
        ],
    }


def test_table_rows_order_and_figures(bench):
    rows = report.rows(bench)
    # cases by amount of work, implementations in report.ORDER
    assert [(r.case, r.implementation) for r in rows] == [
        ("small", "scikit-learn"),
        ("small", "gmmlib"),
        ("medium", "textbook"),
        ("medium", "scikit-learn"),
        ("medium", "gmmlib"),
        ("large", "scikit-learn"),
        ("large", "gmmlib"),
    ]
    by = {(r.case, r.implementation): r for r in rows}
    assert by["medium", "gmmlib"].speedup == pytest.approx(15.0)
    assert by["large", "gmmlib"].speedup == pytest.approx(20.0)
    assert by["small", "gmmlib"].speedup == pytest.approx(2.0)
    assert by["medium", "textbook"].speedup == pytest.approx(1.2)
    assert by["large", "scikit-learn"].max_abs_diff_means == 1e-12
    assert by["large", "gmmlib"].size == "1,000,000 × 16 × 16"


def test_markdown_tables(bench):
    table = report.markdown_table(bench).splitlines()
    assert len(table) == 2 + 7
    assert "| 100,000 × 8 × 8 | gmmlib | 4 | 3 | 0.02 | 15.0× | 1.5 |  |" in table
    readme = report.readme_table(bench).splitlines()
    assert "scikit-learn 9.9" in readme[0]
    assert readme[4] == "| 1 000 000 × 16 × 16 | 0.41 s | 8.19 s |  |  |  | 20.0× | 3.0 / 800.0 |"
    limit = next(line for line in readme if "GFLOP" in line)
    assert "16.4 GFLOP" in limit and "gmmlib reaches **40%**" in limit
    # then the targets, each with its verdict (40% of the limit: below the 60% target)
    assert any(
        line.startswith("- **not met**: gmmlib at 1,000,000 × 16 × 16: 40% of the")
        for line in readme
    )
    assert readme[-1].startswith("- met: gmmlib at 1,000,000 × 16 × 16: a fit adds")


def test_compute_limit(bench):
    limit = report.compute_limit(bench)
    assert limit.case == "large"
    assert limit.flops == pytest.approx(16.384e9)
    assert limit.seconds == pytest.approx(0.16384)
    assert limit.fraction(0.4096) == pytest.approx(0.4)


def test_targets_met(bench):
    checks = {c.target + " " + c.case: c for c in report.check_targets(bench)}
    assert sorted(checks) == [
        "compute limit large",
        "memory large",
        "speed-up large",
        "speed-up medium",
    ]
    assert checks["speed-up medium"].value == pytest.approx(15.0)
    assert checks["compute limit large"].value == pytest.approx(0.4)
    assert checks["memory large"].value == pytest.approx(3.0 * 2**20 / 1e6)
    # 40% of the compute limit: below the target of 60%
    assert not checks["compute limit large"].met
    assert all(c.met for c in checks.values() if c.target != "compute limit")
    assert "15.0× scikit-learn's speed" in checks["speed-up medium"].describe()
    assert "40% of the compute limit" in checks["compute limit large"].describe()


def test_targets_not_met(bench):
    slow = copy.deepcopy(bench)
    for r in slow["results"]:
        if r["implementation"] == "gmmlib" and r["case"] == "medium":
            r["seconds_per_iteration"] = 0.0375  # 8x scikit-learn: below 10x
        if r["implementation"] == "gmmlib" and r["case"] == "large":
            r["seconds_per_iteration"] = 0.5  # 0.16384 / 0.5 = 33% of the limit, 16.4x
            r["peak_extra_mib"] = 8.0  # 8.4 bytes per sample: an N-sized float64 array
    checks = {c.target + " " + c.case: c for c in report.check_targets(slow)}
    assert not checks["speed-up medium"].met
    assert checks["speed-up medium"].value == pytest.approx(8.0)
    assert checks["speed-up large"].met
    assert not checks["compute limit large"].met
    assert checks["compute limit large"].value == pytest.approx(0.32768)
    assert not checks["memory large"].met
    # scikit-learn itself meets none of them
    assert not any(c.met for c in report.check_targets(bench, implementation="scikit-learn"))


def test_missing_cases_give_no_checks(bench):
    small_only = copy.deepcopy(bench)
    small_only["cases"] = [c for c in small_only["cases"] if c["name"] == "small"]
    small_only["results"] = [r for r in small_only["results"] if r["case"] == "small"]
    checks = report.check_targets(small_only)
    # no speed-up sizes; the limit and the memory are checked at the largest case there is
    assert [(c.target, c.case) for c in checks] == [("compute limit", "small"), ("memory", "small")]


def test_validate_rejects_other_schemas(bench, tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    assert report.load(path)["date"] == "2000-01-01"
    old = {k: v for k, v in bench.items() if k != "schema"}
    with pytest.raises(ValueError, match="schema"):
        report.validate(old)
    twice = copy.deepcopy(bench)
    twice["results"].append(twice["results"][0])
    with pytest.raises(ValueError, match="two results"):
        report.validate(twice)


def test_the_stored_result_reads():
    bench = report.load(report.DEFAULT_JSON)
    assert report.rows(bench) and report.compute_limit(bench) is not None


def test_plot(bench):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = report.plot(bench)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "textbook",
        "scikit-learn",
        "gmmlib",
    ]
    plt.close(fig)


def test_targets_of_the_other_types_the_high_dimensional_case_and_predictions(bench):
    more = copy.deepcopy(bench)
    for name, size, covariance_type, operation in [
        ("medium-diag", (100_000, 8, 8), "diag", "fit"),
        ("high-dimensional", (5_000, 3, 1_000), "full", "fit"),
        ("medium-tied-predict", (100_000, 8, 8), "tied", "predict"),
    ]:
        more["cases"].append(
            {**case(name, *size), "covariance_type": covariance_type, "operation": operation}
        )
    more["results"] += [
        result("medium-diag", "scikit-learn", 0.06, 1.0),
        result("medium-diag", "gmmlib", 0.0075, 1.0),  # 8x: below 10x
        result("high-dimensional", "scikit-learn", 8.0, 1.0),
        result("high-dimensional", "gmmlib", 2.0, 1.0),  # 4x: at least 2x
        result("medium-tied-predict", "scikit-learn", 0.05, 1.0),
        result("medium-tied-predict", "gmmlib", 0.005, 1.0),  # 10x: at least 5x
    ]
    checks = {c.case: c for c in report.check_targets(more) if c.target == "speed-up"}
    assert not checks["medium-diag"].met and checks["medium-diag"].threshold == 10.0
    assert checks["high-dimensional"].met and checks["high-dimensional"].threshold == 2.0
    assert checks["medium-tied-predict"].met
    assert checks["medium-tied-predict"].value == pytest.approx(10.0)
    assert "per call" in checks["medium-tied-predict"].describe()
    assert "per iteration" in checks["high-dimensional"].describe()
    # more flops than the large case, but the compute limit is the large case's (most N)
    assert report.compute_limit(more).case == "large"


def _with_missing_case(bench, seconds, mib=7.0):
    """The fixture plus the missing-value case at 100,000 × 8 × 8, 20 % missing."""
    out = copy.deepcopy(bench)
    missing = case("medium-missing", 100_000, 8, 8, flops=False)
    missing.update(operation="fit-missing", missing_rate=0.2)
    out["cases"].append(missing)
    out["results"].append(result("medium-missing", "gmmlib", seconds, mib))
    return out


def test_missing_values_target(bench):
    assert report.missing_values(bench) is None  # no such case: no check
    met = report.missing_values(_with_missing_case(bench, 0.05))  # 0.05 / 0.02 = 2.5x
    assert met.met and met.value == pytest.approx(2.5) and met.target == "missing values"
    assert "takes 2.50× the complete-data fit's (target: within 3×)" in met.describe()
    assert met.size == "100,000 × 8 × 8 (20% missing)"
    slow = report.missing_values(_with_missing_case(bench, 0.07))  # 3.5x
    assert not slow.met and slow.value == pytest.approx(3.5)
    # the other targets, the table and the chart read the complete-data cases only
    both = _with_missing_case(bench, 0.05)
    assert report.check_targets(both) == report.check_targets(bench)
    assert report.rows(both) == report.rows(bench)
    text = report.text_report(both)
    assert "met      gmmlib at 100,000 × 8 × 8 (20% missing): an iteration takes 2.50×" in text
    assert "the fit adds 7.0 MiB (73 bytes per row)" in report.readme_table(both)


def test_the_readme_quotes_the_stored_run():
    """The README's table, limit sentence and list of targets are ``report.py
    --markdown`` of the stored result, verbatim: a new run not copied there fails here."""
    stored = REPORT.parent / "results" / "bench_em.json"
    readme = (REPORT.parents[1] / "README.md").read_text(encoding="utf-8")
    quoted = report.readme_table(report.load(stored)).strip()
    assert quoted in readme
