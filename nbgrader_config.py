"""nbgrader configuration of the weight-initialization course.

Paths are relative to this folder, so the course works wherever it is cloned.
Environment variables let a JupyterHub admin point the exchange and the gradebook
elsewhere without editing this file:

    COURSEKIT_EXCHANGE   exchange root (default: /srv/nbgrader/exchange)
    COURSEKIT_GRADEBOOK  SQLAlchemy URL of the gradebook
                         (default: sqlite:///<this folder>/gradebook.db)
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "weight-init"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.db_url = os.environ.get("COURSEKIT_GRADEBOOK", f"sqlite:///{HERE / 'gradebook.db'}")
c.Exchange.root = os.environ.get("COURSEKIT_EXCHANGE", "/srv/nbgrader/exchange")


# What a student sees in place of each solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell that runs longer than this is stopped and the notebook carries on;
# all three trainings together take a few seconds.
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.interrupt_on_timeout = True
