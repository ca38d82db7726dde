"""A three-cell toy course for testing the grading tools without the real (slow) notebooks."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def meta(grade_id, *, solution=False, grade=False, points=None):
    m = {"schema_version": 3, "grade": grade, "solution": solution, "locked": not solution, "task": False,
         "grade_id": grade_id}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def answer(name, body):
    return new_code_cell(f"def {name}(a, b):\n    # TODO\n    ### BEGIN SOLUTION\n    return {body}\n    ### END SOLUTION",
                         metadata=meta(f"{name}_impl", solution=True))


def test(name, visible, hidden, points, plain=False):
    head = "" if plain else "from llmlab.testing import check\n"
    src = (f"{head}{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS")
    return new_code_cell(src, metadata=meta(f"test_{name}", grade=True, points=points))


def toy_notebook(add_body="a + b", plain=False):
    """The toy course notebook. ``plain=True``: tests use bare ``assert`` (the kernel never imports
    torch, so a grading run takes about a second: the hostile-submission tests use it)."""
    if plain:
        def t(name, call, want, hidden_call, hidden_want):
            return test(name, f"assert {call} == {want}, '{call} is wrong'",
                        f"assert {hidden_call} == {hidden_want}, 'hidden: {hidden_call}'", 2, plain=True)
        tests = [t("add", "add(1, 2)", 3, "add(10, 5)", 15), t("mul", "mul(2, 3)", 6, "mul(4, 5)", 20),
                 t("sub", "sub(3, 1)", 2, "sub(1, 3)", -2)]
    else:
        tests = [
            test("add", "check(add(1, 2) == 3, 'add(1, 2) is wrong', expected=3, got=add(1, 2), "
                        "hint='used - instead of +')", "check(add(10, 5) == 15, 'hidden: add(10, 5)')", 2),
            test("mul", "check(mul(2, 3) == 6, 'mul(2, 3) is wrong')", "check(mul(4, 5) == 20, 'hidden: mul(4, 5)')", 2),
            test("sub", "check(sub(3, 1) == 2, 'sub(3, 1) is wrong')", "check(sub(1, 3) == -2, 'hidden: sub(1, 3)')", 2),
        ]
    nb = new_notebook(cells=[
        new_markdown_cell("# Toy\n**目标 / Goals** add\n\n**任务 / Tasks** add\n\n**验收 / Acceptance** 6 points"),
        answer("add", add_body), tests[0],
        answer("mul", "a * b"), tests[1],
        answer("sub", "a - b"), tests[2],
    ])
    nb.metadata["kernelspec"] = {"name": "llmlab", "display_name": "Python (LLM Lab)", "language": "python"}
    return nb


def make_course(root: Path, plain: bool = False) -> Path:
    """solutions/week01/toy.ipynb under root; returns the solutions folder."""
    solutions = root / "solutions"
    (solutions / "week01").mkdir(parents=True)
    nbformat.write(toy_notebook(plain=plain), solutions / "week01" / "toy.ipynb")
    return solutions


def with_cells(nb, **sources):
    """A copy of ``nb`` whose cells (by grade id) have new sources, e.g. ``add_impl="def add(a, b): ..."``."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in sources:
            cell.source = sources[gid]
    return nb
