"""LLM Lab's grading tooling around nbgrader.

- ``python -m autograder release [weekNN]``   regenerate ``weeks/`` from ``solutions/``
- ``python -m autograder check NOTEBOOK``      grade one learner notebook, hidden tests included
- ``python -m autograder roundtrip NOTEBOOK``  instructor check: solution = full marks, release = 0
- ``python -m autograder grade SUBMISSIONS``   grade a folder of students into a CSV
- ``python -m autograder normalize NOTEBOOK``  clear outputs, set the kernel, lint nbgrader metadata
"""
