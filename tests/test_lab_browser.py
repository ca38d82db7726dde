"""The JupyterLab path in a real browser: Debian's chromium, driven by playwright (no browser downloads).

JupyterLab starts on 127.0.0.1 from the repository root (so ``nbgrader_config.py`` is read) with a
temporary copy of ``weeks/week01/01_attention.ipynb``; the browser opens it, runs all cells, clicks
nbgrader's Validate button and reads the dialog: the untouched notebook must fail validation with
the names of the cells to fill in. The screenshot goes to ``tmp/artifacts/lab_validate.png``.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from autograder.course import REPO, RELEASE, SOLUTIONS, TempCourse
from labserver import running_lab

NOTEBOOK = Path("week01/01_attention.ipynb")
CHROMIUM = os.environ.get("LLMLAB_CHROMIUM", "/usr/bin/chromium")
# the flags that work in containers without a GPU or a user namespace for chromium's own sandbox
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
ARTIFACTS = REPO / "tmp" / "artifacts"
pytestmark = [pytest.mark.notebooks, pytest.mark.serial]  # a JupyterLab server (and a browser): the serial group


def _release_copy(dest: Path) -> Path:
    """The learner's notebook: weeks/ when released, else a fresh release of the source notebook."""
    target = dest / NOTEBOOK
    target.parent.mkdir(parents=True)
    if (RELEASE / NOTEBOOK).exists():
        shutil.copy(RELEASE / NOTEBOOK, target)
    elif (SOLUTIONS / NOTEBOOK).exists():
        with TempCourse({"week01": [NOTEBOOK.stem]}) as c:
            c.generate("week01")
            shutil.copy(c.root / "weeks" / NOTEBOOK, target)
    else:
        pytest.skip(f"{NOTEBOOK} is neither released nor in solutions/")
    return target


@pytest.fixture
def lab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
                    ".ci/run does this in CI")
    pytest.importorskip("playwright.sync_api", reason="pip package playwright (requirements.txt) not installed")
    root = tmp_path / "root"
    _release_copy(root)
    # lab settings for the test: render every cell (JupyterLab 4 only puts the visible ones in the page)
    # and no news pop-up over the notebook
    settings = tmp_path / "lab-settings"
    for ext, name, value in [("notebook-extension", "tracker", {"windowingMode": "none"}),
                             ("apputils-extension", "notification", {"fetchNews": "false"})]:
        f = settings / "@jupyterlab" / ext / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    with running_lab(root, tmp_path / "lab.log", f"--LabApp.user_settings_dir={settings}",
                     f"--LabApp.workspaces_dir={tmp_path / 'ws'}", env={"LLMLAB_FAST": "1"}, start_timeout=120) as server:
        yield server


def test_validate_button_in_chromium(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lab_validate.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            # the notebook is open and its kernel ("Python (LLM Lab)") has started and is idle (the
            # status bar says so only once the kernel is connected; the toolbar indicator says idle early)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.get_by_text("Python (LLM Lab) | Idle").first.wait_for(timeout=300_000)
            # Run > Run All Cells
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            # it runs until the first fill-in cell raises NotImplementedError, then the kernel is idle again
            page.locator(".jp-OutputArea-output", has_text="NotImplementedError").first.wait_for(timeout=300_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=300_000)
            # nbgrader's Validate button (saves, then validates on the server with nbgrader_config.py)
            page.locator(".validate-button").first.click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=600_000)
            text = dialog.inner_text()
            page.screenshot(path=str(shot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab_failure.png"))  # what the browser showed when it failed
            raise
        finally:
            browser.close()
    print(f"Validate dialog:\n{text[:1500]}\nscreenshot: {shot}")
    # nbgrader's dialog: the first test cell fails because its answer cell is not filled in yet
    assert "Validation Results" in text and "failed" in text, text
    assert "NotImplementedError" in text, text
    assert shot.stat().st_size > 10_000
