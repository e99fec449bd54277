# Two commands a new user needs: `make run` (site + background worker + fake Stripe +
# demo data on SQLite; Ctrl-C stops them all; see scripts/run-dev.sh) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test e2e lint format install clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@set -e; \
	python="$${PYTHON:-$$(sh scripts/find-python.sh)}"; \
	echo "Using $$python ($$($$python --version))"; \
	[ -x "$(PY)" ] || "$$python" -m venv "$(VENV)"; \
	"$(PY)" -m pip install --quiet --upgrade pip; \
	"$(PY)" -m pip install --quiet -r requirements-dev.txt; \
	touch "$@"

run: install
	DJANGO_DEBUG=1 sh scripts/run-dev.sh $(PY) $(HOST):$(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Browser tests only (Chromium from `apt-get install chromium`); screenshots land in
# artifacts/screenshots/.
e2e: install
	$(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
