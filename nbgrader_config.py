# nbgrader reads this file from the course root (this folder): `nbgrader generate_assignment week01`,
# `nbgrader autograde week01`, the JupyterLab Validate button and the formgrader all use it.
# The settings live in autograder/nbconfig.py so that the course's CLI uses the very same ones.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autograder.nbconfig import apply  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
apply(c, root=os.path.dirname(os.path.abspath(__file__)))
