"""The JupyterLab path: the server that `make lab` starts answers nbgrader's Validate button.

The button POSTs the notebook path to ``/assignments/validate``; the server extension validates it
with the configuration in ``nbgrader_config.py`` (read from the server's working directory, the
repository root). Here a real server is started on 127.0.0.1 and the same request is sent.
(tests/test_lab_browser.py clicks the same button in a real browser.)
"""

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from autograder.course import RELEASE, SOLUTIONS
from labserver import running_lab

NOTEBOOK = Path("week01/01_attention.ipynb")
pytestmark = [pytest.mark.notebooks, pytest.mark.serial]  # a JupyterLab server (and a browser): the serial group


@pytest.fixture
def lab(tmp_path):
    if not (RELEASE / NOTEBOOK).exists():
        pytest.skip(f"{NOTEBOOK} not released yet")
    root = tmp_path / "root"
    (root / "untouched").mkdir(parents=True)
    (root / "solved").mkdir()
    shutil.copy(RELEASE / NOTEBOOK, root / "untouched" / NOTEBOOK.name)
    shutil.copy(SOLUTIONS / NOTEBOOK, root / "solved" / NOTEBOOK.name)
    with running_lab(root, tmp_path / "lab.log") as server:
        yield server


def _validate(base, token, path):
    req = urllib.request.Request(f"{base}/assignments/validate?token={token}", data=json.dumps({"path": path}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def test_lab_serves_the_validate_button(lab):
    base, token = lab
    with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as r:
        assert r.status == 200
    untouched = _validate(base, token, f"untouched/{NOTEBOOK.name}")
    assert untouched["success"] and "failed" in untouched["value"], untouched
    solved = _validate(base, token, f"solved/{NOTEBOOK.name}")
    assert solved == {"success": True, "value": {}}, solved
