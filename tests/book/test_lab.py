"""The chapter notebooks, opened in JupyterLab with jupyterlab-myst, in a real browser.

``make lab`` runs JupyterLab with the jupyterlab-myst extension (requirements-lab.txt), so
that a reader running the notebooks sees the MyST markup rendered as in the book. This module
starts JupyterLab the way ``make lab`` does (from this venv, on the chapters folder) but
headless: a free port on 127.0.0.1, no token, its own settings with the notebook's windowing
off (``windowingMode: none``: every cell is rendered, not only those in view) and autosave off
(opening a notebook can mark it changed; an autosave would rewrite it). It opens every chapter
notebook in Debian's chromium driven by Playwright and requires, in the rendered markdown
cells:

* no raw MyST markup left as text: ``{eq}``, ``{cite}``, a ```` ```{note} ```` fence, or an
  equation label ``(eq-...)`` after a display equation;
* no reference that jupyterlab-myst could not resolve (it renders them as "Cross Reference
  Not Found" or "Citation Not Found");
* every display equation of the source typeset by KaTeX, without a KaTeX error;

and saves a full-page screenshot to ``_build/lab-screenshots/<notebook>.png`` for a person to
look at. The server is stopped at the end, whatever happens.

Two quick tests go with it: the chapter notebooks have their cross-chapter ``{eq}``
references and their citations written in the form both the book and JupyterLab resolve
(``tools/lab_references.py --check``), and the equation numbers that form carries are those
the built book prints (``--verify-html _build/html``; skipped when the book is not built).

``GMM_LAB_ROOT=<folder>`` runs it on another copy of the chapters (the folder that holds the
chapter notebooks, with ``practice/`` and ``appendix/``); ``GMM_LAB_NOTEBOOKS=02,03`` opens only
the notebooks whose path contains one of these strings.

The browser test is skipped, with a message saying why, when no chromium is installed
(``apt-get install chromium``; Playwright's own browser download is never used) or when
JupyterLab or jupyterlab-myst is not installed (``make lab-deps``; ``make test-book`` runs it
first).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from chromium import browser_context, find_chromium

ROOT = Path(__file__).resolve().parents[2]
LAB_ROOT = Path(os.environ.get("GMM_LAB_ROOT", ROOT / "chapters")).resolve()
SCREENSHOTS = ROOT / "_build" / "lab-screenshots"
HOST = "127.0.0.1"
SERVER_START_S = 90
NOTEBOOK_TIMEOUT_MS = 90_000

CHROMIUM = find_chromium()


def why_skip() -> str | None:
    """Why the browser test cannot run here, or None."""
    if CHROMIUM is None:
        return (
            "JupyterLab test skipped: no chromium binary found (install Debian's chromium: "
            "`apt-get install chromium`, see the README's system packages)"
        )
    for module in ("jupyterlab", "jupyterlab_myst", "playwright"):
        if importlib.util.find_spec(module) is None:
            return (
                f"JupyterLab test skipped: {module} is not installed in this venv "
                "(`make lab-deps` installs requirements-lab.txt)"
            )
    return None


def chapter_notebooks() -> list[str]:
    found = sorted(
        p.relative_to(LAB_ROOT).as_posix()
        for p in LAB_ROOT.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )
    if only := os.environ.get("GMM_LAB_NOTEBOOKS"):
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        found = [p for p in found if any(w in p for w in wanted)]
    return found


NOTEBOOKS = chapter_notebooks()

# JupyterLab's settings for the test (what `make lab` leaves at JupyterLab's defaults).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}


# -- the source: what the rendered notebook must show ------------------------------------------
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$|^```\{math\}", re.DOTALL | re.MULTILINE)


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def display_equations(path: Path) -> int:
    return sum(len(DISPLAY_MATH.findall(text)) for text in markdown_cells(path))


# -- JupyterLab, headless ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root_dir: Path):
    """JupyterLab serving root_dir at a free port, without token; stopped on exit."""
    work = Path(tempfile.mkdtemp(prefix="gmm-lab-"))
    settings = work / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
        # JupyterLab saves a checkpoint of a notebook when it opens it: keep them out of the
        # chapters (an absolute checkpoint_dir is used as it is)
        f"--FileCheckpoints.checkpoint_dir={work / 'checkpoints'}",
        "--LabServerApp.news_url=",
    ]  # fmt: skip
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")  # as `make lab` does on a container or CI machine
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(work / "config"))
    env.pop("JUPYTER_TOKEN", None)
    log = open(work / "server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    base = f"http://{HOST}:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited ({proc.returncode}):\n"
                    + (work / "server.log").read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(base + "api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer on {base} in {SERVER_START_S} s")
            time.sleep(0.5)
        yield base
    finally:
        # The server and the kernels it started (its own process group).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def shutdown_sessions(base: str) -> None:
    """Stop the kernels that opening notebooks started (they are not needed to render)."""
    with urllib.request.urlopen(base + "api/sessions", timeout=10) as r:
        sessions = json.load(r)
    for session in sessions:
        request = urllib.request.Request(base + f"api/sessions/{session['id']}", method="DELETE")
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=20):
            pass


# -- what runs in the page ---------------------------------------------------------------------
# Wait until every markdown cell is rendered by jupyterlab-myst and the rendering has settled
# (the notebook-wide pass that resolves references re-renders the cells).
WAIT_RENDERED = """
async ([expected, timeoutMs]) => {
  const t0 = Date.now();
  let last = '', stableSince = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const cells = document.querySelectorAll('.jp-Notebook .jp-MarkdownCell');
    const rendered = document.querySelectorAll(
      '.jp-Notebook .jp-MarkdownCell .myst');
    const sig = cells.length + '/' + rendered.length + '/' +
      document.querySelectorAll('.jp-Notebook .katex').length + '/' +
      (document.querySelector('.jp-Notebook')?.innerText.length ?? 0);
    if (sig !== last) { last = sig; stableSince = Date.now(); }
    if (cells.length >= expected && rendered.length >= expected &&
        Date.now() - stableSince > 2500) return sig;
    await new Promise(r => setTimeout(r, 250));
  }
  return 'timeout ' + last;
}
"""

REPORT = r"""
() => {
  const md = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell .myst')];
  const text = md.map(e => e.innerText).join('\n');
  const raw = [];
  for (const re of [/\{eq\}`?[^\s`]*/g, /\{cite(:\w+)?\}`?[^\s`]*/g, /```\{\w+\}/g,
                    /\{(ref|numref|doc|note|math)\}/g, /\(eq-[a-z0-9-]+\)/g]) {
    for (const m of text.matchAll(re)) raw.push(m[0]);
  }
  // jupyterlab-myst marks what it cannot resolve with a warning icon whose title says so
  // ("Citation Not Found", "Cross Reference Not Found"), next to the label as text.
  const notFound = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell .myst [title]')]
    .filter(e => /not found/i.test(e.getAttribute('title')))
    .map(e => e.getAttribute('title') + ': ' + e.textContent.trim().slice(0, 60));
  for (const m of text.matchAll(/[^\n]{0,60}Not Found[^\n]{0,20}/g)) notFound.push(m[0].trim());
  return {
    cells: md.length,
    displays: md.reduce((n, e) => n + e.querySelectorAll('.katex-display').length, 0),
    katexErrors: [...document.querySelectorAll('.jp-Notebook .katex-error')]
                   .map(e => e.getAttribute('title') || e.textContent.slice(0, 80)),
    raw: [...new Set(raw)],
    notFound: [...new Set(notFound)],
  };
}
"""


@dataclass
class NotebookReport:
    problems: list[str] = field(default_factory=list)
    waited: str = ""
    report: dict = field(default_factory=dict)


async def visit(context, base: str, rel: str) -> NotebookReport:
    out = NotebookReport()
    page = await context.new_page()
    page.on("pageerror", lambda exc: out.problems.append(f"uncaught exception: {exc}"))
    try:
        # ?reset: a fresh workspace, so that the notebooks opened before are not reopened
        await page.goto(f"{base}lab/tree/{quote(rel)}?reset", wait_until="load")
        await page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=NOTEBOOK_TIMEOUT_MS)
        expected = len(markdown_cells(LAB_ROOT / rel))
        out.waited = await page.evaluate(WAIT_RENDERED, [expected, NOTEBOOK_TIMEOUT_MS])
        out.report = await page.evaluate(REPORT)
        shot = SCREENSHOTS / Path(rel).with_suffix(".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        # The notebook scrolls inside its panel: capture the panel's whole height.
        height = await page.evaluate(
            "() => document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer').scrollHeight"
        )
        await page.set_viewport_size({"width": 1280, "height": min(height + 200, 30000)})
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(shot))
    except Exception as exc:  # reported by the notebook's test
        out.problems.append(f"could not check the notebook: {type(exc).__name__}: {exc}")
    finally:
        await page.close()
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutdown_sessions, base)
    return out


async def visit_all(base: str, notebooks: list[str]) -> dict[str, NotebookReport]:
    async with browser_context(CHROMIUM, "gmm-lab-chromium-", NOTEBOOK_TIMEOUT_MS) as context:
        # One notebook at a time: each starts a kernel, on a small machine.
        return {rel: await visit(context, base, rel) for rel in notebooks}


@pytest.fixture(scope="module")
def lab():
    if reason := why_skip():
        pytest.skip(reason)
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    with jupyter_lab(LAB_ROOT) as base:
        reports = asyncio.run(visit_all(base, NOTEBOOKS))
    # What was measured, next to the screenshots, for a person to read.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    summary = {
        rel: dict(r.report, problems=r.problems, waited=r.waited,
                  displays_in_source=display_equations(LAB_ROOT / rel))
        for rel, r in reports.items()
    }  # fmt: skip
    (SCREENSHOTS / "report.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_renders_in_jupyterlab(lab, rel):
    result = lab[rel]
    assert not result.problems, f"{rel}:\n" + "\n".join(result.problems)
    assert not result.waited.startswith("timeout"), f"{rel}: not rendered ({result.waited})"
    r = result.report
    expected = len(markdown_cells(LAB_ROOT / rel))
    assert r["cells"] == expected, f"{rel}: {r['cells']} of {expected} markdown cells rendered"
    assert not r["raw"], f"{rel}: raw MyST markup shown as text: {r['raw']}"
    assert not r["notFound"], f"{rel}: unresolved references: {r['notFound']}"
    assert not r["katexErrors"], f"{rel}: KaTeX errors: {r['katexErrors']}"
    n = display_equations(LAB_ROOT / rel)
    assert r["displays"] >= n, f"{rel}: {r['displays']} of {n} display equations typeset"


# -- the references, written so that JupyterLab resolves them (tools/lab_references.py) --------
def lab_references():
    spec = importlib.util.spec_from_file_location(
        "lab_references", ROOT / "tools" / "lab_references.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_references_are_written_for_jupyterlab(capsys):
    """Cross-chapter {eq} references carry the book's number, citations are links."""
    status = lab_references().main(["--root", str(LAB_ROOT.parent), "--check"])
    assert status == 0, (
        "run `.venv/bin/python tools/lab_references.py` (then re-execute nothing: it changes "
        "markdown cells only):\n" + capsys.readouterr().out
    )


def test_reference_numbers_are_the_books():
    """The numbers tools/lab_references.py writes are those the built book prints."""
    html = ROOT / "_build" / "html"
    if not (html / "intro.html").is_file() or LAB_ROOT != (ROOT / "chapters").resolve():
        pytest.skip("the book is not built (`make book`), or GMM_LAB_ROOT is another copy")
    assert lab_references().main(["--root", str(ROOT), "--verify-html", str(html)]) == 0
