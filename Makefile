# One task runner. `make run` installs and starts Matinee; `make test` installs and passes the tests.
VENV    ?= .venv
PYTHON  ?= python3
CONFIG  ?= config.toml
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: run test check fast fmt lint typecheck unit bench bench-quick demo system-deps clean install uninstall

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

system-deps:
	bash .ci/system-deps.sh

# 0600: the file will hold the Usenet password and the indexers' API keys.
$(CONFIG):
	install -m 600 config.example.toml $(CONFIG)
	@echo "Created $(CONFIG) from config.example.toml: edit it to add your accounts."

run: $(STAMP) $(CONFIG)
	$(VENV)/bin/matinee serve --config $(CONFIG)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

# The quick loop while working: everything but the tests marked slow (browsers, kill and
# restart of whole servers, big posts).
fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow"

# Before a commit: lint, types and the fast tests.
check: $(STAMP)
	$(MAKE) lint typecheck fast

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: system-deps $(STAMP)
	$(MAKE) lint typecheck unit

bench: system-deps $(STAMP)
	$(PY) bench/download.py --sizes 500,2048
	$(PY) bench/playback.py
	$(PY) bench/hls.py
	$(PY) bench/mirror.py
	$(PY) bench/ready.py
	$(PY) bench/line.py

# The line profiles beside NZBGet and SABnzbd in a few minutes (smaller post, fewer runs).
bench-quick: system-deps $(STAMP)
	$(PY) bench/line.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache test-output bench/out

demo: system-deps $(STAMP)
	$(PY) -m tests.support.demo

# Matinee as a systemd service (as root): see systemd/install.sh and the README.
install:
	bash systemd/install.sh install

uninstall:
	bash systemd/install.sh uninstall
