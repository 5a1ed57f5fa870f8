"""nbgrader configuration of an instructor's own server on the hub: the students' one, tools kept.

jupyterhub_config.py puts this folder on the JUPYTER_CONFIG_PATH of every member of the instructors'
group.  Same course id and exchange as the students (an instructor can fetch and submit to try the
assignment), and every nbgrader tool stays on: Create Assignment, Formgrader, Course List.  Grading
itself happens in the course folder, through the formgrader service (see jupyterhub_config.py).
"""

from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

load_subconfig(str(Path(__file__).resolve().parent.parent / "student" / "nbgrader_config.py"))  # noqa: F821
