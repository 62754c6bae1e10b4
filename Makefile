# otkit: set up, run, test. Needs only python3 (3.10+, 3.11 recommended) and GNU make.
#
#   make run    set everything up, then start JupyterLab on notebooks/
#   make test   set everything up, then run the tests (PYTEST_ARGS="-m 'not slow'" etc.)
#   make voila  set everything up, then serve notebooks/ as apps with Voila
#   make bench  set everything up (+ benchmark references), then time otkit against them
#   make runs   set everything up, then run notebooks with papermill into runs/ (NB=, ARGS=)
#   make gallery  render the latest successful run of each notebook to runs/gallery/ (static HTML)
#   make clean  remove the virtual environment, runs/ and caches

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.otkit-setup.stamp
BENCH_STAMP := $(VENV)/.otkit-bench.stamp

HOST        := 127.0.0.1
PORT        ?= 8888
TOKEN       ?=
VOILA_PORT  ?= 8866
PYTEST_ARGS ?=
BENCH_ARGS  ?=

# An explicit PORT (command line or environment) is used as is; the default 8888
# moves up to the next free port if something already listens there.
ifeq ($(origin PORT),file)
PORT_STRICT := 0
else
PORT_STRICT := 1
endif

# Prints PORT if free (strict), else the first free port in [PORT, PORT+50).
FREE_PORT_PY = import socket, sys; p = int(sys.argv[1]); c = [p] if sys.argv[2] == "1" else range(p, p + 50); ok = [q for q in c if socket.socket().connect_ex(("$(HOST)", q)) != 0]; print(ok[0]) if ok else sys.exit("port %d is in use: choose another with PORT=" % p)

.PHONY: help setup browser run test voila bench runs gallery clean

help:
	@echo "make run     set up .venv and start JupyterLab on notebooks/ (PORT=, TOKEN=)"
	@echo "make test    set up .venv and run pytest (PYTEST_ARGS=...)"
	@echo "make voila   set up .venv and serve notebooks/ with Voila (VOILA_PORT=)"
	@echo "make bench   set up .venv + requirements-bench.txt and run the benchmarks"
	@echo "make runs    set up .venv and run notebooks into runs/ (NB=notebooks/01_x.ipynb ARGS='-p n 100 --quick')"
	@echo "make gallery render the latest ok run of each notebook under runs/ to runs/gallery/index.html"
	@echo "make setup   only set up .venv (idempotent)"
	@echo "make clean   remove .venv, runs/ and caches"

setup: $(STAMP)

# Re-runs only when requirements.txt or pyproject.toml change (or .venv is gone).
$(STAMP): requirements.txt pyproject.toml
	@if [ ! -x "$(VPY)" ]; then \
	  $(PYTHON) -c 'import sys; sys.exit("otkit needs Python >= 3.10 (3.11 recommended); got " + sys.version.split()[0] + ": set PYTHON=python3.11") if sys.version_info < (3, 10) else None'; \
	  echo ">> creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -r requirements.txt
	$(VPY) -m pip install -e . --no-deps
	@cd / && "$(CURDIR)/$(VPY)" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("otkit") and u.find_spec("widgets") else "otkit or widgets is not importable after pip install -e . (are the otkit/ and widgets/ folders there?)")'
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (otkit)"
	$(VENV)/bin/jupyter labextension disable --level=sys_prefix @jupyterlab/apputils-extension:announcements
	@touch $@
	@echo ">> $(VENV) is ready"

# `jupyter lab` takes its landing page from LabApp.default_url (ServerApp's alone is overridden).
run: setup
	@port=$$($(VPY) -c '$(FREE_PORT_PY)' "$(PORT)" "$(PORT_STRICT)"); \
	token="$(TOKEN)"; \
	if [ -z "$$token" ]; then token=$$($(VPY) -c 'import secrets; print(secrets.token_hex(24))'); fi; \
	root_flag=""; if [ "$$(id -u)" = "0" ]; then root_flag="--allow-root"; fi; \
	echo ""; \
	echo ">> JupyterLab: http://$(HOST):$$port/lab/tree/notebooks?token=$$token"; \
	echo ">> stop it with Ctrl-C"; \
	echo ""; \
	exec $(VENV)/bin/jupyter lab --no-browser $$root_flag \
	  --ServerApp.ip=$(HOST) --ServerApp.port=$$port --ServerApp.port_retries=0 \
	  --IdentityProvider.token="$$token" \
	  --ServerApp.root_dir="$(CURDIR)" \
	  --LabApp.default_url=/lab/tree/notebooks --ServerApp.default_url=/lab/tree/notebooks

# Browser tests drive Debian's Chromium (Playwright never downloads a browser). As root, install
# it when missing; otherwise the browser tests skip and say why.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  echo ">> installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo ">> $(CHROMIUM) is missing and we are not root: browser tests will skip"; fi

# pytest's own exit status is make's: "no tests collected" (5) stays a failure.
test: setup browser
	$(VPY) -m pytest $(PYTEST_ARGS)

voila: setup
	@echo ">> Voila: http://$(HOST):$(VOILA_PORT)/"
	exec $(VENV)/bin/voila notebooks/ --no-browser --Voila.ip=$(HOST) --port=$(VOILA_PORT)

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(VPY) -m pip install -r requirements-bench.txt
	@touch $@

bench: setup $(BENCH_STAMP)
	$(VPY) -m benchmarks.sinkhorn $(BENCH_ARGS)

# Batch runs (otkit.runs): every notebook in NB with the options in ARGS, e.g.
#   make runs NB=notebooks/01_x.ipynb ARGS="-p n 500 --quick"
#   make runs ARGS="--grid grid.yaml"        (NB defaults to every notebooks/*.ipynb)
# Exits non-zero when a run fails; `$(VPY) -m otkit.runs summary` lists every run.
NB          ?= $(wildcard notebooks/*.ipynb)
ARGS        ?=
runs: setup
	@if [ -z "$(strip $(NB))" ]; then echo "make runs: no notebook: set NB=path/to/notebook.ipynb" >&2; exit 2; fi
	$(VPY) -m otkit.runs run $(NB) $(ARGS)

# Static HTML of the latest successful run of each notebook (e.g. after `make runs ARGS=--quick`).
gallery: setup
	$(VPY) -m otkit.runs gallery --runs-dir runs

clean:
	rm -rf $(VENV) runs/ .pytest_cache/ .hypothesis/ benchmarks/out/ *.egg-info/
	find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
