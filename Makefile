# One place for every command README shows.  Each target creates the virtual
# environment first if it is missing; nbgrader needs the venv's bin/ on PATH
# because it shells out to `alembic` and `jupyter`.

PYTHON_BOOT ?= python3
VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
ASSIGNMENT  := initialization
SRC         := source/$(ASSIGNMENT)
HELPERS     := init_utils.py public_tests.py datasets/circles.h5

.PHONY: demo test test-quick release venv clean exchange link screenshot

demo: release
	python scripts/run_master.py
	$(AUTOGRADE)
	$(FEEDBACK)
	$(REPORT)

# The instructor loop (README: "For instructors"); every step can be rerun.
.PHONY: grade feedback report demo-class
AUTOGRADE := python scripts/grade_class.py
FEEDBACK  := nbgrader generate_feedback $(ASSIGNMENT) --force --log-level=ERROR \
             && echo "Feedback: feedback/<student>/$(ASSIGNMENT)/$(ASSIGNMENT).html"
REPORT    := python scripts/class_report.py

# Autograde every submitted/<student>/ with nbgrader (regrades from scratch).
grade: release
	$(AUTOGRADE)

# Per-student HTML feedback, hidden tests removed (after `make grade`).
feedback: venv
	$(FEEDBACK)

# reports/grades.csv, reports/class_report.html and the grade table (after `make grade`).
report: venv
	$(REPORT)

# Rebuild the demo students in submitted/ from the current release.
demo-class: venv
	python scripts/make_demo_class.py

test: venv
	python -m pytest

test-quick: venv
	python -m pytest -m "not browser and not slow"

# Copy the root helpers into the master folder, then let nbgrader build the
# student version; both copies are committed and tests check they never drift.
release: venv
	mkdir -p $(SRC)/datasets
	for f in $(HELPERS); do cp $$f $(SRC)/$$f; done
	nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) gradebook.db autograded/*/ feedback/ reports/

# JupyterHub classes (README): the exchange folder every student and instructor shares.  Sticky and
# world-writable, like /tmp: anyone may add, nobody may move or delete what another account made.
EXCHANGE ?= /srv/nbgrader/exchange
exchange:
	install -d -m 1777 $(EXCHANGE)

# Print an nbgitpuller link that opens the student notebook, e.g.
#   make link HUB=https://hub.example.edu REPO=https://github.com/you/weight-init BRANCH=main
BRANCH ?= main
link:
	@$(PYTHON_BOOT) scripts/nbgitpuller_link.py --hub "$(HUB)" --repo "$(REPO)" --branch "$(BRANCH)"

# Grade one generated class with both nbgrader and coursekit; print both throughputs, the ratio
# and whether the grades agree.  Stock nbgrader takes ~6 s per notebook, so the default (all 200)
# runs ~20 minutes; `make bench BENCH_ARGS="--stock-sample 20"` lets nbgrader grade only 20.
.PHONY: bench
BENCH_ARGS ?=
bench: venv
	python bench/bench.py $(BENCH_ARGS)

# Rerun the JupyterLab browser test and keep its screenshot of the solved notebook for README.
screenshot: venv
	COURSEKIT_UPDATE_SCREENSHOT=1 python -m pytest tests/test_browser_jupyterlab.py
