"""nbgrader configuration of a small second course, written for the tests (issue 12).

It is not the weight-initialization course: a string exercise and a statistics exercise in
two notebooks, with graded functions that call each other, a graded variable, a test that
deletes a name, a helper defined in a locked cell and a manually graded answer.  The tests
copy this folder into a temporary course and run the real `nbgrader generate_assignment`.
"""

from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "textstats-course"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ExecutePreprocessor.timeout = 60
