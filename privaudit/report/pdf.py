"""The report as PDF: the HTML printed by headless Chromium (``--print-to-pdf``); no PDF library."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from privaudit.errors import PrivauditError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 180


class BrowserError(PrivauditError):
    """No headless browser to print with, or it failed."""


def find_chromium() -> str:
    """The first of :data:`BROWSERS` on ``PATH``; one line naming them when there is none."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise BrowserError(f"--pdf needs Chromium or Chrome, and none of {', '.join(BROWSERS)} is on PATH; install "
                       f"one (e.g. `apt-get install chromium`) or open the HTML report and print it")


def headless(browser: str, *args: str) -> list[str]:
    """The command line of a headless, sandbox-free (containers run as root) Chromium."""
    return [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
            "--hide-scrollbars", *args]


def print_pdf(html_text: str) -> bytes:
    """``html_text`` (a self-contained page) printed to PDF by headless Chromium (A4, as the page's
    print stylesheet sets it, without the browser's header and footer)."""
    browser = find_chromium()
    with tempfile.TemporaryDirectory(prefix="privaudit-pdf-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        cmd = headless(browser, "--no-pdf-header-footer", f"--user-data-dir={tmp}/profile",
                       f"--print-to-pdf={pdf}", page.as_uri())
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"{browser} did not print the report within {TIMEOUT_S} s") from None
        if not pdf.is_file() or pdf.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BrowserError(f"{browser} could not print the report (exit {done.returncode}): {last}")
        return pdf.read_bytes()
