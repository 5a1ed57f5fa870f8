"""Hidden tests: how coursekit recognises them, and the nbgrader preprocessor that keeps them out
of feedback.

Stock ``nbgrader generate_feedback`` renders the autograded notebook, in which the hidden tests
were put back from the gradebook: their code is shown, and a failing hidden test's traceback
echoes its source lines and, for ``np.testing.assert_allclose``, the expected values at full
precision.  Students pass feedback on to next year's class, so the feedback must say which test
failed and why, and nothing more.

``HideHiddenTests`` is an nbgrader preprocessor: ``coursekit feedback`` runs it on any course
whose ``GenerateFeedback.preprocessors`` does not already remove hidden tests, and a course may
list it there itself (``"coursekit.hidden.HideHiddenTests"``) so that ``nbgrader
generate_feedback`` does the same.  For every cell that holds a hidden-test region it

* removes the region, as ``nbgrader generate_assignment`` does for the release
  (it reuses ``ClearHiddenTests`` for that), so the cell reads as the student saw it;
* replaces each error output by one line, ``<Error>: <first line of the message>``,
  plus a note that the test's code is not shown (no traceback, no full message).

Cells the student added have their outputs removed: they run after the hidden
tests were restored and could print what those tests defined.  Printed text is
cut to ``max_output_chars`` per cell: nbgrader's LimitOutput counts lines, so a
single enormous line would otherwise go into the feedback page whole.
"""

from __future__ import annotations

from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Integer, List

# What starts a hidden-test region: nbgrader's default (ClearHiddenTests.begin_test_delimeter).
HIDDEN_MARK = ClearHiddenTests.class_traits()["begin_test_delimeter"].default_value
HIDDEN_NOTE = "(This is a hidden test: its code and data are not shown.)"
ADDED_CELL_NOTE = "(Outputs of cells you added are not included in feedback.)"


class HideHiddenTests(ClearHiddenTests):
    """Strip hidden-test code and the details of its failures from feedback notebooks."""

    # HTMLExporter configures this for every preprocessor; declaring it as
    # configurable, as nbgrader's GetGrades does, keeps nbconvert from warning.
    display_data_priority: List[Any] = List().tag(config=True)

    max_message = Integer(
        200, help="Longest error message kept for a failed hidden test, in characters."
    ).tag(config=True)

    max_output_chars = Integer(
        20_000, help="Printed text kept per cell in feedback, in characters."
    ).tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type != "code":
            return cell, resources
        if "nbgrader" not in cell.metadata:
            if cell.outputs:
                cell.outputs = [_stream(ADDED_CELL_NOTE)]
            return cell, resources
        if self._remove_hidden_test_region(cell):
            cell.outputs = [self._summarise(o) if o.output_type == "error" else o for o in cell.outputs]
        self._cut_streams(cell)
        return cell, resources

    def _cut_streams(self, cell: NotebookNode) -> None:
        budget = self.max_output_chars
        for output in cell.outputs:
            if output.output_type == "stream":
                if len(output.text) > budget:
                    hidden = len(output.text) - budget
                    output.text = output.text[:budget] + f"\n... {hidden} more characters not shown ...\n"
                budget = max(budget - len(output.text), 0)

    def _summarise(self, error: NotebookNode) -> NotebookNode:
        message = first_line(error.get("evalue", ""), self.max_message)
        summary = f"{error.ename}: {message}" if message else error.ename
        return NotebookNode(output_type="error", ename=error.ename, evalue=message,
                            traceback=[summary, HIDDEN_NOTE])


def _stream(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text + "\n")


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of ``text``, cut to ``limit`` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
