"""nbgrader's Execute step, made robust for real classrooms (the course's ``Autograde`` uses this class).

On top of nbgrader's ``Execute``:

- **Sandbox** (``sandbox = True``): the kernel runs in ``autograder.sandbox`` with a fresh scratch
  copy of the submission's folder as its working directory; whatever it writes there is thrown away.
- **Hung or dead kernels do not sink the notebook.** nbgrader drops the whole submission when a cell
  ignores the interrupt (a loop that catches or ignores SIGINT) or kills the kernel (``os._exit``, a
  crash, the memory or CPU limit). Here that cell gets an error output that says what happened, the
  kernel is killed and restarted, the cells that ran before it are run again (outputs discarded) to
  rebuild the state, and grading goes on with the next cell. The offending cell, and the tests that
  depend on it, get no points; the other cells are graded as usual: the same grade an ordinary,
  interruptible infinite loop gets. A replay never re-runs a cell that was judged harmful (it ran
  out of time, stopped the kernel or left processes behind).
- **Processes a cell leaves behind** (a fork bomb whose children sleep, a pool never closed) are
  killed before the next cell runs, and before any restart: that cell gets an error output, "the cell
  started N processes that did not exit (limit M)", and no points; the next cells run as usual.
- **Time.** Each cell keeps its limit (``solutions/timeouts.toml`` via ``autograder/timeouts.py``), capped by ``Limits.cell_timeout_s``
  and by what is left of the notebook's wall limit; cells past the wall limit are not run.
- **Output.** At most ``Limits.output_mb`` of output is kept per notebook; the rest is cut with a note.
- **stderr in graded cells.** nbgrader gives 0 to a test cell that wrote anything to stderr, so a
  library warning raised inside a learner's correct function would cost the points. In a graded cell
  that *passed* (no error output), stderr text is kept but relabelled as ``[stderr]`` lines on stdout;
  a test cell that raises still fails.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Dict, Integer, List

from nbgrader.preprocessors import Execute

from .sandbox import IpcKernelManager, Limits, SandboxKernelManager, make_scratch, mechanisms, remove_tree
from .timeouts import notebook_key, timeout_for

MAX_RESTARTS = 5


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def is_graded(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


class GradingExecute(Execute):
    sandbox = Bool(False, help="run the kernel in autograder.sandbox").tag(config=True)
    limits = Dict({}, help="autograder.sandbox.Limits fields").tag(config=True)
    sandbox_uid = Integer(None, allow_none=True, help="the unprivileged uid of this grading worker").tag(config=True)
    sandbox_cpus = List(Integer(), help="CPU cores this worker's kernels may use (empty: all)").tag(config=True)

    # ------------------------------------------------------------------ notebook
    def preprocess(self, nb, resources=None, km=None):
        self._limits = Limits.from_dict(self.limits)
        self._deadline = time.monotonic() + self._limits.wall_s
        self._out_bytes = 0
        self._cut_cells: set[int] = set()
        self._ran: list[int] = []  # cells that ran to the end (replayed after a restart)
        self._restarts = 0
        self._dead_reason = ""
        self._marked = None  # the kernel manager whose own processes are known (see SandboxKernelManager.mark_kernel)
        self.iopub_timeout = max(1, int(math.ceil(self._limits.interrupt_grace_s)))
        scratch = None
        if self.sandbox:
            resources = resources if resources is not None else {}
            meta = resources.setdefault("metadata", {})
            src = meta.get("path") or "."
            scratch = make_scratch(src, self.sandbox_uid if mechanisms().uid else None)
            meta["path"] = str(scratch)
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if scratch is not None:
                resources["metadata"]["path"] = src
                remove_tree(Path(scratch))

    def create_kernel_manager(self):
        self.kernel_manager_class = SandboxKernelManager if self.sandbox else IpcKernelManager
        km = super().create_kernel_manager()
        if isinstance(km, SandboxKernelManager):
            km.configure_sandbox(self._limits, self.sandbox_uid, list(self.sandbox_cpus) or None)
        return km

    # ------------------------------------------------------------------ cells
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._dead_reason:
            cell.outputs = [error_output("NotRun", f"not run: {self._dead_reason}")]
            return cell, resources
        if self._deadline - time.monotonic() <= 0:
            cell.outputs = [error_output("NotRun", f"not run: the notebook used up its time limit "
                                                   f"({self._limits.wall_s:g} s for all cells)")]
            return cell, resources
        self._mark_kernel()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as e:
            self._kernel_lost(cell, index, e)
        else:
            left = self._kill_leftovers(cell)
            timed_out = any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", []))
            if not left and not timed_out:
                self._ran.append(index)  # replayed after a restart; harmful cells never are
        self._relabel_stderr(cell)
        return cell, resources

    def _mark_kernel(self):
        if isinstance(self.km, SandboxKernelManager) and self._marked is not self.km:
            self.km.mark_kernel()
            self._marked = self.km

    def _kill_leftovers(self, cell=None) -> int:
        """Kill what the cell left running; say so in the cell (which then gets no points)."""
        if not isinstance(self.km, SandboxKernelManager):
            return 0
        n = self.km.kill_leftovers()
        if n and cell is not None:
            msg = (f"the cell started {n} process{'es' if n > 1 else ''} that did not exit (limit "
                   f"{self._limits.nproc}); they were killed before the next cell ran, and this cell gets no points")
            cell.outputs.append(error_output("LeftoverProcesses", msg))
            self.log.warning("%s", msg)
        return n

    def _get_timeout(self, cell):
        # the course's limit for this cell of this notebook (grade ids repeat across notebooks)
        timeout = (timeout_for(cell, notebook_key(getattr(self, "resources", None))) if cell is not None
                   else super()._get_timeout(cell))
        caps = [self._deadline - time.monotonic()]
        if self._limits.cell_timeout_s:
            caps.append(self._limits.cell_timeout_s)
        cap = max(1, int(math.ceil(min(caps))))
        return cap if timeout is None else min(timeout, cap)

    async def _async_handle_timeout(self, timeout, cell=None):
        reply = await super()._async_handle_timeout(timeout, cell)
        if reply is not None:
            msg = f"the cell ran longer than its time limit ({timeout} s) and was interrupted"
            reply["content"].update(ename="CellTimeoutError", evalue=msg, traceback=[f"CellTimeoutError: {msg}"])
        return reply

    def _kernel_lost(self, cell, index, exc):
        """The cell hung past the interrupt, or the kernel died: note it, restart, replay, go on."""
        if isinstance(exc, DeadKernelError):
            why = self.km.death_reason() if isinstance(self.km, IpcKernelManager) else "the kernel died"
            ename, msg = "KernelDied", f"the kernel stopped while running this cell: {why}"
        else:
            limit = self._get_timeout(cell)
            ename, msg = ("CellTimeoutError", f"the cell ran past its time limit (~{limit} s) and ignored the "
                                              "interrupt, so the kernel was stopped")
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
        cell.outputs.append(error_output(ename, msg + "; this cell gets no points, the rest of the notebook "
                                                       "was graded in a fresh kernel"))
        self.log.warning("cell %d: %s", index, msg)
        self._kill_leftovers(cell)  # before the restart: nothing of this kernel survives into the next one
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            self._dead_reason = f"the kernel was stopped {MAX_RESTARTS} times; grading of this notebook stopped"
            return
        try:
            self._restart_kernel()
            self._replay()
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the remaining cells are not run
            self._dead_reason = f"the kernel could not be restored after cell {index} ({type(e).__name__}: {e})"

    def _restart_kernel(self):
        saved, self.shutdown_kernel = self.shutdown_kernel, "immediate"  # it is hung or dead: no polite request
        try:
            self._cleanup_kernel()
        finally:
            self.shutdown_kernel = saved
        self.km = self.create_kernel_manager()
        self.start_new_kernel()
        self.start_new_kernel_client()
        self.wait_for_reply(self.kc.kernel_info())
        self._mark_kernel()

    def _replay(self):
        """Run the cells that had finished before, again, discarding their outputs."""
        for index in list(self._ran):
            original = self.nb.cells[index]
            try:
                self.execute_cell(copy.deepcopy(original), index, store_history=False)
            finally:
                self.nb.cells[index] = original
                self._kill_leftovers()

    # ------------------------------------------------------------------ outputs
    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
        if msg.get("msg_type") != "error" and self._out_bytes + size > self._limits.output_mb * 1024 * 1024:
            if cell_index not in self._cut_cells:
                self._cut_cells.add(cell_index)
                outs.append(NotebookNode(output_type="stream", name="stdout", text=(
                    f"\n... output cut: the notebook printed more than {self._limits.output_mb:g} MB ...\n")))
            return None
        self._out_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    @staticmethod
    def _relabel_stderr(cell):
        if not is_graded(cell) or any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out["name"] = "stdout"
                out["text"] = "".join(f"[stderr] {line}" for line in out["text"].splitlines(True))
