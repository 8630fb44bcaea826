# Two entry points (see README): `make app` and `make test`. Everything else is setup.
PY := .venv/bin/python
STAMP := .venv/.installed
SHARED_MOVIES := $(abspath ../shared/datasets/movies.json)
PORT ?= 8501

# Point the app at the shared copy of movies.json when it is there; otherwise the app
# downloads it (or says why it cannot).
ifneq ($(wildcard $(SHARED_MOVIES)),)
export RERANK_MOVIES_PATH ?= $(SHARED_MOVIES)
endif

.PHONY: app test lint setup browser postgresql system bench

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# Debian packages the tests need, in one apt-get run: chromium (browser tests) and
# postgresql (the state-store and two-replica tests start it on loopback).
browser postgresql: system
system:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# serve.py = `streamlit run app.py` + deep links from the first request + warm-up at start;
# `core warmup --if-needed` fills the disk cache once (bi-encoder export, movies embeddings).
app: setup
	$(PY) -m core warmup --if-needed
	$(PY) serve.py --server.port $(PORT)

lint: setup
	$(PY) -m ruff check .

# The suite in TEST_WORKERS pytest-xdist workers (each test file one unit, heaviest files
# first: see tests/conftest.py), then the 15 slowest tests. `make test TEST_WORKERS=0`
# runs it in one process.
TEST_WORKERS ?= 2
test:
	@$(MAKE) --no-print-directory -j2 setup system  # pip and apt-get side by side
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15
