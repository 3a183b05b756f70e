# kernel-access: every target bootstraps what it needs (.venv, node_modules) itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.kernel-access-installed
NODE_STAMP := node_modules/.kernel-access-installed
CDK := node_modules/.bin/cdk

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Synth needs no AWS account: keep any ambient credentials out of it.
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help synth test lint bench demo clean

help:
	@echo "make synth   install what is needed, synthesise the kernel and partner stacks into cdk.out/"
	@echo "make test    install what is needed, run lint and every test"
	@echo "make lint    ruff + mypy"
	@echo "make bench   run the benchmarks and print ratios against in-run baselines"
	@echo "make demo    run the kernel stack locally: one allowed and one denied request, and their audit records"

# Rebuilt when pyproject.toml changes (the stamp is older) or the venv is missing.
$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install --quiet -e '.[cdk,dev]' 2>&1 | grep -v "is ignored: it is neither" ; test $${PIPESTATUS[0]} -eq 0
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

synth: $(VENV_STAMP) $(NODE_STAMP)
	@rm -rf cdk.out
	@echo "synthesising (cdk-nag AwsSolutions + Serverless run as part of it) ..."
	@$(CDK) synth --quiet --no-notices --no-version-reporting 2>&1 >/dev/null | grep -v '^Supply a stack id' >&2 ; test $${PIPESTATUS[0]} -eq 0
	@$(PY) -c "import json; m=json.load(open('cdk.out/manifest.json')); print('\n'.join('synthesised ' + k for k,v in sorted(m['artifacts'].items()) if v['type']=='aws:cloudformation:stack'))"

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Two workers, whole files per worker (session fixtures such as a synthesised assembly stay per
# worker): about 4.5 min instead of 5.7 min on 2 cores.
test: $(VENV_STAMP) $(NODE_STAMP) lint
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(VENV_STAMP)
	$(PY) -m benchmarks

# `kernel-access local` synthesises cdk.out itself (runs the app of cdk.json) when it is missing or stale.
demo: $(VENV_STAMP) $(NODE_STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf cdk.out cdk.local.out .pytest_cache .mypy_cache .ruff_cache build dist
