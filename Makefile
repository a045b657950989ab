# Two commands on a fresh machine: `make serve` (serve the committed default model)
# and `make test`. Both create the virtual environment and install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install system-deps serve test test-all train-default clean

$(STAMP): requirements.txt requirements-train.txt requirements-serve.txt
	$(MAKE) system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# Debian packages: the Fashion-MNIST idx files, Chromium for the page test and
# wrk for benchmarks/serve_load.py.
# Skipped quietly where apt is not available (tests then use the committed fixture).
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist chromium wrk || true; \
	else echo "apt-get not available: skipping Debian packages"; fi

serve: $(STAMP)
	SERVICE_MODEL_ROOT=$(CURDIR)/models $(BIN)/gunicorn -c gunicorn.conf.py --bind 0.0.0.0:$(PORT) "service:create_app()"

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
