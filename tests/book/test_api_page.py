"""The API page documents exactly ``gmmlib.__all__``, and nothing by hand.

The page is ``.. currentmodule:: gmmlib`` followed by ``autofunction`` /
``autoclass`` directives under the chapters' headings; a public name that is not on
it, or a name on it that is not public, fails here (before a reader meets it).
"""

import re
from pathlib import Path

import gmmlib

API = Path(__file__).resolve().parents[2] / "chapters" / "appendix" / "api.md"
AUTO = re.compile(r"^\.\. auto(?:function|class|exception|data):: (?:gmmlib\.)?(\w+)\s*$", re.M)


def test_every_public_name_is_on_the_api_page_once():
    documented = AUTO.findall(API.read_text(encoding="utf-8"))
    public = set(gmmlib.__all__)
    assert sorted(set(documented) - public) == [], "on the page but not in gmmlib.__all__"
    assert sorted(public - set(documented)) == [], "in gmmlib.__all__ but not on the page"
    twice = sorted({name for name in documented if documented.count(name) > 1})
    assert twice == [], f"documented more than once: {twice}"


def test_the_api_page_has_no_hand_written_stubs():
    text = API.read_text(encoding="utf-8")
    stubs = re.findall(r"^\.\. py:(?:function|class|data|exception)::.*$", text, re.M)
    assert stubs == [], f"hand-written entries (use autodoc): {stubs}"
