# wslab: two commands do all set-up.
#   make lab    open the course in JupyterLab (creates .venv and installs on first use)
#   make test   run the whole test suite: unit tests, every notebook under nbval, browser tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Installs come from the lock file (exact versions and their hashes, for every platform and
# Python), so a class gets the set CI tested. `make lock` remakes it from pyproject.toml;
# LOCK=0 installs the newest versions pyproject.toml allows instead. Each way has its own
# stamp, so switching reinstalls.
LOCK   ?= 1
LOCKFILE := requirements.lock
STAMP  := $(VENV)/.installed-$(if $(filter 0,$(LOCK)),unpinned,locked)
# uv only resolves, for `make lock`, from a throw-away environment; pip installs.
UV     ?= uv>=0.9
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg --nbval-cell-timeout 120
# JupyterLab listens on this machine only; it refuses to run as root unless told it may. The
# address it prints (and opens) is lesson 01 of the learner edition; it asks nothing about
# Jupyter news and checks for no updates (see LAB_SETTINGS too).
FIRST_LESSON := learner/01-echo-server.ipynb
TERMINAL_RC  := $(VENV)/wslab-terminal.bashrc
LAB_ARGS := --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 \
            --LabApp.default_url=/lab/tree/$(FIRST_LESSON) \
            --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
            "--ServerApp.terminado_settings=shell_command=bash --rcfile $(CURDIR)/$(TERMINAL_RC)" \
            $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# Settings shipped with the course, into the virtual environment's JupyterLab (never ~/.jupyter):
# no "get notified about official Jupyter news?" pop-up over the lessons. And JupyterLab's
# terminals run the learner's own shell set-up, then put the course's Python first on PATH, so
# `python -m wslab ...` works there as the lessons say.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
COMPLETE := notebooks/complete
LEARNER  := notebooks/learner
# The quick loop: no real browser, no notebook run, no broker process, no fresh install; six
# workers, since most of these tests wait on sockets and timers rather than compute.
UNIT   := -m "not browser and not broker and not lab and not lesson" -n 6 --dist worksteal -p no:nbval
# The tests start hundreds of Python processes (workers, python -m wslab, servers): each would
# compile wslab again where PYTHONDONTWRITEBYTECODE is set (many containers set it). Bytecode
# goes to __pycache__/, which git ignores.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

.PHONY: lab test unit soak lint notebooks learner lock browser nginx book book-npm axe-npm bench-npm clean help
.DEFAULT_GOAL := help

help:
	@echo "make lab        open the course in JupyterLab (first run installs into .venv)"
	@echo "make test       run every test: unit, notebooks (nbval), brokers, real browser, make lab"
	@echo "make unit       the quick loop: the tests that need no browser, notebook or broker (under a minute)"
	@echo "make notebooks  re-execute every complete lesson in a fresh kernel, store its outputs, make learner"
	@echo "make learner    write the learner edition ($(LEARNER)) from the complete one ($(COMPLETE))"
	@echo "make lint       ruff over the package and the tests; mypy over the package (strict on wslab/core)"
	@echo "make soak       make unit RUNS times (default 10) beside two CPU hogs: the flake hunt"
	@echo "make book       the reading copy: a static site of the lessons from their stored outputs"
	@echo "make bench-npm  install the Node ws server the benchmarks measure as a reference (npm ci)"
	@echo "make lock       refresh $(LOCKFILE) after changing pyproject.toml (UPGRADE=1: newest of everything)"
	@echo "LOCK=0          with lab/test/unit: install the newest versions allowed, not $(LOCKFILE)"

$(STAMP): pyproject.toml $(if $(filter 0,$(LOCK)),,$(LOCKFILE))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "wslab needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)). Try: make PYTHON=python3.12 ..."; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
	    && $(PYTHON) -m venv $(VENV); \
	  else echo "could not create a virtual environment; on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; fi; }
	$(BIN)/python -m pip install --quiet --upgrade pip
ifeq ($(LOCK),0)
	$(BIN)/python -m pip install --quiet -e '.[test,book]'
else
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCKFILE)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "$(LOCKFILE) lacks what pyproject.toml asks for: run make lock (or make ... LOCK=0)"; exit 1; }
endif
	@rm -f $(VENV)/.installed-*
	@touch $@

lab: $(STAMP) $(LAB_SETTINGS) $(TERMINAL_RC)
	@echo "Starting JupyterLab on the course (lesson 01 opens first). If no browser opens, paste the"
	@echo "http://127.0.0.1:.../lab/tree/$(FIRST_LESSON)?token=... address it prints below into one."
	@echo "Ctrl-C twice stops it."
	$(BIN)/jupyter lab $(LAB_ARGS)

$(LAB_SETTINGS): $(STAMP)
	@mkdir -p $(@D)
	@printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

$(TERMINAL_RC): $(STAMP)
	@printf '%s\n' '# JupyterLab terminals of `make lab`: your own set-up, then the course'"'"'s Python first.' \
	  '[ -f ~/.bashrc ] && . ~/.bashrc' '. "$(CURDIR)/$(BIN)/activate"' > $@

# Resolve pyproject.toml (with every extra) for every platform and every Python it allows
# (--universal) into exact versions and the hashes of their files. Pins already in the lock
# file stay unless pyproject.toml needs them changed; UPGRADE=1 moves all to the newest.
lock:
	@tool=$$(mktemp -d) && trap 'rm -rf "$$tool"' EXIT && \
	$(PYTHON) -m venv "$$tool" && "$$tool/bin/python" -m pip install --quiet '$(UV)' && \
	"$$tool/bin/uv" pip compile pyproject.toml --all-extras --universal --generate-hashes --quiet \
	  $(if $(filter 1,$(UPGRADE)),--upgrade) --custom-compile-command 'make lock' --output-file $(LOCKFILE)
	@echo "$(LOCKFILE): $$(grep -c '^[a-z0-9]' $(LOCKFILE)) pinned packages; the next make lab/test installs them"

# Debian's Chromium for the real-browser tests (Playwright cannot download browsers everywhere).
# Installed when running as root with apt (as CI does); elsewhere those tests skip and say why.
browser:
	@if [ -n "$$WSLAB_CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: no Chromium found; browser tests will skip (install chromium or set WSLAB_CHROMIUM)"; fi

# Debian's nginx for lesson 08's proxied path (tests/test_nginx.py), installed the same way:
# as root with apt (as CI does); elsewhere those tests skip and say why, unless CI=true.
nginx:
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's nginx for lesson 08's reverse-proxy tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	else echo "note: no nginx found; the reverse-proxy tests will skip (apt-get install nginx)"; fi

lint: $(STAMP)
	$(BIN)/ruff check wslab tests docs/book
	$(BIN)/ruff format --check wslab tests docs/book
	$(BIN)/mypy

test: $(STAMP) browser nginx lint book-npm axe-npm bench-npm
	$(PYTEST) tests $(COMPLETE) $(NBVAL)

unit: $(STAMP)
	$(PYTEST) tests $(UNIT) -q

# make unit again and again on a machine made busy on purpose (tests/soak.sh says how).
RUNS ?= 10
soak: $(STAMP)
	tests/soak.sh $(RUNS)

notebooks: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.record_timing=False \
	  --ExecutePreprocessor.timeout=300 $(COMPLETE)/*.ipynb
	$(MAKE) --no-print-directory learner

# The learner edition: every ### BEGIN SOLUTION ... ### END SOLUTION region of the complete
# lessons becomes a skeleton; no outputs (tests/test_learner_edition.py fails when it is stale).
learner: $(STAMP)
	$(BIN)/python -m wslab.cli.editions --complete $(COMPLETE) --learner $(LEARNER)

# The reading copy of the course (docs/book/README.md): Sphinx + MyST-NB over the stored outputs,
# with the pages' scripts from npm (docs/book/package-lock.json), served by the site itself.
BOOK := docs/book
book: $(STAMP) book-npm
	$(BIN)/python $(BOOK)/build.py

# npm ci when package-lock.json is newer than the install. Without npm, make book stops with a
# clear error and the book's test skips (fails under CI=true).
book-npm:
	@if [ $(BOOK)/node_modules/.package-lock.json -nt $(BOOK)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null; then cd $(BOOK) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "note: no npm found; the reading copy cannot be built (install Node.js 18 or newer)"; fi

# The Node ws server python -m wslab bench measures as a second reference (wslab/bench/node):
# npm ci as for the book. Without Node or npm the benchmarks say so and measure the others.
BENCH_NODE := wslab/bench/node
bench-npm:
	@if [ $(BENCH_NODE)/node_modules/.package-lock.json -nt $(BENCH_NODE)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null; then cd $(BENCH_NODE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "note: no npm found; the benchmarks' Node reference cannot run (install Node.js 18 or newer)"; fi

# axe-core for the browser tests' accessibility checks (tests/accessibility.py), pinned by
# tests/a11y/package-lock.json and installed the book's way. Without npm those checks skip
# (fail under CI=true).
AXE := tests/a11y
axe-npm:
	@if [ $(AXE)/node_modules/.package-lock.json -nt $(AXE)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null; then cd $(AXE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "note: no npm found; the accessibility checks will skip (install Node.js 18 or newer)"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-artifacts *.egg-info $(BOOK)/_build $(BOOK)/node_modules \
	  $(AXE)/node_modules $(BENCH_NODE)/node_modules
