"""Write cross-chapter equation references and citations in a form that both the book and
JupyterLab (with jupyterlab-myst) resolve.

jupyterlab-myst renders each notebook on its own: it reads no bibliography and knows no other
notebook's labels, so a ``{cite}`key``` role shows "Citation Not Found" and an ``{eq}`label```
reference to another chapter's equation shows "Cross Reference Not Found". This script
rewrites, in the markdown cells of every chapter notebook listed in ``_toc.yml``:

* ``{eq}`eq-label``` that points to an equation of *another* page into
  ``{eq}`(2.3) <eq-label>```, where (2.3) is the number the book gives that equation.
  Sphinx ignores the explicit title of an ``eq`` reference (it always prints the number it
  computes, and links to the equation), so the book is unchanged; jupyterlab-myst prints the
  title. A reference to an equation of the same notebook is left as it is (jupyterlab-myst
  resolves it, with its own numbering). An already-titled cross-page reference gets its title
  brought up to date, so re-running the script after equations move renumbers them.
* ``{cite}`key1,key2``` into ``[\\[Author, year, Author, year\\]](#key1,key2)``. In the book,
  MyST-Parser resolves a ``#target`` link that is no local anchor like an ``{any}`` reference,
  and sphinxcontrib-bibtex resolves the keys as a ``{cite:p}`` (the same
  "[Dempster et al., 1977]" with its link and tooltip as ``{cite}``; the link text is
  ignored); jupyterlab-myst shows the link text. Texts come from
  chapters/appendix/references.bib: one author "Bishop", two "Meng and Rubin", three or more
  "Dempster et al.".

Idempotent: a second run changes nothing. Only markdown cells change; code cells, outputs,
metadata and cell ids are kept. Run from the repository root:

    .venv/bin/python tools/lab_references.py            # rewrite the notebooks in place
    .venv/bin/python tools/lab_references.py --check     # exit 1 if a rewrite is pending
    .venv/bin/python tools/lab_references.py --root DIR  # another copy of the book (DIR has
                                                         # _toc.yml and chapters/)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml
from pybtex.database import parse_file

LABEL = r"[A-Za-z0-9][\w.:-]*"
# $$ ... $$ (label) -- MyST dollarmath's labelled display equation
DOLLAR_EQ = re.compile(rf"\$\$(?:(?!\$\$).)+?\$\$[ \t]*\(({LABEL})\)", re.DOTALL)
# ```{math} / :::{math} with a :label: option
MATH_FENCE = re.compile(r"^(`{3,}|:{3,})\{math\}[^\n]*\n((?:[ \t]*:\w+:.*\n)*)", re.M)
FENCE_LABEL = re.compile(rf"^[ \t]*:label:[ \t]*({LABEL})[ \t]*$", re.M)
EQ_ROLE = re.compile(r"\{eq\}`(?:([^`<]*?)\s*<)?([^`<>]+?)>?`")
CITE_ROLE = re.compile(r"\{cite(?::p)?\}`([^`]+)`")


def toc_pages(root: Path) -> list[tuple[str, int | None]]:
    """(page path without suffix, its chapter number or None), in the book's order. The parts
    marked `numbered` are numbered continuously (html.use_multitoc_numbering in _config.yml)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages, number = [], 0
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            if part.get("numbered"):
                number += 1
                pages.append((chapter["file"], number))
            else:
                pages.append((chapter["file"], None))
            for section in chapter.get("sections", []):
                # Sub-pages are not numbered by chapter here; their equations keep "(n)".
                pages.append((section["file"], None))
    return pages


def page_file(root: Path, page: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (path := root / (page + suffix)).is_file():
            return path
    return None


def markdown_texts(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def labelled_equations(text: str) -> list[str]:
    """The labels of the numbered display equations of a page, in order."""
    found = [(m.start(), m.group(1)) for m in DOLLAR_EQ.finditer(text)]
    for m in MATH_FENCE.finditer(text):
        if label := FENCE_LABEL.search(m.group(2)):
            found.append((m.start(), label.group(1)))
    return [label for _, label in sorted(found)]


def equation_numbers(root: Path) -> dict[str, tuple[str, str]]:
    """label -> (page, the number the book prints, e.g. "(2.3)")."""
    numbers = {}
    for page, chapter in toc_pages(root):
        if (path := page_file(root, page)) is None:
            continue
        labels = labelled_equations("\n\n".join(markdown_texts(path)))
        for k, label in enumerate(labels, start=1):
            numbers[label] = (page, f"({chapter}.{k})" if chapter else f"({k})")
    return numbers


def citation_texts(root: Path) -> dict[str, str]:
    """key -> "Author, year" as the book's author_year style prints it (without markup)."""
    bib = parse_file(str(root / "chapters" / "appendix" / "references.bib"), "bibtex")
    texts = {}
    for key, entry in bib.entries.items():
        persons = entry.persons.get("author", [])
        names = [" ".join(p.prelast_names + p.last_names) or str(p) for p in persons]
        names = [n.replace("{", "").replace("}", "") for n in names]
        if len(names) >= 3 or any(n == "others" for n in names):
            who = f"{names[0]} et al."
        else:
            who = " and ".join(names)
        texts[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return texts


def rewrite_markdown(text: str, page: str, numbers, citations) -> str:
    def eq(m: re.Match) -> str:
        label = m.group(2).strip()
        if label not in numbers:
            return m.group(0)  # an undefined label: the book build reports it
        target_page, number = numbers[label]
        if target_page == page:
            return m.group(0)
        return f"{{eq}}`{number} <{label}>`"

    def cite(m: re.Match) -> str:
        keys = [k.strip() for k in m.group(1).split(",") if k.strip()]
        if not all(k in citations for k in keys):
            return m.group(0)  # an unknown key: the book build reports it
        shown = ", ".join(citations[k] for k in keys)
        return f"[\\[{shown}\\]](#{','.join(keys)})"

    return CITE_ROLE.sub(cite, EQ_ROLE.sub(eq, text))


PO_STRING = re.compile(r'^((?:#~ )?(?:msgid |msgstr |msgid_plural |msgstr\[\d+\] )?)"(.*)"$')
PO_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\t": "\t", "\\r": "\r"}


def po_unescape(text: str) -> str:
    return re.sub(r'\\[\\"ntr]', lambda m: PO_ESCAPES[m.group(0)], text)


def po_escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def rewrite_catalog(path: Path, page: str, numbers, citations, write: bool) -> bool:
    """The same rewrite in a translation catalog of the page (locales/<lang>/LC_MESSAGES/
    <page>.po), in its msgids and msgstrs, so that the catalog stays in step with the
    re-extracted English (no message turns fuzzy) and the translations keep the markup of
    their message. Gettext messages keep the markdown source, one line per string here."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for line in lines:
        m = PO_STRING.match(line)
        if m:
            old = po_unescape(m.group(2))
            new = rewrite_markdown(old, page, numbers, citations)
            if new != old:
                line = f'{m.group(1)}"{po_escape(new)}"'
        out.append(line)
    changed = out != lines
    if changed and write:
        path.write_text("\n".join(out), encoding="utf-8")
    return changed


def rewrite_notebook(path: Path, page: str, numbers, citations) -> bool:
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    changed = False
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        old = "".join(cell["source"])
        new = rewrite_markdown(old, page, numbers, citations)
        if new != old:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    if changed:
        # nbformat's layout: one-space indent, sorted keys, non-ASCII kept, final newline
        text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
    return changed


def verify_html(numbers, html: Path) -> int:
    """The numbers the built book prints (its <span class="eqno">) against the computed ones."""
    eqno = re.compile(r'id="equation-([^"]+)".*?class="eqno">(\([0-9.]+\))', re.DOTALL)
    checked, wrong = 0, []
    for label, (page, number) in sorted(numbers.items()):
        built = html / (page + ".html")
        if not built.is_file():
            continue
        shown = dict(eqno.findall(built.read_text(encoding="utf-8")))
        checked += 1
        if shown.get(label) != number:
            wrong.append(f"{page}: {label} is {shown.get(label)} in the book, {number} here")
    print(f"{checked} equation numbers checked against {html}, {len(wrong)} differ")
    print("\n".join(wrong))
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if due")
    parser.add_argument(
        "--verify-html",
        type=Path,
        metavar="HTML",
        help="compare the computed numbers with a fresh build's (e.g. _build/html); exit 1 "
        "if one differs",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    numbers, citations = equation_numbers(root), citation_texts(root)
    if args.verify_html:
        return verify_html(numbers, args.verify_html)
    pending = []
    for page, _ in toc_pages(root):
        path = page_file(root, page)
        if path is None or path.suffix != ".ipynb" or not page.startswith("chapters/"):
            continue
        if args.check:
            texts = markdown_texts(path)
            if any(rewrite_markdown(t, page, numbers, citations) != t for t in texts):
                pending.append(path)
        elif rewrite_notebook(path, page, numbers, citations):
            pending.append(path)
        for catalog in sorted(root.glob(f"locales/*/LC_MESSAGES/{page}.po")):
            if rewrite_catalog(catalog, page, numbers, citations, write=not args.check):
                pending.append(catalog)
    verb = "to rewrite" if args.check else "rewritten"
    print(f"{len(pending)} file(s) {verb}" + "".join(f"\n  {p}" for p in pending))
    return 1 if args.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
