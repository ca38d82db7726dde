"""The course's nbgrader configuration, shared by ``nbgrader_config.py`` and the autograder CLI.

Layout: ``solutions/<weekNN>/`` is nbgrader's source directory, ``weeks/<weekNN>/`` its release
directory; one nbgrader assignment per week.
"""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

from .timeouts import timeout_for

COURSE_ID = "llmlab"
KERNEL_NAME = "llmlab"

# Every kernel that nbgrader starts (autograde, the lab's Validate button) runs in FAST mode, offline,
# with the warnings that libraries print on import silenced: a test cell must not write to stderr.
KERNEL_ARGS = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import os; os.environ['LLMLAB_FAST'] = '1'; os.environ.setdefault('HF_HUB_OFFLINE', '1');"
    " os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')",
]


def apply(c: Config, root: str | Path = ".", db_url: str | None = None) -> Config:
    c.CourseDirectory.root = str(Path(root).resolve())
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "weeks"
    if db_url is not None:
        c.CourseDirectory.db_url = db_url
    # files besides notebooks that a week ships (data, images); never copy caches or checkpoints
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.pt", "runs", "out"]
    c.CourseDirectory.max_file_size = 1000  # kB: refuse to copy large files into releases/submissions

    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearOutput.enabled = True

    c.Execute.timeout = 60
    c.Execute.timeout_func = timeout_for
    c.Execute.interrupt_on_timeout = True
    c.Execute.extra_arguments = list(KERNEL_ARGS)
    c.Execute.kernel_name = KERNEL_NAME

    # nbgrader's Execute step, made robust (autograder/execute.py): hung or dead kernels are restarted
    # and the notebook graded on, stderr in a passing test cell costs nothing, output is capped; the
    # sandbox is switched on by `python -m autograder grade` (c.GradingExecute.sandbox = True)
    c.Autograde.autograde_preprocessors = [
        "autograder.execute.GradingExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]

    # deleted or stripped test cells are put back from the gradebook, not silently scored 0
    c.OverwriteCells.add_missing_cells = True
    # feedback never shows hidden tests: not in the sources, and not in tracebacks either
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "nbgrader.preprocessors.ClearHiddenTests",
        "autograder.feedback.ShortTracebacks",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    c.Exchange.assignment_dir = str(Path(root).resolve())
    return c
