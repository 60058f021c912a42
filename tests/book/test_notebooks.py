"""The book's notebooks are stored executed, clean and listed in the table of contents.

nbval (run by ``make test-book`` with the Makefile's NBVAL_FLAGS) re-executes every notebook and
compares the fresh outputs with the stored ones, but a notebook stored *without* outputs would give
it nothing to compare.
These tests read the stored files only (no kernel) and check that:

* every code cell was executed, in order, in one fresh run (execution counts 1, 2, 3, ...);
* every notebook has outputs, and a cell whose last statement prints, displays or shows a figure
  has an output stored;
* no output is an error or text on stderr (warnings must be caught and printed deliberately);
* figures are shown with a final ``plt.show()``, never left to a trailing ``;`` or the
  ``[<matplotlib.lines.Line2D at 0x...>]`` repr;
* the kernelspec is ``python3`` and the first cell is a markdown ``# Title``;
* ``_toc.yml`` lists every page under ``chapters/`` and every file it lists exists.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
SKIP_PARTS = {"_build", ".ipynb_checkpoints"}


def book_files(suffix: str) -> list[Path]:
    return sorted(
        p
        for p in CHAPTERS.rglob(f"*{suffix}")
        if not SKIP_PARTS.intersection(p.relative_to(ROOT).parts)
    )


NOTEBOOKS = book_files(".ipynb")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def python_source(code: str) -> str:
    """The cell without IPython magics and shell escapes, so that ``ast`` can parse it."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
    )


def ends_with_semicolon(code: str) -> bool:
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(python_source(code)).readline)
        if t.type not in SKIP_TOKENS
    ]
    return bool(tokens) and tokens[-1].string == ";"


def last_call(code: str) -> str:
    """``print``, ``display``, ``plt.show``... when the cell's last top-level statement is a
    call, else ``""``."""
    body = ast.parse(python_source(code)).body
    if not body or not isinstance(body[-1], ast.Expr) or not isinstance(body[-1].value, ast.Call):
        return ""
    return ast.unparse(body[-1].value.func)


def ends_with_plt_show(code: str) -> bool:
    """The cell ends with ``plt.show()``, or with a loop (or ``with`` block) whose body does:
    one figure shown per pass."""
    body = ast.parse(python_source(code)).body
    while body:
        last = body[-1]
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            return ast.unparse(last.value.func) == "plt.show"
        if not isinstance(last, (ast.For, ast.While, ast.With)):
            return False
        body = last.body
    return False


def code_cells(nb: dict) -> list[tuple[int, dict]]:
    return [
        (i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and source(c).strip()
    ]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# Calls that draw a figure with pyplot (plt.*) or on Axes/Figure objects.
PLOT_CALL = re.compile(
    r"\bplt\.(subplots|subplot|figure|plot|scatter|hist|imshow|contourf?|bar|fill_between"
    r"|errorbar|pcolormesh|axhline|axvline|semilogy|loglog)\s*\("
)
# Calls that, as a cell's last statement, always produce an output.
OUTPUT_CALLS = {"print", "display", "plt.show", "IPython.display.display"}
SKIP_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebook found under chapters/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_kernelspec_and_title(path):
    nb = load(path)
    spec = nb.get("metadata", {}).get("kernelspec", {})
    assert spec.get("name") == "python3", f"{rel(path)}: kernelspec name is {spec.get('name')!r}"
    assert spec.get("language", "python") == "python"
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown", f"{rel(path)}: the first cell must be markdown"
    headings = [ln for ln in source(first).splitlines() if re.match(r"#\s", ln)]
    assert len(headings) == 1 and source(first).lstrip().startswith("# "), (
        f"{rel(path)}: the first cell must start with a single '# Title' heading"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_executed_in_one_fresh_run(path):
    nb = load(path)
    cells = code_cells(nb)
    assert cells, f"{rel(path)} has no code cell"
    counts = [c.get("execution_count") for _, c in cells]
    never = [i for i, c in cells if c.get("execution_count") is None]
    assert not never, (
        f"{rel(path)}: code cells {never} were "
        "never executed; run `make execute` (or nbconvert --execute --inplace) and commit "
        "the outputs"
    )
    assert counts == list(range(1, len(counts) + 1)), (
        f"{rel(path)}: execution counts {counts} are not 1, 2, 3, ...: re-execute the notebook "
        "from a fresh kernel (`make execute`)"
    )
    assert any(c.get("outputs") for _, c in cells), f"{rel(path)}: no code cell has any output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_output_cells_have_outputs_and_no_errors(path):
    nb = load(path)
    for i, cell in code_cells(nb):
        outputs = cell.get("outputs", [])
        where = f"{rel(path)}, cell {i}"
        call = last_call(source(cell))
        if call in OUTPUT_CALLS:
            assert outputs, f"{where}: ends with a call to {call}() but is stored empty"
        for out in outputs:
            assert out["output_type"] != "error", (
                f"{where}: stored error {out.get('ename')}: {out.get('evalue')}"
            )
            if out["output_type"] == "stream":
                assert out.get("name") != "stderr", (
                    f"{where}: text on stderr (a warning?): {''.join(out.get('text', ''))[:300]!r}"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_figures_end_with_plt_show(path):
    nb = load(path)
    for i, cell in code_cells(nb):
        code = source(cell)
        where = f"{rel(path)}, cell {i}"
        assert not ends_with_semicolon(code), (
            f"{where}: ends with ';' (end a plot cell with plt.show())"
        )
        has_png = any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
        draws = bool(PLOT_CALL.search(code)) and "plt.close(" not in code
        if has_png or draws:
            assert ends_with_plt_show(code), (
                f"{where}: a cell that draws a figure must end with plt.show()"
            )
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {}).get("text/plain", ""))
            if out["output_type"] == "execute_result":
                assert not re.search(r"<matplotlib\.\w+(\.\w+)* (at|object at) 0x", text), (
                    f"{where}: the cell's value is a matplotlib object repr {text[:80]!r}; "
                    "end the cell with plt.show()"
                )


# -- the table of contents ------------------------------------------------------------------
def toc_files() -> list[str]:
    """Every file entry of _toc.yml (jb-book format), without suffix, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book"
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            if "glob" in entry:
                raise AssertionError("_toc.yml: list files explicitly, no glob")
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return found


def page_file(entry: str) -> Path | None:
    for suffix in ("", ".md", ".ipynb"):
        p = ROOT / f"{entry}{suffix}"
        if p.is_file():
            return p
    return None


def test_toc_files_exist_and_are_unique():
    entries = toc_files()
    missing = [e for e in entries if page_file(e) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    assert len(entries) == len(set(entries)), "_toc.yml lists a file twice"


def test_every_page_is_in_the_toc():
    listed = {page_file(e) for e in toc_files()}
    pages = book_files(".ipynb") + book_files(".md")
    missing = [rel(p) for p in pages if p not in listed]
    assert not missing, (
        f"pages not in _toc.yml (Jupyter Book would silently leave them out): {missing}"
    )


# -- one colour-blind-safe palette --------------------------------------------------------------
OKABE_ITO = ["0072B2", "E69F00", "009E73", "D55E00", "CC79A7", "56B4E9", "F0E442", "000000"]
# colours outside the palette: named primaries, or RGB triples written out by hand
OFF_PALETTE = re.compile(
    r"""(?:color|c|colors)\s*=\s*["'](?:r|g|b|m|y|c|red|green|blue|magenta)["']"""
    r"""|np\.array\(\s*\[\s*\[\s*0?\.\d+\s*,\s*0?\.\d+\s*,\s*0?\.\d+\s*\]"""
)


def test_every_notebook_folder_uses_the_book_palette():
    # matplotlib reads ./matplotlibrc: the notebook's folder when Jupyter or nbval runs it
    for folder in sorted({path.parent for path in NOTEBOOKS}):
        rc = folder / "matplotlibrc"
        assert rc.is_file(), f"{rel(folder)} has no matplotlibrc (link ../matplotlibrc)"
        cycle = re.search(r"^axes\.prop_cycle:\s*cycler\('color', \[(.*)\]\)", rc.read_text(), re.M)
        assert cycle, f"{rel(rc)} sets no colour cycle"
        assert re.findall(r"'([0-9A-Fa-f]{6})'", cycle[1]) == OKABE_ITO, rel(rc)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_no_colour_outside_the_palette(path):
    bad = [
        (i, m.group())
        for i, cell in code_cells(load(path))
        for m in OFF_PALETTE.finditer(python_source(source(cell)))
    ]
    assert not bad, f"{rel(path)}: colours outside the book's palette (use 'C0'...'C7'): {bad}"
