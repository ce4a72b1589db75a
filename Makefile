# Two commands do everything on a fresh clone:
#   make lab    create .venv if missing, install, open JupyterLab on notebooks/
#   make test   same set-up, then unit tests + pairing checks + every notebook executed by nbval
#               + the widget lessons driven in JupyterLab by headless Chromium (skipped, with the reason, without it)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.course-installed

.PHONY: lab test install unit notebooks test-browser sync clean

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

test: install
	$(PY) -m pytest tests --ignore=tests/browser
	$(PY) tools/run_notebooks.py notebooks solutions
	$(PY) -m pytest tests/browser

unit: install
	$(PY) -m pytest tests --ignore=tests/browser

# Sliders moved with the keyboard in JupyterLab + headless Chromium; screenshots in build/browser/.
test-browser: install
	$(PY) -m pytest tests/browser

notebooks: install
	$(PY) tools/run_notebooks.py notebooks solutions

# Regenerate each paired .ipynb from its py:percent source (the source of truth), without outputs.
sync: install
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean:
	rm -rf build .pytest_cache
