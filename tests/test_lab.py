"""The JupyterLab path: the server that `make lab` starts answers nbgrader's Validate button.

The button POSTs the notebook path to ``/assignments/validate``; the server extension validates it
with the configuration in ``nbgrader_config.py`` (read from the server's working directory, the
repository root). Here a real server is started on 127.0.0.1 and the same request is sent.
(A full browser test that clicks the button is issue-4 work.)
"""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autograder.course import REPO, RELEASE, SOLUTIONS

NOTEBOOK = Path("week01/01_attention.ipynb")
pytestmark = pytest.mark.notebooks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    if not (RELEASE / NOTEBOOK).exists():
        pytest.skip(f"{NOTEBOOK} not released yet")
    root = tmp_path / "root"
    (root / "untouched").mkdir(parents=True)
    (root / "solved").mkdir()
    shutil.copy(RELEASE / NOTEBOOK, root / "untouched" / NOTEBOOK.name)
    shutil.copy(SOLUTIONS / NOTEBOOK, root / "solved" / NOTEBOOK.name)
    port, token = _free_port(), "llmlab-test"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False", "--allow-root"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("jupyter lab did not start")
    yield base, token
    proc.terminate()
    proc.wait(timeout=30)


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
