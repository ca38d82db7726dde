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

.PHONY: help setup lab update test test-fast release check autograde progress bench serve eval-report clean

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

# pytest-xdist workers for make test / test-fast: one per core unless JOBS=n (JOBS=1: one process, no workers);
# NB=weeks/week04 (a week or one notebook, under weeks/ or solutions/; several allowed) runs those notebooks' tests only
JOBS ?=
NB   ?=
TEST_JOBS = $(if $(filter 1,$(JOBS)),-n 0,-n $(or $(JOBS),$(shell nproc 2>/dev/null || echo 2)))
TEST_NB   = $(if $(NB),tests/test_notebooks.py $(foreach n,$(NB),--nb $(n)))

# no bytecode written into the checkout while tests run: the grading tests checksum the repository (__pycache__
# included) around each graded submission, and kernels of the notebook tests run beside them
test: $(STAMP)  ## the whole suite (what CI runs), in parallel: make test [JOBS=n] [NB=weeks/week04]; ends with a time table
	LLMLAB_FAST=1 PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest $(TEST_JOBS) $(TEST_NB)

test-fast: $(STAMP)  ## the unit tests only (no notebook execution), in parallel: make test-fast [JOBS=n]
	LLMLAB_FAST=1 PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest $(TEST_JOBS) -m "not notebooks"

release: $(STAMP)  ## regenerate weeks/ from solutions/ with nbgrader (commit the result)
	$(PY) -m autograder release

check: $(STAMP)  ## self-check one learner notebook: make check NB=weeks/week01/01_attention.ipynb
	@test -n "$(NB)" || (echo "usage: make check NB=weeks/week01/01_attention.ipynb" && exit 2)
	$(PY) -m autograder check $(NB)

SUBMISSIONS ?= submitted
OUT         ?= grading
autograde: $(STAMP)  ## grade a cohort, sandboxed and in parallel: make autograde SUBMISSIONS=submitted OUT=grading [JOBS=n]
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) $(if $(JOBS),-j $(JOBS))

progress: $(STAMP)  ## the learner's score per week, as bars: make progress [WEEKS=weeks]
	$(PY) -m autograder progress $(or $(WEEKS),$(if $(wildcard workspace),workspace,weeks))

MODELS ?= llama-base llama-chat shakespeare-bpe tang-poetry
eval-report: $(STAMP)  ## the Week 7 evaluation report: make eval-report [MODELS="llama-base /path/to/hf-folder openai:NAME@URL"] [REPORT=report]
	$(PY) -m llmlab.evaluate --models $(MODELS) --out $(or $(REPORT),report)

BENCHES := $(patsubst benchmarks/bench_%.py,%,$(wildcard benchmarks/bench_*.py))
bench:  ## list the benchmarks; run one with make bench-NAME (each prints figures, asserts nothing)
	@for b in $(BENCHES); do printf "  make bench-%-14s " $$b; sed -n 1p benchmarks/bench_$$b.py | sed 's/^"""//'; done

bench-vlm-serve: $(STAMP)  ## Week 8: food-vlm answers/s through the OpenAI-compatible server (image content parts)
	$(PY) benchmarks/bench_vlm_serve.py $(ARGS)

bench-%: $(STAMP)  ## e.g. make bench-week01 (time to val 1.88), bench-grading, bench-tokenizers, bench-train, bench-attention
	$(PY) benchmarks/bench_$*.py $(ARGS)

MODEL ?= llama-chat
HOST  ?= 127.0.0.1
PORT  ?= 8000
serve: $(STAMP)  ## the OpenAI-compatible server on a zoo model or HF folder: make serve [MODEL=llama-chat] [PORT=8000]
	$(PY) -m llmlab.serve --model $(MODEL) --host $(HOST) --port $(PORT) $(ARGS)

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache runs out benchmarks/results
	find . -name __pycache__ -prune -exec rm -rf {} +
