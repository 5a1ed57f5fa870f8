"""A Turkish student in a Turkish JupyterLab: the Turkish release opened in a real `jupyter lab`
whose interface speaks Turkish (the official language pack, chosen in the settings as a student
would), driven through Debian's Chromium by Playwright.  A wrong He initializer (Xavier's scale)
is typed in and the notebook run: the public test answers in Turkish.

The screenshot goes to test-artifacts/; `make screenshot` also copies it to docs/jupyterlab-tr.png.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

from scripts import i18n
from scripts.course import ROOT
from scripts.pg_server import free_port
from scripts.student_work import CORRECT, solved_cell
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, nbgrader_env, require_chromium, run_cell, student_lab

pytestmark = pytest.mark.browser

LANGUAGE = "tr"
TR_ASSIGNMENT = i18n.assignment_of(LANGUAGE)
RELEASE = ROOT / "release" / TR_ASSIGNMENT
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT_FOR_README = ROOT / "docs" / "jupyterlab-tr.png"
# The interface language (the Turkish language pack), as Settings > Language would store it.
TURKISH_INTERFACE = {"@jupyterlab/translation-extension/plugin.jupyterlab-settings": {"locale": "tr_TR"}}
XAVIER = "values look like Xavier scaling sqrt(1/n); He uses sqrt(2/n), with n = layers_dims[l-1]"
CELLS = json.loads((RELEASE / f"{TR_ASSIGNMENT}.ipynb").read_text(encoding="utf-8"))["cells"]
GRADE_IDS = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in CELLS]
RUN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    require_chromium()
    with student_lab(tmp_path_factory.mktemp("lab-tr"), RELEASE, nbgrader_env(), free_port(),
                     TURKISH_INTERFACE) as (url, token):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/{TR_ASSIGNMENT}/{TR_ASSIGNMENT}.ipynb?token={token}")
            page.locator(".jp-Notebook .jp-Cell").nth(len(CELLS) - 1).wait_for()
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=RUN_TIMEOUT_MS)
            yield page
            browser.close()


def cell(page, grade_id: str):
    return page.locator(".jp-Notebook .jp-Cell").nth(GRADE_IDS.index(grade_id))


def test_the_interface_speaks_turkish(page):
    menus = page.locator(".lm-MenuBar-item").all_inner_texts()
    assert "Çalıştır" in menus and "Run" not in menus, menus


def test_a_wrong_he_initializer_gets_the_turkish_test_message(page):
    xavier = CORRECT["initialize_parameters_he"].replace("np.sqrt(2 /", "np.sqrt(1 /")
    assert xavier != CORRECT["initialize_parameters_he"]
    stub = "".join(CELLS[GRADE_IDS.index("initialize_parameters_he")]["source"])
    cell(page, "initialize_parameters_he").locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(solved_cell(stub, xavier))
    for grade_id in ("setup", "initialize_parameters_he", "test_he_public"):
        run_cell(page, cell(page, grade_id))
    turkish = i18n.load(LANGUAGE)[XAVIER].string
    output = cell(page, "test_he_public").locator(".jp-OutputArea")
    output.filter(has_text="AssertionError").wait_for(timeout=RUN_TIMEOUT_MS)
    text = output.inner_text()
    assert turkish in text and XAVIER not in text
    assert "Rastgele sayılarınız doğru, yalnızca ölçek yanlış" in text
    page.evaluate("document.activeElement && document.activeElement.blur()")
    cell(page, "test_he_public").evaluate("c => c.scrollIntoView({block: 'center'})")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "tr-wrong-he.png")
    if os.environ.get("COURSEKIT_UPDATE_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "tr-wrong-he.png", SCREENSHOT_FOR_README)
