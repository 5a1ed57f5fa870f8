# One place for every command README shows.  Each target creates the virtual environment first
# if it is missing; nbgrader needs the venv's bin/ on PATH because it shells out to `alembic` and
# `jupyter`, hence the exported PATH.

PYTHON_BOOT ?= python3
VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
ASSIGNMENT  := initialization
SRC         := source/$(ASSIGNMENT)
HELPERS     := init_utils.py public_tests.py datasets/circles.h5

.PHONY: demo lesson test test-setup test-quick lint venv release grade grade-nbgrader feedback report demo-class \
        bench bench-scale bench-submit fuzz exchange link screenshot hub-env hub-fonts clean
# Steps run in the order listed, even under `make -j`: each one reads what the previous wrote.
.NOTPARALLEL:

# --- the two set-up commands ------------------------------------------------------------------

# The lesson's results, then the whole instructor loop on the demo class.
demo: lesson grade feedback report

# Two pytest processes, each running whole modules (`--dist loadfile`: a module's fixtures are built
# once): many modules spend much of their time waiting on a kernel, a browser or a server, so two
# side by side fill both cores (on a quiet 2-core machine the suite took 16.8 min in one process,
# 11.4 and 12.6 min in two).
TEST_PROCESSES ?= 2
test: venv test-setup
	python -m pytest -n $(TEST_PROCESSES) --dist loadfile

# What the browser, PostgreSQL and hub tests need beyond the venv: Debian packages, npm's
# configurable-http-proxy (scripts/test_setup.sh) and, as root, the hub's user environment
# (hub-env).  Each step checks first: a second or two when everything is there.  Not root: one
# line says what is missing and what to run, and the tests that need it skip.
test-setup: venv
	bash scripts/test_setup.sh
	if [ "$$(id -u)" = 0 ]; then $(MAKE) -s hub-env; fi

# Lint, import order, coursekit's layers (import contracts) and types (settings in pyproject.toml);
# `.ci/run` runs this before the tests.
LINTED := coursekit scripts bench tests hide_hidden_tests.py nbgrader_config.py
lint: venv
	ruff check $(LINTED)
	lint-imports
	mypy

# The inner loop: skips the browser test, the hub tests and the tests that run stock nbgrader on
# many notebooks.
test-quick: venv
	python -m pytest -n $(TEST_PROCESSES) --dist loadfile -m "not browser and not slow and not hub"

venv: $(VENV)/.installed

# Two things go into the venv: the course's own requirements (course-requirements.txt: the
# lesson's libraries and JupyterLab) and coursekit, the grader, with its Dask extra and the tools
# the tests and CI use.
$(VENV)/.installed: pyproject.toml course-requirements.txt
	test -d $(VENV) || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r course-requirements.txt -e ".[dask,test]"
	touch $@

# --- the course -------------------------------------------------------------------------------

# Copy the root helpers into the master folder, then let nbgrader build the student version;
# both copies are committed and tests check they never drift.  Then every language (README,
# "Languages"): refresh the catalogues from the master, write source/$(ASSIGNMENT)-<language>/,
# let nbgrader build each release, and write the standalone notebooks from the releases.
release: venv
	mkdir -p $(SRC)/datasets
	for f in $(HELPERS); do cp $$f $(SRC)/$$f; done
	python -m scripts.i18n update
	python -m scripts.i18n build
	nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN
	for a in $$(python -m scripts.i18n assignments); do \
	    nbgrader generate_assignment $$a --force --log-level=WARN || exit 1; done
	python -m scripts.i18n standalone

# Run the master notebook in a fresh kernel: costs, accuracies, the comparison table, the time.
lesson: release
	python -m scripts.run_master

# Rebuild the demo students in submitted/ from the current release.
demo-class: venv
	python -m scripts.make_demo_class

# --- grading (docs/grading.md); every step can be rerun ------------------------------------------

# Autograde every submitted/<student>/ with coursekit, regrading from scratch.
grade: release
	coursekit autograde $(ASSIGNMENT) --force

# The same with stock nbgrader (the reference): one nbgrader call per student, one per core side by
# side, with a progress line each.
grade-nbgrader: release
	python -m scripts.grade_class --jobs $$(nproc)

# Per-student HTML feedback with the hidden tests removed (after either grader).
feedback: venv
	coursekit feedback $(ASSIGNMENT)

# reports/grades.csv, reports/class_report.html and the grade table (after either grader).
report: venv
	coursekit report $(ASSIGNMENT)

# --- coursekit ------------------------------------------------------------------------------------

# Two tables: a generated class of 200 on this course, then on each assignment of
# tests/general_course/ (light, plot-heavy, data file), graded with both nbgrader and coursekit;
# both throughputs, the ratio and whether the grades agree.  Stock nbgrader takes 2-8 s per
# notebook, so the default (all 200 of each) runs over an hour;
# `make bench BENCH_ARGS="--stock-sample 10"` lets nbgrader grade only 10 of each class (about
# 10 minutes), `--only lesson` or `--only general` runs one table.
BENCH_ARGS ?=
bench: venv
	python -m bench.bench $(BENCH_ARGS)

# Class scale (README "Throughput"): classes of 200, 2,000 and 10,000 graded by coursekit on SQLite and
# on a PostgreSQL server it starts and stops, against a stock nbgrader sample of the same run.
# Prints the table; writes bench/results/scale.{md,json,png}.  About 8-12 minutes on 2 cores.
SCALE_ARGS ?=
bench-scale: venv
	python -m bench.scale_bench $(SCALE_ARGS)

# A deadline burst through `coursekit serve` (README "Feedback seconds after Submit"): 500 submissions
# land in an exchange within 60 s at rising rates; prints submit-to-feedback latency, lost/twice, peak
# memory and a stock pipeline sample, draws bench/results/submit.png.  About 2-3 minutes.
SUBMIT_ARGS ?=
bench-submit: venv
	python -m bench.submit_bench $(SUBMIT_ARGS)

# Differential testing: 300 seeded unusual notebooks (scripts/fuzz.py) graded by both nbgrader
# autograde (one batch) and coursekit autograde; prints the per-cell agreement table and every
# recovery and disagreement.  Stock nbgrader needs ~6 s a notebook, so this takes ~30 minutes;
# `make fuzz FUZZ_ARGS="--count 60"` is quicker, `--keep DIR` keeps both graded courses.
FUZZ_ARGS ?=
fuzz: venv
	python -m scripts.fuzz $(FUZZ_ARGS)

# --- JupyterHub classes (README) --------------------------------------------------------------

# The exchange folder every student and instructor shares.  Sticky and world-writable, like /tmp:
# anyone may add, nobody may move or delete what another account made.
EXCHANGE ?= /srv/nbgrader/exchange
exchange:
	install -d -m 1777 $(EXCHANGE)

# The Python environment a hub's single-user servers and formgrader service run from: Debian's
# python3 with this kit, JupyterHub and psycopg2, outside every home so each account can run it.
# Reinstalls the kit when a file of it changes, appears or goes (the hub test checks the copy is current).
HUB_ENV    ?= $(or $(COURSEKIT_USER_ENV),/opt/weight-init-hub)
# The hub tests run the environment hub-env installed.
export COURSEKIT_USER_ENV := $(HUB_ENV)
HUB_PYTHON ?= /usr/bin/python3
hub-env: hub-fonts $(HUB_ENV)/.installed

# The Chinese release's figure text on the hub: Debian's Noto Sans CJK (matplotlib finds it; init_utils
# adds it behind DejaVu Sans).  The mplfonts wheel in the environment draws the same characters, so
# this is installed only as root, and only when missing (dpkg answers in milliseconds); not root, or
# not Debian, one line says so and the wheel does the work.
hub-fonts:
	@if dpkg -s fonts-noto-cjk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null; \
	else echo "hub-env: Debian's fonts-noto-cjk not installed (needs root and apt-get); Chinese figures use the mplfonts wheel"; fi

$(HUB_ENV)/.installed: pyproject.toml course-requirements.txt $(shell find coursekit -name __pycache__ -prune -o \( -type d -o -name '*.py' \) -print)
	test -x $(HUB_ENV)/bin/python || $(HUB_PYTHON) -m venv $(HUB_ENV)
	$(HUB_ENV)/bin/python -m pip install -q -r course-requirements.txt ".[hub]"
	$(HUB_ENV)/bin/python -m pip install -q --no-deps --force-reinstall .
	touch $@

# Print an nbgitpuller link that opens the student notebook, e.g.
#   make link HUB=https://hub.example.edu REPO=https://github.com/you/weight-init BRANCH=main
BRANCH ?= main
link:
	@$(PYTHON_BOOT) -m scripts.nbgitpuller_link --hub "$(HUB)" --repo "$(REPO)" --branch "$(BRANCH)"

# Rerun the browser tests and keep the screenshots README shows (the solved notebook; a student and
# the instructor on the hub, which needs root and `make hub-env`).
screenshot: venv
	COURSEKIT_UPDATE_SCREENSHOT=1 python -m pytest tests/test_browser_jupyterlab.py tests/test_browser_jupyterlab_tr.py tests/test_hub_class.py

clean:
	rm -rf $(VENV) gradebook.db autograded/*/ feedback/ reports/
