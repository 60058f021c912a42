"""Every check can fail: the book's notebooks catch a wrong version of each key equation.

For each of the key equations of ``gmmlib.EQUATIONS``, ``mutations/gmm_mutants.py`` holds one
plausible wrong variant of the functions implementing it (a slip a student or the source
article makes: responsibilities without the weights, a max for the log-sum-exp, −AΣ⁻² for
−Σ⁻¹AΣ⁻¹, ...). ``test_the_book_catches_every_wrong_function`` executes, for each mutant, the
notebooks that check the equation's functions with the wrong variant put in place by a first
cell, and requires one of them to fail (an exception in some cell: a failed ``assert`` or any
other error). It prints "N of M wrong functions caught by the book" (M = the number of key
equations, 27 today) and fails unless all are.

Which notebooks: the equation's chapter (``EQUATIONS[label].chapter``) first, then every other
notebook whose code calls one of the replaced functions (``gmmlib.f``, ``from gmmlib import f``,
``.bic(``; ``article_samples``, which calls ``sample_mixture``), in the book's order. A mutant
counts as caught at the first notebook that fails; the rest are not run (set
``GMM_MUTATION_ALL_NOTEBOOKS=1`` to run them all and see every notebook that catches it). A
failure counts only if the same notebook passes unchanged: a notebook that fails with a mutant
is run once more without it (the same text, through the same first cell installing nothing;
once per notebook, remembered), and must pass. A notebook that passes with the mutant needs no
such run: it catches nothing either way.

The notebooks are read from ``chapters/`` and executed in memory (nbclient, kernel python3,
working directory the notebook's folder, as nbval runs them); the chapter files are never
written. One notebook runs at a time. Options, as environment variables: ``GMM_MUTANTS``
(comma-separated labels: run only these), ``GMM_MUTATION_ALL_NOTEBOOKS=1`` (see above),
``GMM_MUTATION_REPORT`` (a path: write the results there as JSON).

``test_mutant_differs`` checks, without a kernel, that each wrong variant really differs from
the right function on a small input, so that a notebook catching it means something.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

import gmmlib
from gmmlib.equations import EQUATIONS

ROOT = Path(__file__).resolve().parents[2]
MUTATIONS = Path(__file__).resolve().parent / "mutations"
SKIP_PARTS = {"_build", ".ipynb_checkpoints"}
CELL_TIMEOUT = 900  # seconds per cell; a notebook cell takes at most about a minute today


def _load_mutants():
    spec = importlib.util.spec_from_file_location("gmm_mutants", MUTATIONS / "gmm_mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gmm_mutants", module)
    spec.loader.exec_module(module)
    return module


gm = _load_mutants()
# The labels that have a mutant, in EQUATIONS' order (test_one_mutant_per_equation requires
# one for every label).
LABELS = [label for label in EQUATIONS if label in gm.MUTANTS]

# The first cell of every run: the wrong variant goes in before the notebook imports gmmlib.
FIRST_CELL = (
    "import sys\n"
    "sys.path.insert(0, {path!r})\n"
    "import gmm_mutants\n"
    "gmm_mutants.install({label!r})\n"
    "del gmm_mutants\n"
)

# Public functions that call a replaced one (a notebook calling them exercises the mutant).
CALLERS = {"sample_mixture": ("article_samples",)}


def notebooks() -> list[Path]:
    """The book's notebooks in the order of ``_toc.yml``; any it does not list come last."""
    found = [
        p
        for p in (ROOT / "chapters").rglob("*.ipynb")
        if not SKIP_PARTS.intersection(p.relative_to(ROOT).parts)
    ]
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    order = re.findall(r"^\s*-?\s*file:\s*(\S+)\s*$", toc, flags=re.M)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(
        found,
        key=lambda p: (rank.get(p.relative_to(ROOT).with_suffix("").as_posix(), len(rank)), p),
    )


def read(path: Path) -> str:
    """The notebook's JSON text (read again after a pause if caught half-written)."""
    for attempt in range(5):
        text = path.read_text(encoding="utf-8")
        try:
            json.loads(text)
            return text
        except json.JSONDecodeError:
            if attempt == 4:
                raise
            time.sleep(2.0)
    raise AssertionError("unreachable")


def code_of(path: Path) -> str:
    cells = json.loads(read(path))["cells"]
    return "\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c["cell_type"] == "code"
    )


def calls(code: str, public: str) -> bool:
    """Whether notebook code calls the public function (or method) ``public``."""
    if "." in public:  # a method, e.g. GaussianMixture.bic: any `.bic(`
        return re.search(rf"\.{public.split('.')[1]}\s*\(", code) is not None
    imported = " ".join(re.findall(r"from\s+gmmlib\s+import\s+(\([^)]*\)|[^\n]*)", code))
    aliases = "|".join(["gmmlib", *re.findall(r"import\s+gmmlib\s+as\s+(\w+)", code)])
    for name in (public, *CALLERS.get(public, ())):
        if re.search(rf"\b(?:{aliases})\.(?:article\.)?{name}\b", code):
            return True
        if re.search(rf"\b{name}\b", imported):
            return True
    return False


def notebooks_for(label: str) -> list[Path]:
    """The equation's chapter, then every other notebook calling a replaced function."""
    home = ROOT / EQUATIONS[label].chapter
    publics = gm.MUTANTS[label].replacements
    others = [p for p in notebooks() if p != home and any(calls(code_of(p), f) for f in publics)]
    return [home, *others]


@dataclass
class Run:
    """One execution of one notebook."""

    notebook: str
    label: str | None
    failed: bool
    seconds: float
    kind: str = ""  # "error", "dead kernel", "timeout" when failed or stopped
    cell: int | None = None  # index among the notebook's own cells (0-based), as stored
    cell_id: str = ""
    ename: str = ""
    evalue: str = ""
    line: str = ""  # the failing line of the cell, when the traceback shows it


ANSI = re.compile(r"\x1b\[[0-9;]*m")
ARROW = re.compile(r"^-+>\s*\d+\s?(.*)$")  # IPython's "---> 12 assert ..." line


def _error_cell(nb) -> tuple[int | None, str, str]:
    """(index among the notebook's own cells, cell id, failing line) of the cell that raised."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                marked = ANSI.sub("", "\n".join(out.get("traceback", []))).splitlines()
                arrows = [m.group(1) for m in map(ARROW.match, marked) if m]
                return index - 1, cell.get("id", ""), (arrows[-1].strip() if arrows else "")
    return None, "", ""


def execute(path: Path, text: str, label: str | None) -> Run:
    """Run the notebook ``text`` (read from ``path``) in memory with ``label``'s wrong
    functions (None: unchanged)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.reads(text, as_version=4)
    first = nbformat.v4.new_code_cell(FIRST_CELL.format(path=str(MUTATIONS), label=label))
    first.id = "mutation-first-cell"
    nb.cells.insert(0, first)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    name = path.relative_to(ROOT).as_posix()
    start = time.perf_counter()
    try:
        client.execute()
    except CellTimeoutError as exc:
        seconds = time.perf_counter() - start
        return Run(name, label, False, seconds, kind="timeout", evalue=str(exc)[:200])
    except DeadKernelError as exc:
        seconds = time.perf_counter() - start
        return Run(name, label, True, seconds, kind="dead kernel", evalue=str(exc)[:200])
    except CellExecutionError as exc:
        seconds = time.perf_counter() - start
        cell, cell_id, line = _error_cell(nb)
        first_line = (str(exc.evalue).strip().splitlines() or [""])[0]
        return Run(name, label, True, seconds, "error", cell, cell_id, exc.ename, first_line, line)
    return Run(name, label, False, time.perf_counter() - start)


def _describe(run: Run) -> str:
    where = f"cell {run.cell} (id {run.cell_id})" if run.cell is not None else "?"
    what = f"{run.ename}: {run.evalue}".strip(": ")
    line = f" at `{run.line}`" if run.line else ""
    return f"{run.notebook} {where} ({what}{line})"


@pytest.mark.parametrize("label", LABELS)
def test_mutant_differs(label):
    """Each wrong variant returns something else than the right function on a small input."""
    mutant = gm.MUTANTS[label]
    assert mutant.replacements, label
    listed = {name.removeprefix("gmmlib.") for name in EQUATIONS[label].names}
    for public, wrong in mutant.replacements.items():
        assert public in listed, f"{public} is not one of {label}'s functions {sorted(listed)}"
        args, kwargs = probe(label, public)
        right = gm.ORIGINAL[public]
        got, expected = wrong(*args, **kwargs), right(*args, **kwargs)
        assert differs(got, expected), f"{label}: wrong {public} equals the right one"


def test_one_mutant_per_equation():
    missing = [label for label in EQUATIONS if label not in gm.MUTANTS]
    assert not missing, f"key equations without a mutant in gmm_mutants.MUTANTS: {missing}"
    assert list(gm.MUTANTS) == list(EQUATIONS), "MUTANTS names labels EQUATIONS lacks"
    names = [f"{label}/{m.name}" for label, m in gm.MUTANTS.items()]
    assert len(set(names)) == len(names)
    for mutant in gm.MUTANTS.values():
        assert mutant.description and "\n" not in mutant.description


def differs(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return len(a) != len(b) or any(differs(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape != b.shape or not np.allclose(a, b, rtol=1e-9, atol=1e-12)


def _problem():
    weights, means, covariances = gmmlib.article_parameters()
    X, labels = gm.ORIGINAL["sample_mixture"](60, weights, means, covariances, random_state=0)
    guess = gmmlib.article.current_guess()
    resp = gm.ORIGINAL["responsibilities"](X, weights, means, covariances)
    sample_weight = np.random.default_rng(0).integers(1, 4, size=X.shape[0]).astype(float)
    model = gmmlib.GaussianMixture(3, random_state=0).fit(X)
    # holes of every pattern: 20 rows miss x_2, 20 miss x_1, 5 miss both, 15 are complete
    X_holes = X.copy()
    X_holes[:20, 1] = np.nan
    X_holes[20:40, 0] = np.nan
    X_holes[40:45] = np.nan
    resp_holes = gm.ORIGINAL["observed_responsibilities"](X_holes, *guess)
    return {
        "theta": (np.asarray(weights), np.asarray(means), np.asarray(covariances)),
        "guess": guess,
        "X": X,
        "labels": labels,
        "resp": resp,
        "sample_weight": sample_weight,
        "model": model,
        "X_holes": X_holes,
        "resp_holes": resp_holes,
    }


_PROBLEM: dict = {}


def probe(label: str, public: str) -> tuple[tuple, dict]:
    """Arguments on which ``public`` is called for ``label``'s check."""
    if not _PROBLEM:
        _PROBLEM.update(_problem())
    p = _PROBLEM
    w, m, c = p["theta"]
    X, resp = p["X"], p["resp"]
    X_holes, resp_holes = p["X_holes"], p["resp_holes"]
    guess = p["guess"]
    args = {
        "sample_mixture": (40, w, m, c),
        "log_gaussian_density": (X, m[0], c[1]),
        "gaussian_density": (X, m[0], c[1]),
        "log_component_densities": (X, m, c),
        "log_mixture_density": (X, w, m, c),
        "mixture_density": (X, w, m, c),
        "complete_data_log_likelihood": (X, p["labels"], w, m, c),
        "q_function_brute_force": (X[:6], *p["guess"], w, m, c),
        "q_function": (X, resp, w, m, c),
        "responsibilities": (X, w, m, c),
        "log_responsibilities": (X, w, m, c),
        "log_likelihood": (X, w, m, c),
        "q_gradient_weights": (resp, w),
        "update_weights": (resp,),
        "q_gradient_means": (X, resp, m, c),
        "update_means": (X, resp),
        "q_gradient_covariances": (X, resp, m, c),
        "update_covariances": (X, resp, m),
        "m_step": (X, resp),
        "GaussianMixture.bic": (p["model"], X),
        "GaussianMixture.aic": (p["model"], X),
        "observed_log_density": (X_holes, m[1], c[1]),
        "observed_log_likelihood": (X_holes, w, m, c),
        "observed_responsibilities": (X_holes, w, m, c),
        "conditional_moments": (X_holes, m[1], c[1]),
        "expected_statistics": (X_holes, resp_holes, guess[1], guess[2]),
        "q_function_missing": (X_holes, resp_holes, w, m, c, guess[1], guess[2]),
        "m_step_missing": (X_holes, resp_holes, guess[1], guess[2]),
    }[public]
    kwargs = {
        "eq-generative-model": {"random_state": 0},
        "eq-covariances-regularised": {"reg_covar": 0.1},
        "eq-covariance-types": {"covariance_type": "spherical"},
        "eq-weighted-log-likelihood": {"sample_weight": p["sample_weight"]},
        "eq-weighted-m-step": {"sample_weight": p["sample_weight"]},
    }.get(label, {})
    return args, kwargs


@pytest.mark.slow
def test_the_book_catches_every_wrong_function(capsys):
    """Each mutant makes some notebook that checks its equation fail."""
    chosen = [s.strip() for s in os.environ.get("GMM_MUTANTS", "").split(",") if s.strip()]
    unknown = set(chosen) - set(LABELS)
    assert not unknown, f"GMM_MUTANTS names unknown labels {sorted(unknown)}"
    labels = chosen or LABELS
    run_all = os.environ.get("GMM_MUTATION_ALL_NOTEBOOKS") == "1"

    def say(text: str) -> None:
        with capsys.disabled():
            print(text, flush=True)

    unchanged: dict[str, Run] = {}  # notebook text -> its run without a mutant
    results: dict[str, dict] = {}
    problems: list[str] = []
    say("")
    for label in labels:
        mutant = gm.MUTANTS[label]
        runs, caught_by = [], []
        for path in notebooks_for(label):
            text = read(path)
            run = execute(path, text, label)
            runs.append(run)
            if run.kind == "timeout":
                problems.append(f"{label}: {run.notebook} timed out ({run.evalue})")
            if not run.failed:
                continue
            if text not in unchanged:  # the same text the mutant ran on
                unchanged[text] = execute(path, text, None)
                base = unchanged[text]
                state = "passes" if not base.failed else f"FAILS: {_describe(base)}"
                say(f"  unchanged {base.notebook}: {state} ({base.seconds:.0f} s)")
            if unchanged[text].failed:
                problems.append(f"{run.notebook} fails unchanged: {_describe(unchanged[text])}")
                continue
            caught_by.append(run)
            if not run_all:
                break
        results[label] = {
            "mutant": mutant.name,
            "description": mutant.description,
            "caught": bool(caught_by),
            "caught_by": [_describe(r) for r in caught_by],
            "runs": [asdict(r) for r in runs],
        }
        state = f"caught by {_describe(caught_by[0])}" if caught_by else "SURVIVES"
        seconds = sum(r.seconds for r in runs)
        ran = ", ".join(Path(r.notebook).stem for r in runs)
        say(f"  {label} [{mutant.name}]: {state} ({seconds:.0f} s; ran {ran})")

    caught = sum(r["caught"] for r in results.values())
    total = len(labels)
    whole = "" if total == len(LABELS) else f" (of the {total} selected)"
    summary = f"{caught} of {total} wrong functions caught by the book{whole}"
    survivors = [
        f"  {label} [{r['mutant']}]: {r['description']}"
        for label, r in results.items()
        if not r["caught"]
    ]
    say(summary)
    if report := os.environ.get("GMM_MUTATION_REPORT"):
        Path(report).write_text(
            json.dumps(
                {
                    "summary": summary,
                    "results": results,
                    "unchanged": [asdict(r) for r in unchanged.values()],
                    "problems": problems,
                },
                indent=1,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    message = "\n".join([summary, *survivors, *problems])
    assert caught == total and not problems, message
