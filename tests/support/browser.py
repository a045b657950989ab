"""The page tests' headless Chromium (Debian's, driven by Playwright), one set-up for all."""
import contextlib
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
# no network beyond loopback, no background services: the page talks only to the test server
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} is not installed (apt-get install chromium)")


@contextlib.contextmanager
def page_at(url: str):
    """A new page at ``url``; the browser is closed on the way out."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()
