"""nbgrader configuration for the students of the weight-initialization course on a JupyterHub.

jupyterhub_config.py puts this folder on every student server's JUPYTER_CONFIG_PATH, so this file is
read along with the two beside it, which switch off the instructor tools.  Without JupyterHub, install
it as /etc/jupyter/nbgrader_config.py in the student image or as ~/.jupyter/nbgrader_config.py.
Students need only the course id and the exchange; the course directory and the gradebook belong to
the instructors (../../nbgrader_config.py).

    COURSEKIT_EXCHANGE   exchange root (default: /srv/nbgrader/exchange), as for the instructors
"""

import os

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "weight-init"
c.Exchange.root = os.environ.get("COURSEKIT_EXCHANGE", "/srv/nbgrader/exchange")

# Students cannot list the inbound folder, so a submission stays private only as long as its folder
# name cannot be guessed: keep the random suffix nbgrader appends to it (the default, pinned here).
c.ExchangeSubmit.add_random_string = True
