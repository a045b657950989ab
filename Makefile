# Two commands on a fresh machine: `make serve` (serve the committed default model)
# and `make test`. Both create the virtual environment and install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
MODELS ?= models
# pytest-xdist processes for `make test`: two halve the quick run on 2 cores (most of a test's
# time is a subprocess importing TensorFlow or a server starting, which leaves a core idle).
# --dist loadfile keeps a file's tests in one process, so its module and session fixtures
# (trained models, servers) are built once per process, not once per test. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

.PHONY: install system-deps serve test test-all train-default retrain clean

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
	SERVICE_MODEL_ROOT=$(CURDIR)/models PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py "service:create_app()"

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# One batch retraining job (docs/retraining.md): publishes only a model not worse than
# the served one. `make retrain NAME=flowers DATA=photos/flowers RETRAIN_ARGS="--then optimize"`
# MODELS goes in as --models-dir, the shorthand of models_dir (a --set models_dir in
# RETRAIN_ARGS wins); a model with nothing published needs RETRAIN_ARGS=--allow-new.
retrain: $(STAMP)
	@test -n "$(NAME)" || { echo "make retrain needs NAME=<model> (and DATA=<folder or .npz> for new data)"; exit 2; }
	$(BIN)/python -m training retrain --name $(NAME) --models-dir $(MODELS) $(if $(DATA),--data $(DATA)) $(RETRAIN_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
