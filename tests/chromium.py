"""Debian's Chromium for the browser tests (tests/book/test_browser.py and test_lab.py).

Where it is, the flags it runs with, and a headless Playwright context in a throwaway
profile: what both tests need and neither should write twice. Importing this module
imports no Playwright (the tests skip themselves when it is missing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import asynccontextmanager

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """The Chromium binary: $CHROMIUM, or chromium / chromium-browser on the PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@asynccontextmanager
async def browser_context(executable: str, profile_prefix: str, timeout_ms: int):
    """A headless Chromium context (1280 × 900, no service workers) in a fresh profile.

    The profile directory is removed afterwards, and the context closed, whatever
    happens inside.
    """
    from playwright import async_api

    user_data_dir = tempfile.mkdtemp(prefix=profile_prefix)
    try:
        async with async_api.async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                user_data_dir,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
                service_workers="block",
            )
            context.set_default_timeout(timeout_ms)
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(user_data_dir, ignore_errors=True)
