# dpcourse — every target bootstraps .venv from the lock (requirements.txt) on first use.
#   make lab    open the course in JupyterLab (localhost only, token on)
#   make test   unit tests + every notebook through nbval
#   make hub    JupyterHub for a room on this machine (as root; see instructor/README.md)
# Python 3.11 is required (TensorFlow Privacy 0.9.0 declares <3.12). Point PYTHON at one
# if `python3.11` is not on PATH:  make lab PYTHON=/path/to/python3.11

PYTHON ?= $(shell command -v python3.11 2>/dev/null)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data/transactions.csv.gz
PORT   ?= 8888
NOTEBOOK_DIR ?= notebooks
LAB_FLAGS ?=
PYTEST_ARGS ?=
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
KERNEL_SPEC  := $(VENV)/share/jupyter/kernels/python3/kernel.json
# JupyterHub's proxy, the npm package pinned by hub/package-lock.json, kept in the project.
HUB_NODE  := .hub-node
HUB_PROXY := $(HUB_NODE)/node_modules/.bin/configurable-http-proxy
# Jupyter refuses to run as root unless told; containers and CI often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test data lock lint strip instructor book bench hub hub-ready hub-proxy bench-hub clean

lab: $(STAMP) $(DATA) $(LAB_SETTINGS) $(KERNEL_SPEC)
	$(VENV)/bin/jupyter lab --config=etc/jupyter_server_config.py \
		--ServerApp.root_dir=$(NOTEBOOK_DIR) --port=$(PORT) $(ROOT_FLAG) $(LAB_FLAGS)

test: $(STAMP) $(DATA) $(LAB_SETTINGS) $(KERNEL_SPEC)
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS)

# The instructor edition: every exercise cell with its solution filled in.
instructor: $(STAMP) $(DATA)
	$(PY) -m dpcourse course build-instructor --out instructor/edition

# The rendered course: executes the instructor edition, writes _book/index.html.
book: $(STAMP) $(DATA) $(KERNEL_SPEC)
	$(PY) -m dpcourse course build-book --out _book

# Speed of the DP paths, the CLI, σ calibration and the course; writes benchmarks/RESULTS.md.
bench: $(STAMP) $(DATA)
	$(PY) benchmarks/bench.py

# The classroom hub on this machine (hub/jupyterhub_config.py). Run as root: it starts
# each learner's server as that learner's UNIX account.
hub: hub-ready $(HUB_PROXY)
	$(VENV)/bin/jupyterhub -f hub/jupyterhub_config.py

# What learners' servers need in .venv: the course kernel, the lab settings, the data.
# The kernel spec is compared, not dated: installing ipykernel writes a newer kernel.json.
hub-ready: $(STAMP) $(DATA) $(LAB_SETTINGS) $(KERNEL_SPEC)
	@cmp -s etc/kernel/kernel.json $(KERNEL_SPEC) || cp etc/kernel/kernel.json $(KERNEL_SPEC)

hub-proxy: $(HUB_PROXY)

# 1, 2, 4 and 8 learners running the heaviest lesson at once through the hub (as root;
# creates and removes throw-away accounts); writes benchmarks/HUB_RESULTS.md.
bench-hub: hub-ready $(HUB_PROXY)
	$(PY) benchmarks/bench_hub.py

$(HUB_PROXY): hub/package.json hub/package-lock.json
	@command -v npm >/dev/null || { echo "The hub's proxy needs Node.js >= 20.19 and npm."; exit 1; }
	@mkdir -p $(HUB_NODE) && cp hub/package.json hub/package-lock.json $(HUB_NODE)/
	npm ci --prefix $(HUB_NODE) --no-audit --no-fund --loglevel=error
	@touch $(HUB_PROXY)

data: $(STAMP)
	$(PY) -m dpcourse data --out $(DATA)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check dpcourse tests tools benchmarks

strip:
	$(PYTHON) tools/strip_notebooks.py

# Regenerate the lock from pyproject.toml's ranges, then the conda and Binder copies.
lock: $(STAMP)
	$(PY) -m piptools compile --quiet --all-extras --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements.txt pyproject.toml
	$(PY) tools/sync_env_files.py

$(DATA): | $(STAMP)
	$(PY) -m dpcourse data --out $(DATA)

$(STAMP): requirements.txt pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "dpcourse needs Python 3.11 (TensorFlow Privacy does not support 3.12+)."; \
		echo "Ways out: install python3.11 and run 'make $(MAKECMDGOALS) PYTHON=/path/to/python3.11',"; \
		echo "or 'conda env create -f environment.yml', or open the course on Binder (see README.md)."; \
		exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
		echo "$(PYTHON) is not Python 3.11; run 'make $(MAKECMDGOALS) PYTHON=/path/to/python3.11'."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# The course kernel: the usual python3 kernel, with TensorFlow's C++ start-up log (CUDA
# plug-in "errors" on a CPU machine) turned off, so learners see only what matters.
$(KERNEL_SPEC): etc/kernel/kernel.json | $(STAMP)
	@mkdir -p $(dir $(KERNEL_SPEC)) && cp etc/kernel/kernel.json $(KERNEL_SPEC)

# JupyterLab settings for the course: no news pop-up; every cell rendered (no windowing).
$(LAB_SETTINGS): binder/overrides.json | $(STAMP)
	@mkdir -p $(dir $(LAB_SETTINGS)) && cp binder/overrides.json $(LAB_SETTINGS)

clean:
	rm -rf $(VENV) $(HUB_NODE) build *.egg-info .pytest_cache
