"""Every key equation of the book is paired with the gmmlib functions that implement it.

``gmmlib.EQUATIONS`` is the one list of the pairs (label -> chapter, functions). The book's
display equations are MyST dollarmath blocks ``$$ ... $$ (label)`` (or ``{math}`` directives
with ``:label:``) in the markdown cells of the notebooks and in the .md pages. These tests check
the pairing both ways:

* every label is defined once in the whole book;
* the ``eq-`` labels of the book are exactly the keys of ``EQUATIONS`` (other labels are
  derivation steps, ``step-...``);
* each key equation is defined in the chapter ``EQUATIONS`` names, and after it that chapter
  calls one of the equation's functions and checks it with ``np.allclose`` (or ``isclose``);
* each listed function exists and its docstring names its label with ``:eq:`label```;
* every ``eq-`` label that any gmmlib docstring names is defined in the book;
* every ``{eq}`` reference in the book and every ``:eq:`` role in a docstring points to a
  defined label.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import gmmlib
from gmmlib.equations import EQUATIONS

ROOT = Path(__file__).resolve().parents[2]
SKIP_PARTS = {"_build", ".ipynb_checkpoints"}

LABEL = r"[A-Za-z0-9][\w.:-]*"
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
MATH_LABEL_OPTION = re.compile(rf"^\s*:label:\s*({LABEL})\s*$")
DOLLAR_LABEL = re.compile(rf"[ \t]*\(({LABEL})\)")
EQ_ROLE = re.compile(r"\{eq\}`(?:[^`<]*<)?([^`<>]+?)>?`")
DOC_EQ_ROLE = re.compile(r":eq:`(?:[^`<]*<)?([^`<>]+?)>?`")
EQ_WORD = re.compile(r"(?<![\w-])(eq-[a-z0-9]+(?:-[a-z0-9]+)*)")
CHECK = re.compile(r"\b(allclose|isclose|assert_allclose)\s*\(")
TARGET = re.compile(rf"^\s*\(({LABEL})\)=\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Cell:
    path: str  # relative to the project root
    index: int  # cell index (0 for a .md page)
    kind: str  # "markdown" or "code"
    text: str


def book_pages() -> list[Path]:
    pages = [ROOT / "intro.md"]
    for suffix in ("*.ipynb", "*.md"):
        pages += (ROOT / "chapters").rglob(suffix)
    return sorted(
        p for p in pages if p.is_file() and not SKIP_PARTS.intersection(p.relative_to(ROOT).parts)
    )


def read_cells(path: Path) -> list[Cell]:
    rel = path.relative_to(ROOT).as_posix()
    if path.suffix == ".md":
        return [Cell(rel, 0, "markdown", path.read_text(encoding="utf-8"))]
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for i, c in enumerate(nb["cells"]):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        cells.append(Cell(rel, i, c["cell_type"], src))
    return cells


CELLS = [cell for page in book_pages() for cell in read_cells(page)]


def split_fences(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The markdown outside fenced blocks (fences blanked out), and the fenced blocks as
    (info string, body) pairs."""
    outside, blocks = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if not m:
            outside.append(lines[i])
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        body = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and not lines[i].strip().strip(fence[0])
        ):
            body.append(lines[i])
            i += 1
        i += 1
        outside.extend([""] * (len(body) + 2))
        blocks.append((info, "\n".join(body)))
    return "\n".join(outside), blocks


def strip_inline_code(text: str) -> str:
    return re.sub(r"``.*?``|`[^`\n]*`", lambda m: " " * len(m.group()), text)


def labels_in(text: str) -> list[str]:
    """Labels of the display equations of a markdown text, in order."""
    prose, blocks = split_fences(text)
    labels = []
    for info, body in blocks:
        if re.match(r"\{(math|eval-rst)\}", info):
            labels += [m[1] for line in body.splitlines() if (m := MATH_LABEL_OPTION.match(line))]
        elif re.match(r"\{[\w-]+\}", info):  # other directives (admonitions...) hold prose
            labels += labels_in(body)
    # Dollar signs pair up in order: $$ opens, the next $$ closes; a label may follow the close.
    prose = strip_inline_code(prose)
    positions = [m.start() for m in re.finditer(r"(?<!\\)\$\$", prose)]
    for close in positions[1::2]:
        m = DOLLAR_LABEL.match(prose, close + 2)
        if m:
            labels.append(m[1])
    return labels


def eq_refs_in(text: str) -> list[str]:
    prose, blocks = split_fences(text)
    refs = EQ_ROLE.findall(prose)
    for info, body in blocks:
        if re.match(r"\{[\w-]+\}", info) and not info.startswith("{code"):
            refs += eq_refs_in(body)
    return refs


def definitions() -> list[tuple[str, Cell]]:
    return [(label, c) for c in CELLS if c.kind == "markdown" for label in labels_in(c.text)]


def defined_labels() -> dict[str, Cell]:
    return dict(definitions())


# -- gmmlib docstrings ------------------------------------------------------------------------
def gmmlib_docstrings() -> dict[str, str]:
    """Docstrings of gmmlib's modules and of their public functions, classes and methods."""
    docs = {}
    # The code lives in private modules (gmmlib._e_step, ...): read them all, but only
    # their public functions, classes and methods.
    modules = [gmmlib] + [
        importlib.import_module(f"gmmlib.{m.name}") for m in pkgutil.iter_modules(gmmlib.__path__)
    ]
    for module in modules:
        docs[module.__name__] = inspect.getdoc(module) or ""
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                docs[f"{module.__name__}.{name}"] = inspect.getdoc(obj) or ""
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if inspect.isfunction(member) or isinstance(member, property):
                        docs[f"{module.__name__}.{name}.{attr}"] = inspect.getdoc(member) or ""
    return docs


# -- the tests ------------------------------------------------------------------------------
def test_the_book_has_labelled_equations():
    assert definitions(), "no labelled display equation found in the book"


def test_labels_are_unique():
    counts = Counter(label for label, _ in definitions())
    duplicates = {
        label: sorted({f"{c.path} (cell {c.index})" for lab, c in definitions() if lab == label})
        for label, n in counts.items()
        if n > 1
    }
    assert not duplicates, f"labels defined more than once: {duplicates}"


def test_no_myst_target_used_as_an_equation_label():
    bad = [
        (c.path, m)
        for c in CELLS
        if c.kind == "markdown"
        for m in TARGET.findall(split_fences(c.text)[0])
        if m.startswith(("eq-", "step-"))
    ]
    assert not bad, (
        "equation labels must follow the equation, `$$ ... $$ (label)`, so that {eq} and :eq: "
        f"can number and link them; found MyST targets `(label)=` instead: {bad}"
    )


def test_eq_labels_are_exactly_the_key_equations():
    book = {label for label, _ in definitions() if label.startswith("eq-")}
    keys = set(EQUATIONS)
    assert not book - keys, (
        f"labels starting with eq- are reserved for gmmlib.EQUATIONS; rename these to step-... "
        f"or add them there: {sorted(book - keys)}"
    )
    missing = {label: EQUATIONS[label].chapter for label in sorted(keys - book)}
    assert not missing, f"key equations not (yet) defined in the book: {missing}"


@pytest.mark.parametrize("label", sorted(EQUATIONS))
def test_key_equation_is_in_its_chapter_then_computed_and_checked(label):
    eq = EQUATIONS[label]
    chapter = ROOT / eq.chapter
    assert chapter.is_file(), f"{label}: chapter {eq.chapter} does not exist"
    cells = [c for c in CELLS if c.path == eq.chapter]
    where = [c.index for c in cells if c.kind == "markdown" and label in labels_in(c.text)]
    assert where, f"{label} is not defined in {eq.chapter}"
    after = [c for c in cells if c.kind == "code" and c.index > where[0]]
    names = [f.__name__ for f in eq.functions]
    calls = [
        c for c in after if any(re.search(rf"(?<![\w]){re.escape(n)}\s*\(", c.text) for n in names)
    ]
    assert calls, f"{eq.chapter}: no code cell after {label} (cell {where[0]}) calls any of {names}"
    checked = [c for c in after if c.index >= calls[0].index and CHECK.search(c.text)]
    assert checked, (
        f"{eq.chapter}: no cell after the call of {names} checks it against the formula "
        "with np.allclose (or np.isclose)"
    )


@pytest.mark.parametrize("label", sorted(EQUATIONS))
def test_key_equation_functions_exist_and_name_it(label):
    for dotted, obj in zip(EQUATIONS[label].names, EQUATIONS[label].functions, strict=True):
        assert callable(obj), f"{dotted} is not callable"
        doc = inspect.getdoc(obj) or ""
        public = dotted.removeprefix("gmmlib.").split(".")[0]
        assert getattr(gmmlib, public, None) is not None, f"{dotted} is not public in gmmlib"
        assert label in DOC_EQ_ROLE.findall(doc), (
            f"the docstring of {dotted} does not name {label} as :eq:`{label}`"
        )


def test_every_label_a_docstring_names_is_in_the_book():
    defined = defined_labels()
    unknown = {}
    for where, doc in gmmlib_docstrings().items():
        named = set(EQ_WORD.findall(doc)) | set(DOC_EQ_ROLE.findall(doc))
        missing = sorted(label for label in named if label not in defined)
        if missing:
            unknown[where] = missing
    assert not unknown, f"docstrings name equations that the book does not define: {unknown}"


def test_every_eq_reference_in_the_book_is_defined():
    defined = defined_labels()
    broken = sorted(
        {
            (c.path, c.index, ref)
            for c in CELLS
            if c.kind == "markdown"
            for ref in eq_refs_in(c.text)
            if ref not in defined
        }
    )
    assert not broken, f"{{eq}} references to undefined labels (path, cell, label): {broken}"


def test_every_key_equation_is_referred_to_in_prose():
    refs = {ref for c in CELLS if c.kind == "markdown" for ref in eq_refs_in(c.text)}
    unreferenced = sorted(set(EQUATIONS) & set(defined_labels()) - refs)
    assert not unreferenced, f"key equations never referred to with {{eq}}: {unreferenced}"
