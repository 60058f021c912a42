"""The Chinese edition's catalogs (``locales/zh_CN/LC_MESSAGES/<page>.po``) against the English.

* The catalogs are up to date: the English pages are extracted afresh (Jupyter Book's gettext
  builder, into a temporary folder, as ``make pot`` does) and every page's catalog must hold
  exactly the messages extracted from it. A sentence changed in a notebook and not re-extracted
  fails here: run ``make pot``, then translate the new and fuzzy entries.
* At least 99 % of the messages of every page but the API reference (gmmlib's docstrings,
  which may stay English) are translated and not fuzzy; the test prints
  ``zh: X of Y messages translated`` and the pages with the most left to do.
* A translation keeps the markup of its message: the same ``{eq}``/``{cite}``/... roles with
  the same targets (the explicit title of ``{ref}`title <target>``` is prose: translated),
  the same inline math, the same inline code and the same link targets (a broken role fails
  the zh build, but a dropped one or a changed formula would not).

``python tests/book/test_translation.py --summary`` prints the counts without extracting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGUAGE = "zh_CN"
CATALOGS = ROOT / "locales" / LANGUAGE / "LC_MESSAGES"
# Catalogs kept by hand, not extracted from a page (the search box's text).
HAND_KEPT = {"theme"}
# The API reference is gmmlib's docstrings: it may stay English.
NOT_COUNTED = {"chapters/appendix/api"}
REQUIRED_SHARE = 0.99

MARKUP = [
    ("role", re.compile(r"\{[\w:-]+\}`[^`]*`")),
    ("inline math", re.compile(r"(?<![\\$])\$(?!\$)(?:[^$\\]|\\.)+?\$")),
    ("inline code", re.compile(r"(?<![}`])`[^`]+`")),
    ("link target", re.compile(r"\]\(([^)]+)\)")),
]


def read_catalog(path: Path):
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        return read_po(f)


def domain_of(path: Path, base: Path) -> str:
    return path.relative_to(base).with_suffix("").as_posix()


def catalogs() -> dict[str, object]:
    return {domain_of(p, CATALOGS): read_catalog(p) for p in sorted(CATALOGS.rglob("*.po"))}


def messages(catalog) -> list:
    return [m for m in catalog if m.id]


def count(cats: dict) -> tuple[int, int, dict[str, int]]:
    done = total = 0
    missing: dict[str, int] = {}
    for domain, cat in cats.items():
        if domain in NOT_COUNTED:
            continue
        for m in messages(cat):
            total += 1
            if m.string and not m.fuzzy:
                done += 1
            else:
                missing[domain] = missing.get(domain, 0) + 1
    return done, total, missing


def summary(cats: dict) -> str:
    done, total, missing = count(cats)
    lines = [f"zh: {done} of {total} messages translated ({100 * done / total:.1f} %)"]
    for domain, n in sorted(missing.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {domain}: {n} untranslated or fuzzy")
    return "\n".join(lines)


def markup(text: str) -> Counter:
    found = Counter()
    rest = text
    for name, pattern in MARKUP:
        for match in pattern.finditer(rest):
            text = match.group(0)
            if name == "role":  # {ref}`title <target>`: the title is prose, translated
                text = re.sub(r"`[^`]*<([^<>`]+)>`$", r"`<\1>`", text)
            found[(name, text)] += 1
        rest = pattern.sub(" ", rest)
    return found


# -- the tests --------------------------------------------------------------------------------
def test_catalogs_are_up_to_date_with_the_english(tmp_path):
    out = tmp_path / "pot"
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            str(ROOT),
            "--builder",
            "custom",
            "--custom-builder",
            "gettext",
            "--path-output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    templates = out / "_build" / "gettext"
    extracted = {
        domain_of(p, templates): {m.id for m in messages(read_catalog(p))}
        for p in sorted(templates.rglob("*.pot"))
    }
    assert extracted, f"nothing extracted into {templates}"
    cats = catalogs()
    problems = []
    for domain, ids in extracted.items():
        if domain not in cats:
            problems.append(f"{domain}: no catalog")
            continue
        have = {m.id for m in messages(cats[domain])}
        if new := ids - have:
            problems.append(f"{domain}: {len(new)} English messages not in the catalog")
        if gone := have - ids:
            problems.append(f"{domain}: {len(gone)} catalog messages no longer in the English")
    for domain in sorted(set(cats) - set(extracted) - HAND_KEPT):
        problems.append(f"{domain}: a catalog for a page that no longer exists")
    assert problems == [], "catalogs out of date (run `make pot`):\n" + "\n".join(problems)


def test_the_chinese_edition_is_translated():
    cats = catalogs()
    text = summary(cats)
    print(text)
    done, total, _ = count(cats)
    assert total > 0, f"no messages in {CATALOGS}"
    assert done >= REQUIRED_SHARE * total, text


def test_translations_keep_the_markup():
    problems = []
    for domain, cat in catalogs().items():
        for m in messages(cat):
            if not m.string or m.fuzzy:
                continue
            source, target = markup(m.id), markup(m.string)
            if source != target:
                lost = sorted(k[1] for k in (source - target).elements())
                added = sorted(k[1] for k in (target - source).elements())
                problems.append(f"{domain}: {m.id[:60]!r}: lost {lost}, added {added}")
    assert problems == [], "\n".join(problems)


if __name__ == "__main__":
    if "--summary" in sys.argv[1:]:
        print(summary(catalogs()))
    else:
        sys.exit("usage: test_translation.py --summary (the tests run under pytest)")
