# Two commands do everything on a fresh clone:
#   make lab    create .venv if missing, install, open JupyterLab on notebooks/
#   make test   same set-up, then unit tests + pairing checks + every notebook executed by nbval
#               + the course website built from those executed notebooks (build/site/)
#               + the widget lessons and the website driven by headless Chromium (skipped, with the reason, without it)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.course-installed

.PHONY: lab test install unit notebooks test-fakecuda test-browser sync exercises check-exercises grade bench microbench site clean

$(STAMP): environment.yml pyproject.toml tools/env_requirements.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) tools/env_requirements.py environment.yml > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

# The caches train while the unit tests run: the tests keep about one core busy (one process at a time),
# the cache workers take the rest.  A unit-test failure stops the cache workers (their process group) too.
# Then two notebooks at a time, one CPU thread per kernel (tools/run_notebooks.py --jobs 2).
test: install
	$(VENV)/bin/ruff check .
	set -m; $(PY) tools/warm_caches.py & warm=$$!; trap 'kill -- -$$warm 2>/dev/null' EXIT; \
	$(PY) -m pytest tests --ignore=tests/browser || exit 1; \
	wait $$warm || exit 1; trap - EXIT
	$(PY) tools/run_notebooks.py --jobs 2 notebooks solutions
	$(PY) tools/build_site.py
	$(PY) -m pytest -n 2 --dist loadgroup tests/browser

unit: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests --ignore=tests/browser

# Every notebook taking its CUDA code paths on the CPU (tests/fakecuda.py): a device mix-up fails as on a GPU.
test-fakecuda: install
	COURSE_PROFILE=quick COURSE_FAKE_CUDA=1 PYTHONPATH=tests/fakecuda_site $(PY) tools/warm_caches.py
	$(PY) tools/run_notebooks.py --fake-cuda notebooks solutions

# Sliders moved with the keyboard in JupyterLab + headless Chromium; screenshots in build/browser/.
test-browser: install
	$(PY) -m pytest -n 2 --dist loadgroup tests/browser

notebooks: install
	$(PY) tools/warm_caches.py
	$(PY) tools/run_notebooks.py notebooks solutions

# Regenerate each paired .ipynb from its py:percent source (the source of truth), without outputs,
# then the student exercises from solutions/ (never jupytext-sync exercises/: regenerate it).
sync: install
	$(VENV)/bin/jupytext --sync notebooks/*.py solutions/ex*.py
	$(PY) tools/assign.py

# exercises/ and course_lib/exercise_checks/ from solutions/ (solutions -> `...`, hidden tests removed)
exercises: install
	$(PY) tools/assign.py

# Freshness of exercises/, then every solution graded by the real grader (full marks expected).
check-exercises: install
	$(PY) tools/assign.py --check
	@for nb in solutions/ex*.ipynb; do echo "grading $$nb"; $(PY) tools/grade.py --check $$nb > /dev/null || exit 1; done

# Instructors: grade every notebook in a folder -> $(GRADES)/grades.csv, feedback/<id>.md, logs/<id>.log.
# Each submission runs in a bubblewrap sandbox (tools/sandbox.py); without bwrap this stops and says how to
# install it.  UNSAFE_NO_SANDBOX=1 grades anyway, unsandboxed, and says so in every feedback file.
GRADES ?= build/grades
TIMEOUT ?= 300
JOBS ?= 1
grade: install
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder> [GRADES=build/grades] [ASSIGNMENT=ex4_kd_grid] [TIMEOUT=300] [TEST_TIMEOUT=20] [MEMORY_GB=6] [JOBS=1] [UNSAFE_NO_SANDBOX=1]"; exit 2; }
	$(PY) tools/grade.py "$(SUBMISSIONS)" --out "$(GRADES)" --timeout $(TIMEOUT) --jobs $(JOBS) \
	  $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)") $(if $(SOLUTIONS),--solutions "$(SOLUTIONS)") \
	  $(if $(TEST_TIMEOUT),--test-timeout $(TEST_TIMEOUT)) $(if $(CELL_TIMEOUT),--cell-timeout $(CELL_TIMEOUT)) \
	  $(if $(MEMORY_GB),--memory-gb $(MEMORY_GB)) $(if $(filter 1 yes true,$(UNSAFE_NO_SANDBOX)),--no-sandbox)

# Benchmarks: every lesson and solution notebook run on a copy -> results/$(PROFILE).json, then the README table
# results/README_results.md (written even when a notebook failed; the exit status is the run's).
PROFILE ?= quick
# THREADS=1 reruns everything with COURSE_THREADS=1 into results/$(PROFILE)-threads1.json (the table's extra column)
bench: install
	COURSE_PROFILE=$(PROFILE) $(PY) tools/warm_caches.py
	$(if $(THREADS),COURSE_THREADS=$(THREADS) )$(PY) tools/bench.py --profile $(PROFILE) \
	  $(if $(THREADS),--out results/$(PROFILE)-threads$(THREADS).json); status=$$?; \
	$(PY) tools/bench.py --readme --profile $(PROFILE); exit $$status

# MMD², cached features, input pipeline: ratios measured in one run -> results/microbench-$(PROFILE).json (< 2 min)
microbench: install
	$(PY) tools/microbench.py --profile $(PROFILE)
	$(PY) tools/bench.py --readme --profile $(PROFILE)

# The course website -> build/site/ (open build/site/index.html), from the executed notebooks that `make test`
# (build/executed/) or `make bench` (build/bench/<profile>/) left: nothing is re-executed.
site: install
	$(PY) tools/build_site.py

clean:
	rm -rf build .pytest_cache
