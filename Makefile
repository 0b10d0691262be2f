# leadscore — developer entry points. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON312 := $(shell infra/build/find_python312.sh)
ifeq ($(PYTHON312),)
$(error Python 3.12 is required (see the message above))
endif

VENV      := .venv
PY        := $(VENV)/bin/python
SAM_VENV  := .tools/sam
SAM       := $(SAM_VENV)/bin/sam
# sam build resolves the python3.12 builder from PATH.
SAM_ENV   := PATH="$(dir $(PYTHON312)):$$PATH" SAM_CLI_TELEMETRY=0
PYTEST    := $(PY) -m pytest

.PHONY: help setup demo test test-fast lint model events build lambda-image sam-invoke bench clean

help:
	@echo "make demo   - set up, start the local stack, score ~200 synthetic contacts"
	@echo "make test   - set up; lint, sam build + artifact checks, all tests"
	@echo "make build  - sam build + artifact checks (sizes, glibc, bare imports)"
	@echo "make lambda-image - the Lambda-style image for sam local invoke (root, Docker; cached)"
	@echo "make sam-invoke   - sam local invoke every function with its events/ (local stack)"
	@echo "make bench  - every benchmark: a markdown table, JSON in \$$BENCH_OUT"
	@echo "make model  - retrain the default model shipped in the model layer"
	@echo "make setup  - create .venv (Python 3.12) with the project and dev tools"

# The layers' locks are constraints: .venv runs the versions the layers ship (infra/build/layer_pins.py).
LAYER_LOCKS := $(wildcard layers/*/requirements*.txt)
$(VENV)/.installed: pyproject.toml $(LAYER_LOCKS)
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) infra/build/layer_pins.py > $(VENV)/layer-constraints.txt
	$(PY) -m pip install --quiet -e '.[dev]' -c $(VENV)/layer-constraints.txt
	@touch $@

$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli==1.170.0'
	@touch $@

setup: $(VENV)/.installed

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/cfn-lint template.yaml

# The build is part of the test: the artifact checks and build-marked tests run on its output.
test: setup lint build
	$(PYTEST)

test-fast: setup
	$(PYTEST) -x -q -m "not e2e and not build"

demo: setup
	$(VENV)/bin/leadscore local demo

model: setup
	$(PY) infra/build/train_default_model.py

events: setup
	$(PY) -m leadscore_local.sample_events --out events

build: setup $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) build
	$(PY) infra/build/check_artifacts.py .aws-sam/build

# The image for `sam local invoke --invoke-image` (infra/lambda_image/build.sh): built offline,
# skipped when an image with the same inputs exists; prints its tag.
lambda-image: setup
	@PYTHON312=$(PYTHON312) infra/lambda_image/build.sh

# Every function with each of its sample events, in that image, against a fresh local stack.
sam-invoke: build lambda-image
	$(PY) -m leadscore_local.sam_invoke all

# Every benchmark; one markdown table on stdout, the same figures as JSON in $(BENCH_OUT).
BENCH_OUT ?= bench-results.json
bench: build
	BENCH_OUT=$(BENCH_OUT) $(PY) infra/bench/run_all.py

clean:
	rm -rf .aws-sam build .pytest_cache .ruff_cache
