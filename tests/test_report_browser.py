"""The report in a real browser: headless Chromium (its command line, no driver) opens the digits
report (a user's target model) and a run with every study and a DP audit; the rendered DOM has
every section, every image loaded and no console error; full-page screenshots are kept in
``/tmp/report_screens/``; ``privaudit report --pdf`` prints a PDF. Skipped only without Chromium."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from privaudit.report.pdf import BROWSERS, headless
from privaudit.runtime.run import Layout, Run
from test_report import FULL, OWN, Report, check_report, cli, user_target, write_config

CHROMIUM = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); "
                                                         f".ci/run installs it")
SCREENS = Path("/tmp/report_screens")
EVERY_SECTION = {"verdict", "utility", "attacks", "slices", "vulnerable", "curvature", "memorization", "dynamics",
                 "dp-audit", "configuration", "environment"}


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with its console messages on stderr."""
    cmd = headless(CHROMIUM, "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def console_errors(stderr: str) -> list[str]:
    """Lines of page script errors or console messages (the report's script logs nothing)."""
    return [line for line in stderr.splitlines() if "Uncaught" in line or ":CONSOLE" in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """``digits``: a user's target model audited on digits; ``full``: canaries, DP-SGD, checkpoints
    and curvature, then every study and the DP audit."""
    folder = tmp_path_factory.mktemp("browser")
    cli("run", write_config(folder, OWN | {"name": "digits", "target": user_target(folder, OWN | {"name": "digits"})}))
    full = FULL | {"curvature": {"estimator": "zero_order", "rounds": 2, "mirror": False},
                   "attacks": ["loss", "lira_online", "lira_offline", "rmia_online", "curv_zo_nll"]}
    cli("run", write_config(folder, full))
    run_dir = folder / "runs" / "full"
    cli("memorization", run_dir, "--bootstrap", "20", "--repeats", "1")
    cli("dynamics", run_dir, "--bootstrap", "20")
    cli("audit", run_dir, "--samples", "canaries")
    return {"digits": Run.open(folder / "runs" / "digits"), "full": Run.open(run_dir)}


@pytest.mark.parametrize("name, sections", [("digits", EVERY_SECTION - {"curvature", "memorization", "dynamics",
                                                                         "dp-audit"} | {"target"}),
                                            ("full", EVERY_SECTION)])
def test_the_report_renders_in_chromium(runs, name, sections, tmp_path):
    run = runs[name]
    source = check_report(run)
    page = run.path(Layout.report).as_uri()
    dom = chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = Report(dom.stdout)
    assert sections <= set(rendered.sections), sorted(sections - set(rendered.sections))
    assert rendered.body.get("data-images-ok") == "true", rendered.body        # every <img> decoded
    assert int(rendered.body["data-images"]) == source.images > 0
    assert not console_errors(dom.stderr), console_errors(dom.stderr)
    height = min(int(rendered.body["data-height"]), 16000)
    shot = tmp_path / f"{name}.png"
    done = chromium(tmp_path / "profile", "--hide-scrollbars", f"--screenshot={shot}", f"--window-size=1280,{height}",
                    page)
    assert shot.is_file(), done.stderr[-2000:]
    assert not console_errors(done.stderr), console_errors(done.stderr)
    with Image.open(shot) as image:
        assert image.size == (1280, height) and len(image.convert("L").getcolors(1 << 16)) > 50   # not blank
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENS / f"{name}.png")


def test_the_pdf_is_printed_by_chromium(runs):
    run = runs["full"]
    t0 = time.perf_counter()
    output = cli("report", run.root, "--pdf")
    seconds = time.perf_counter() - t0
    pdf = run.read_bytes(Layout.report_pdf())
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page") > 3
    assert "pdf: " in output
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(run.path(Layout.report_pdf()), SCREENS / "full.pdf")
    print(f"report + PDF in {seconds:.1f} s ({len(pdf) / 1e6:.1f} MB)")
    assert seconds < 120
