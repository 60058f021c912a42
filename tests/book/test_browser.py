"""The built book, read in a real browser (Debian's chromium driven by Playwright).

``make test`` builds the book first; this module serves ``_build/html`` on 127.0.0.1 and opens
every page of the book (the root page, the chapters and the appendix; not the generated
genindex and search pages). For each page it checks that:

* nothing is requested from any host other than the local server (the request is aborted and
  the test fails), and no local request fails (a missing font, script or image);
* the console shows no error and no script throws;
* MathJax (served from ``_static/mathjax``) has typeset every display equation: each
  ``div.math`` holds an ``mjx-container``, no MathJax error node exists, and no raw TeX is left
  in the visible text outside code (``\\[``, ``$$``, ``\\begin{``, a control word such as
  ``\\frac``, or ``$x_i$`` left as it was typed);
* every ``<img>`` has loaded (``naturalWidth > 0``);
* the characters of the text have glyphs in the installed fonts (a character that renders
  exactly like an unassigned code point is a "tofu" box: install a font for it);

and it saves a full-page screenshot to ``_build/screenshots/<page>.png``. A last test checks
that every internal link to an equation (``#equation-...``: the ``{eq}`` references of the
chapters and the ``:eq:`` links of the API reference) lands on an element id that exists on the
target page as the browser sees it.

The pages of the Chinese edition (``_build/html/zh``, built by ``make book``) are checked in
the same way, and a further test checks that every page's language switch (English / 中文) leads
to the same page of the other edition.

The module is skipped, with a message saying why, when no chromium is installed
(``apt-get install chromium``; Playwright's own browser download is never used) or when the
book has not been built (``make book``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import math
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest
from chromium import browser_context, find_chromium

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
HOST = "127.0.0.1"
# The Chinese edition's folder in the built site.
ZH = "zh"
# Pages Sphinx generates for navigation, not part of the book's text.
NOT_BOOK_PAGES = {"genindex.html", "search.html", "py-modindex.html", "index.html"}
PAGE_TIMEOUT_MS = 30_000
TABS = 3  # pages open at once


CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(
        "browser test skipped: no chromium binary found (install Debian's chromium: "
        "`apt-get install chromium`, see the README's system packages)",
        allow_module_level=True,
    )
if not (HTML / "intro.html").is_file():
    pytest.skip(
        f"browser test skipped: the book is not built ({HTML} has no intro.html); "
        "run `make book` first",
        allow_module_level=True,
    )
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")


def book_pages() -> list[str]:
    """The pages of both editions: the English one at the root, the Chinese one under zh/
    (`make book`). Sphinx's generated pages (NOT_BOOK_PAGES) are left out in both, among them
    each edition's index.html, a redirect to intro.html that never finishes loading; so are
    folders such as _static, _images and _sources, at the root and under zh/."""
    pages = []
    for path in sorted(HTML.rglob("*.html")):
        rel = path.relative_to(HTML).as_posix()
        if any(part.startswith(("_", ".")) for part in rel.split("/")):
            continue
        if rel.removeprefix(f"{ZH}/") in NOT_BOOK_PAGES:
            continue
        pages.append(rel)
    # The root page first, then the book's order is the file order within each part; the
    # Chinese edition after the English one.
    return sorted(pages, key=lambda p: (p.startswith(f"{ZH}/"), not p.endswith("intro.html"), p))


PAGES = book_pages()


# -- a local server, one browser, every page visited once -------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass


@contextlib.contextmanager
def serve(directory: Path):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class PageReport:
    problems: list[str] = field(default_factory=list)
    mathjax: str = ""
    broken_images: list[str] = field(default_factory=list)
    math: dict = field(default_factory=dict)
    tofu: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)


# -- what runs in the page --------------------------------------------------------------------
WAIT_FOR_MATHJAX = """
async () => {
  if (!document.querySelector('div.math, span.math')) return 'no math';
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 20000) return 'MathJax never started';
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return 'typeset';
}
"""

WAIT_FOR_IMAGES = """
async () => {
  const imgs = [...document.images];
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  return imgs.filter(img => !(img.complete && img.naturalWidth > 0))
             .map(img => img.getAttribute('src'));
}
"""

MATH_REPORT = r"""
() => {
  const blocks = [...document.querySelectorAll('div.math')];
  const untypeset = blocks.filter(d => !d.querySelector('mjx-container'))
                          .map(d => (d.id || '') + ' ' + d.textContent.trim().slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror, mjx-container [data-mjx-error]')]
                   .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80));
  // TeX that MathJax did not typeset: delimiters, environments, control words such as
  // \frac or \Sigma, or $...$ around sub- and superscripts (e.g. inline math that a line
  // break turned into a list item).
  const rawTeX = [
    /\\[\[\]()]/, /\$\$/, /\\begin\{/, /\\[A-Za-z]{2,}/, /\$[^$\s][^$]*[_^\\{][^$]*\$/,
  ];
  // Visible text outside code, MathJax output and hidden elements.
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  let text = '';
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || !el.checkVisibility()) continue;
    text += n.textContent;
    if (rawTeX.some(re => re.test(n.textContent))) {
      raw.push(n.textContent.trim().slice(0, 120));
    }
  }
  return {
    blocks: blocks.length,
    containers: document.querySelectorAll('mjx-container').length,
    untypeset, errors, raw,
    chars: [...new Set(text)].filter(c => c.codePointAt(0) > 0x7f && c.trim()).join(''),
  };
}
"""

# A character whose rendering equals that of an unassigned code point has no glyph: it shows
# as a box. Drawn in the page's body font, so the page's own font fallbacks apply.
MISSING_GLYPHS = """
(chars) => {
  const font = '32px ' + getComputedStyle(document.body).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (c) => {
    ctx.clearRect(0, 0, 64, 64); ctx.font = font; ctx.fillStyle = '#000';
    ctx.fillText(c, 8, 44);
    return ctx.getImageData(0, 0, 64, 64).data.join(',') + '|' + ctx.measureText(c).width;
  };
  const tofu = new Set([draw('\\u{10FFFD}'), draw('\\u{E9A7}'), draw('\\u{2FFFD}')]);
  return [...chars].filter(c => tofu.has(draw(c)));
}
"""

COLLECT_IDS_AND_LINKS = """
() => ({
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  links: [...document.querySelectorAll('a[href*="#"]')].map(a => a.href),
  switches: [...document.querySelectorAll('a.lang-switch')].map(a => a.href),
})
"""


async def save_screenshot(context, page, out: Path) -> None:
    """A full-page PNG. Chromium's fast PNG encoder (``optimizeForSpeed``, through the DevTools
    protocol) halves the time of Playwright's ``full_page`` screenshot on long pages."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        cdp = await context.new_cdp_session(page)
        size = (await cdp.send("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await cdp.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "optimizeForSpeed": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": math.ceil(size["width"]),
                    "height": math.ceil(size["height"]),
                    "scale": 1,
                },
            },
        )
        out.write_bytes(base64.b64decode(shot["data"]))
    except async_api.Error:
        await page.screenshot(path=str(out), full_page=True)


async def visit(context, base_url: str, rel_page: str) -> PageReport:
    """Open one page in a fresh tab, record every problem, take its screenshot."""
    report = PageReport()
    problems = report.problems
    page = await context.new_page()

    async def route(route):
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:")) or urlsplit(url).hostname == HOST:
            await route.continue_()
        else:
            problems.append(f"request to another host: {url}")
            await route.abort()

    def on_console(msg):
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    def on_failed(request):
        if urlsplit(request.url).hostname == HOST:
            problems.append(f"request failed: {request.url} ({request.failure})")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    await page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught exception: {exc}"))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        await page.goto(urljoin(base_url, rel_page), wait_until="load")
        report.mathjax = await page.evaluate(WAIT_FOR_MATHJAX)
        report.broken_images = await page.evaluate(WAIT_FOR_IMAGES)
        report.math = await page.evaluate(MATH_REPORT)
        report.tofu = await page.evaluate(MISSING_GLYPHS, report.math["chars"])
        found = await page.evaluate(COLLECT_IDS_AND_LINKS)
        report.ids, report.links = set(found["ids"]), found["links"]
        report.switches = found["switches"]
        await save_screenshot(context, page, SCREENSHOTS / Path(rel_page).with_suffix(".png"))
    except Exception as exc:  # reported by the page's test, not raised by the fixture
        problems.append(f"could not check the page: {type(exc).__name__}: {exc}")
    finally:
        await page.close()
    return report


async def visit_all(base_url: str, pages: list[str]) -> dict[str, PageReport]:
    """Visit the pages with a few tabs at a time (the browser's work runs in parallel)."""
    async with browser_context(CHROMIUM, "gmm-book-chromium-", PAGE_TIMEOUT_MS) as context:
        queue = list(reversed(pages))
        reports: dict[str, PageReport] = {}

        async def worker():
            while queue:
                rel_page = queue.pop()
                reports[rel_page] = await visit(context, base_url, rel_page)

        await asyncio.gather(*(worker() for _ in range(TABS)))
        return reports


@pytest.fixture(scope="module")
def book():
    """(base URL, {page: PageReport}) for every page of the built book."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    with serve(HTML) as base_url:
        reports = asyncio.run(visit_all(base_url, PAGES))
    return base_url, reports


@pytest.mark.parametrize("rel_page", PAGES)
def test_page_reads_well_offline(book, rel_page):
    report = book[1][rel_page]
    tex = report.math
    assert not report.problems, f"{rel_page}:\n" + "\n".join(report.problems)
    assert report.mathjax in ("no math", "typeset"), f"{rel_page}: {report.mathjax}"
    assert not report.broken_images, f"{rel_page}: images that did not load: {report.broken_images}"
    assert not tex["untypeset"], f"{rel_page}: display math not typeset: {tex['untypeset']}"
    assert tex["containers"] >= tex["blocks"]
    assert not tex["errors"], f"{rel_page}: MathJax errors: {tex['errors']}"
    assert not tex["raw"], f"{rel_page}: raw TeX left in the text: {tex['raw']}"
    assert not report.tofu, (
        f"{rel_page}: no font has a glyph for {''.join(report.tofu)!r} (they show as boxes); "
        "for Chinese text install a CJK font (`apt-get install fonts-wqy-microhei`)"
    )


def test_equation_links_land_on_existing_anchors(book):
    """Every internal link to an equation (#equation-...) lands on an existing element id."""
    base_url, reports = book
    broken, n_links = [], 0
    for rel_page, report in reports.items():
        for href in report.links:
            url, fragment = urldefrag(href)
            if not url.startswith(base_url) or not fragment.startswith("equation-"):
                continue
            n_links += 1
            target = unquote(url[len(base_url) :]) or "index.html"
            if target not in reports:
                broken.append(f"{rel_page} -> {target}#{fragment} (not a page of the book)")
            elif unquote(fragment) not in reports[target].ids:
                broken.append(f"{rel_page} -> {target}#{fragment} (no such id)")
    assert not broken, "equation links that land nowhere:\n" + "\n".join(broken)
    if any(p.startswith("chapters/0") for p in PAGES):
        assert n_links, "the chapters exist but no page links to an equation ({eq} or :eq:)"
    api = "chapters/appendix/api.html"
    if api in reports:
        api_links = [h for h in reports[api].links if urldefrag(h)[1].startswith("equation-")]
        assert api_links, f"{api} has no link to an equation (docstrings name them with :eq:)"


def test_language_switch_leads_to_the_same_page_in_the_other_edition(book):
    """Every page has one language switch; it leads to the same page of the other edition (a
    page that was opened and checked above), whose switch leads back."""
    base_url, reports = book
    problems = []
    for rel_page, report in reports.items():
        if len(report.switches) != 1:
            problems.append(f"{rel_page}: {len(report.switches)} language switches, not 1")
            continue
        url = urldefrag(report.switches[0])[0]
        target = unquote(url[len(base_url) :]) if url.startswith(base_url) else url
        expected = rel_page.removeprefix(f"{ZH}/")
        if not rel_page.startswith(f"{ZH}/"):
            expected = f"{ZH}/{rel_page}"
        if target != expected:
            problems.append(f"{rel_page}: the switch leads to {target}, not {expected}")
        elif target not in reports:
            problems.append(f"{rel_page}: the switch leads to {target}, which was not built")
    assert not problems, "language switches (build both editions with `make book`):\n" + (
        "\n".join(problems)
    )
    assert any(p.startswith(f"{ZH}/") for p in reports), f"no Chinese edition in {HTML / ZH}"
