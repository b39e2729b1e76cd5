"""The course in a real browser: JupyterLab in headless Chromium, all cells run from the UI.

Needs Debian's `chromium` (Playwright drives it; browsers are never downloaded). Without
it the tests skip with the reason, unless DPCOURSE_REQUIRE_BROWSER=1 (set by CI), which
turns the skip into a failure. Screenshots go to test-output/browser/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import running_lab

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: The kernel-status indicator of the notebook on screen, once its kernel is idle.
IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle'] >> visible=true"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def lab_copy(tmp_path_factory):
    """`make lab` serving a copy of notebooks/: JupyterLab autosaves what it runs, and the
    committed lessons must stay without outputs."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    with running_lab(root / "lab.log", root_dir=root / "notebooks") as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        reason = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("DPCOURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and DPCOURSE_REQUIRE_BROWSER=1 requires the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def run_all_cells(page, url: str, timeout_s: int = 240) -> None:
    """Open ``url``, wait for the kernel, run every cell through the Run menu, wait idle."""
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
    accept_kernel_dialog(page)
    page.wait_for_selector(IDLE, timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # Queued and running cells show "[*]"; done when none does and one has a count (after
    # an error JupyterLab clears the rest of the queue, which assert_no_errors reports).
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const texts = prompts.map(p => p.textContent);
            return texts.some(t => /\\[\\d+\\]/.test(t)) && !texts.some(t => t.includes('*'));
        }""",
        timeout=timeout_s * 1000,
    )
    page.wait_for_selector(IDLE, timeout=60_000)


def accept_kernel_dialog(page) -> None:
    """If JupyterLab asks for a kernel (it can, when the page loads before the server has
    listed its kernel specs), accept its preselection, which must be the course kernel."""
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=5_000)
    except Exception:  # no dialog: the usual case
        return
    assert "Python 3 (ipykernel)" in dialog.inner_text()
    dialog.get_by_role("button", name="Select").click()


def assert_no_errors(page) -> None:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()[:2000]


def open_lesson(browser, lab_copy, notebook: str):
    port, token = lab_copy
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        run_all_cells(page, f"http://127.0.0.1:{port}/lab/tree/{notebook}?reset&token={token}")
    except Exception:
        screenshot(page, f"{Path(notebook).stem}-failed")
        raise
    return page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    return path


def test_welcome_runs_in_jupyterlab(browser, lab_copy):
    page = open_lesson(browser, lab_copy, "00_welcome.ipynb")
    assert_no_errors(page)
    ready = page.get_by_text("Everything is ready.")
    ready.scroll_into_view_if_needed()
    assert ready.is_visible()
    assert page.locator(".jp-Dialog").count() == 0, "no kernel-selection or other dialog"
    screenshot(page, "00_welcome")


def test_noise_lesson_shows_a_figure_and_a_widget(browser, lab_copy):
    page = open_lesson(browser, lab_copy, "03_adding_noise.ipynb")
    assert_no_errors(page)
    figures = page.locator(".jp-OutputArea-output img")
    assert figures.count() >= 2
    slider = page.locator(".jupyter-widgets .widget-slider, .jupyter-widgets input[type='range']")
    assert slider.count() >= 1, "the interactive view must render its sliders"
    slider.first.scroll_into_view_if_needed()
    assert slider.first.is_visible()
    screenshot(page, "03_adding_noise")
