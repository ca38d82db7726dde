# LLM Lab: every entry point of the course. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.llmlab-installed
export HF_HUB_OFFLINE ?= 1
# the venv's tools first (ninja above all: DeepSpeed's op is compiled with whichever ninja comes first, and two
# different ninjas each think the other's build is stale, so the op would be rebuilt every time)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help setup lab update test test-fast release check autograde progress bench clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv, install the pinned CPU stack and the course, register the "llmlab" Jupyter kernel

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name llmlab --display-name "Python (LLM Lab)"
	touch $(STAMP)

lab: update  ## open JupyterLab on workspace/, your git-ignored copy of weeks/ (the learner's main job)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=workspace

update: $(STAMP)  ## bring new or updated release notebooks into workspace/ (never overwrites your answers)
	$(PY) -m autograder update

test: $(STAMP)  ## the whole test suite (what CI runs): units, every notebook in FAST mode, nbgrader round trips
	LLMLAB_FAST=1 $(PY) -m pytest

test-fast: $(STAMP)  ## the unit tests only (no notebook execution)
	LLMLAB_FAST=1 $(PY) -m pytest -m "not notebooks"

release: $(STAMP)  ## regenerate weeks/ from solutions/ with nbgrader (commit the result)
	$(PY) -m autograder release

check: $(STAMP)  ## self-check one learner notebook: make check NB=weeks/week01/01_attention.ipynb
	@test -n "$(NB)" || (echo "usage: make check NB=weeks/week01/01_attention.ipynb" && exit 2)
	$(PY) -m autograder check $(NB)

SUBMISSIONS ?= submitted
OUT         ?= grading
JOBS        ?=
autograde: $(STAMP)  ## grade a cohort, sandboxed and in parallel: make autograde SUBMISSIONS=submitted OUT=grading [JOBS=n]
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) $(if $(JOBS),-j $(JOBS))

progress: $(STAMP)  ## the learner's score per week, as bars: make progress [WEEKS=weeks]
	$(PY) -m autograder progress $(or $(WEEKS),$(if $(wildcard workspace),workspace,weeks))

BENCHES := $(patsubst benchmarks/bench_%.py,%,$(wildcard benchmarks/bench_*.py))
bench:  ## list the benchmarks; run one with make bench-NAME (each prints figures, asserts nothing)
	@for b in $(BENCHES); do printf "  make bench-%-14s " $$b; sed -n 1p benchmarks/bench_$$b.py | sed 's/^"""//'; done

bench-%: $(STAMP)  ## e.g. make bench-week01 (time to val 1.88), bench-grading, bench-tokenizers, bench-train, bench-attention
	$(PY) benchmarks/bench_$*.py $(ARGS)

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache runs out benchmarks/results
	find . -name __pycache__ -prune -exec rm -rf {} +
