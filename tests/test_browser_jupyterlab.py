"""What a student sees in JupyterLab: a real `jupyter lab` server on a copy of the release, driven
through Debian's Chromium by Playwright.

The tests run in order on one page, as one student session: open the notebook and run it with the
stubs, type the three solutions into the editor, run again, move the explorer's slider, validate with
nbgrader's button.  The server runs with a student's configuration: nbgrader's instructor extensions
(create-assignment, formgrader, course-list) are disabled the way nbgrader's installation guide says,
in the test's own temporary Jupyter config folder.  Screenshots go to test-artifacts/; `make
screenshot` also copies the one of the solved He exercise to docs/jupyterlab.png and the one of the
explorer to docs/explorer.png, which README shows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.pg_server import free_port
from scripts.student_work import CORRECT, solved_cell
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium, run_cell, student_lab

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT_FOR_README = ROOT / "docs" / "jupyterlab.png"
EXPLORER_FOR_README = ROOT / "docs" / "explorer.png"
RUN_TIMEOUT_MS = 180_000  # the three trainings take seconds; a busy 2-core machine may be slower
NOTEBOOK_CELLS = json.loads(RELEASE.read_text(encoding="utf-8"))["cells"]
GRADE_IDS = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in NOTEBOOK_CELLS]
PUBLIC_TESTS = ["test_zeros_public", "test_random_public", "test_he_public"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, course_env) -> Iterator[str]:
    """A JupyterLab server on a fresh copy of the release; yields the notebook's URL."""
    with student_lab(tmp_path_factory.mktemp("lab"), RELEASE.parent, course_env, free_port()) as (url, token):
        yield f"{url}/lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb?token={token}"


@pytest.fixture(scope="module")
def page(lab):
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(lab)
        page.locator(".jp-Notebook .jp-Cell").nth(len(NOTEBOOK_CELLS) - 1).wait_for()
        wait_for_kernel_idle(page)
        yield page
        browser.close()


def cell(page, grade_id: str):
    return page.locator(".jp-Notebook .jp-Cell").nth(GRADE_IDS.index(grade_id))


def wait_for_kernel_idle(page) -> None:
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=RUN_TIMEOUT_MS)


def run_all(page) -> None:
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator("[data-command='runmenu:run-all']").click()


def wait_for_run_to_finish(page, last_output_cell: str, text: str) -> None:
    """Wait for `text` in the output of the last cell expected to run, then for no cell to be queued."""
    cell(page, last_output_cell).locator(".jp-OutputArea", has_text=text).wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*'))", timeout=RUN_TIMEOUT_MS)
    wait_for_kernel_idle(page)


def png_images(locator) -> int:
    return locator.locator("img[src^='data:image/png']").count()


def test_the_notebook_opens_with_nbgraders_validate_button(page):
    assert page.locator(".jp-NotebookPanel-toolbar .validate-button").is_visible()
    page.screenshot(path=ARTIFACTS / "1-opened.png")


def test_the_student_sees_no_instructor_tools(page):
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").first.click()
    menu = page.locator(".lm-Menu-content").last.inner_text()
    page.keyboard.press("Escape")
    assert "Assignment List" in menu  # the student tools stay
    assert "Formgrader" not in menu and "Course List" not in menu
    assert page.locator("[title='Create Assignment'], #jp-right-stack [title*='Create Assignment']").count() == 0
    assert page.locator(".jp-SideBar", has_text="Create Assignment").count() == 0


def test_running_all_with_the_stubs_stops_at_the_first_exercise_with_not_implemented_error(page):
    run_all(page)
    wait_for_run_to_finish(page, "test_zeros_public", "NotImplementedError")
    assert png_images(cell(page, "load_data")) == 1, "the data set plot renders as an image"
    cell(page, "test_zeros_public").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "2-stubs.png")


@pytest.mark.parametrize("exercise", ["random", "he"])
def test_the_later_stubs_fail_with_not_implemented_error_when_run_one_by_one(page, exercise):
    for grade_id in [f"initialize_parameters_{exercise}", f"test_{exercise}_public"]:
        run_cell(page, cell(page, grade_id))
    output = cell(page, f"test_{exercise}_public").locator(".jp-OutputArea")
    output.filter(has_text="NotImplementedError").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_kernel_idle(page)


def test_validating_the_unsolved_notebook_reports_failures(page):
    validate(page)
    dialog = page.locator(".jp-Dialog")
    assert "Success!" not in dialog.inner_text()
    assert "NotImplementedError" in dialog.inner_text()
    page.screenshot(path=ARTIFACTS / "3-validate-stubs.png")
    close_dialog(page)


def test_typed_solutions_pass_the_public_tests_and_every_plot_renders(page):
    for grade_id, body in CORRECT.items():
        stub = "".join(NOTEBOOK_CELLS[GRADE_IDS.index(grade_id)]["source"])
        cell(page, grade_id).locator(".cm-content").click()
        page.keyboard.press("Control+a")  # the whole cell: the student retypes it with the solution
        page.keyboard.insert_text(solved_cell(stub, body))
    run_all(page)
    wait_for_run_to_finish(page, "results_table", "recommended for ReLU")
    for grade_id in PUBLIC_TESTS:
        assert "All tests passed." in cell(page, grade_id).locator(".jp-OutputArea").inner_text(), grade_id
    assert page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type*='stderr']").count() == 0
    # the data set; per training (zeros, x10, He, x0.01, x1) a cost curve; the boundaries of zeros,
    # the constant network, x10 and He; the deep network; its histograms; the saturating units (two
    # figures); the comparison; the explorer's drawing
    assert png_images(page.locator(".jp-Notebook")) == 1 + 5 + 4 + 1 + 1 + 2 + 1 + 1
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no cursor in the shot
    cell(page, "initialize_parameters_he").evaluate("c => c.scrollIntoView({block: 'start'})")
    page.screenshot(path=ARTIFACTS / "4-solved.png")
    if os.environ.get("COURSEKIT_UPDATE_SCREENSHOT"):  # `make screenshot`; not every run dirties docs/
        shutil.copy(ARTIFACTS / "4-solved.png", SCREENSHOT_FOR_README)


EXPLORER_IMAGE = ".jupyter-widgets img[src^='data:image/png']"


def explorer_image(page) -> str:
    return cell(page, "explore").locator(EXPLORER_IMAGE).first.get_attribute("src")


def wait_for_explorer_image(page, old: str, same: bool) -> None:
    """Wait until the explorer's picture differs from `old` (same=False) or equals it again (same=True)."""
    page.wait_for_function(
        """([index, selector, old, same]) => {
               const img = document.querySelectorAll('.jp-Notebook .jp-Cell')[index].querySelector(selector);
               return img !== null && (img.getAttribute('src') === old) === same;
           }""",
        arg=[GRADE_IDS.index("explore"), EXPLORER_IMAGE, old, same], timeout=RUN_TIMEOUT_MS)


def set_scale(page, value: str) -> None:
    """Type a scale into the slider's readout, as a student may, and wait for the redraw."""
    readout = cell(page, "explore").locator(".widget-readout").first
    readout.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(value)
    page.keyboard.press("Enter")
    wait_for_kernel_idle(page)


def test_moving_the_explorer_slider_redraws_its_figure(page):
    explorer = cell(page, "explore")
    explorer.evaluate("c => c.scrollIntoView({block: 'start'})")
    grid = explorer_image(page)  # the static grid, until the first change
    assert float(explorer.locator(".widget-readout").first.inner_text()) == 1
    handle = explorer.locator(".noUi-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 120, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    wait_for_explorer_image(page, grid, same=False)
    wait_for_kernel_idle(page)
    assert float(explorer.locator(".widget-readout").first.inner_text()) < 1, "dragging left lowers the scale"
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=ARTIFACTS / "6-explorer.png")
    if os.environ.get("COURSEKIT_UPDATE_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "6-explorer.png", EXPLORER_FOR_README)


def test_the_same_explorer_setting_draws_the_same_picture(page):
    dragged = explorer_image(page)
    set_scale(page, "1")
    wait_for_explorer_image(page, dragged, same=False)
    at_one = explorer_image(page)
    set_scale(page, "0.1")
    wait_for_explorer_image(page, at_one, same=False)
    set_scale(page, "1")
    wait_for_explorer_image(page, at_one, same=True)


def test_validating_the_solved_notebook_succeeds(page):
    validate(page)
    assert "Success! Your notebook passes all the tests." in page.locator(".jp-Dialog").inner_text()
    page.screenshot(path=ARTIFACTS / "5-validate-solved.png")
    close_dialog(page)


def validate(page) -> None:
    """Click nbgrader's Validate button (it saves first) and wait for its verdict."""
    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    page.locator(".jp-Dialog .jp-Dialog-content").wait_for(timeout=RUN_TIMEOUT_MS)


def close_dialog(page) -> None:
    page.locator(".jp-Dialog .jp-Dialog-button").first.click()
    page.locator(".jp-Dialog").wait_for(state="detached")
