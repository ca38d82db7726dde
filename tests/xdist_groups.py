"""Groups of tests for pytest-xdist: the tests of one group run one after another on one worker.

xdist's ``--dist loadgroup`` passes each test's ``xdist_group`` to the controller by appending
``@group`` to the node id on the worker; pytest 9.2's structured node ids drop that suffix, so the
groups are lost without a word (pytest-dev/pytest-xdist#1386). Here every worker writes the group
of each test to a file (the same file, the same content: all workers collect the same tests), and
the controller's scheduler reads it: node ids stay as they are. Groups are handed out in collection
order (``tests/conftest.py`` sorts the items), never reordered by size.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling


def write_groups(path: str | Path, groups: dict[str, str]) -> None:
    """Publish ``{node id: group}`` atomically (workers write it side by side)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".groups-")
    with os.fdopen(fd, "w") as f:
        json.dump(groups, f)
    os.replace(tmp, path)


class GroupScheduling(LoadScopeScheduling):
    """xdist's load-by-scope scheduling, where a scope is the group named in ``path``."""

    def __init__(self, config, log=None, path: str | Path = ""):
        super().__init__(config, log)
        self.path = Path(path)
        self.groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self.groups is None:  # first called once every worker has finished collecting
            self.groups = json.loads(self.path.read_text()) if self.path.exists() else {}
        if nodeid.rfind("@") > nodeid.rfind("]"):  # a pytest that still honours xdist's own suffix
            nodeid = nodeid[:nodeid.rfind("@")]
        return self.groups.get(nodeid, nodeid)
