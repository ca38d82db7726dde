"""Start a real JupyterLab server for a test (shared by test_lab.py and test_lab_browser.py)."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autograder.course import REPO
from llmlab.systems.distributed import free_port


@contextlib.contextmanager
def running_lab(root: Path, log_path: Path, *extra_args: str, env: dict | None = None, start_timeout: float = 120):
    """Yield ``(base_url, token)`` of ``jupyter lab`` serving ``root``, started from the repository root
    (so nbgrader's Validate reads ``nbgrader_config.py``); stop it afterwards."""
    port, token = free_port(), "llmlab-test"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
             "--allow-root", *extra_args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("jupyter lab did not start:\n" + Path(log_path).read_text()[-3000:])
                time.sleep(0.5)
        try:
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
