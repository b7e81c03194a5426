# stepdeploy - the two commands:  make demo   and   make test
# Each installs into a local virtualenv (.venv) on first use what it needs, from the hash-pinned locks in
# requirements/ (tools/install.sh: uv, bootstrapped from PyPI, or pip when uv cannot be had):
# `make demo` only the runtime and the local world (demo.lock), `make test` everything (test.lock).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_STAMP := $(VENV)/.stamp-demo
TEST_STAMP := $(VENV)/.stamp-test
INSTALL    := PYTHON=$(PYTHON) VENV=$(VENV) sh tools/install.sh
export PYTHONPATH := $(CURDIR)/layers/common:$(CURDIR)/local:$(CURDIR)/cli
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
# uv does not compile bytecode at install (for every module of every package that would cost more than the
# demo's own run): Python caches what a run imports, so the second run does not compile it again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test checks lint typecheck templates unit serve bench lock clean

$(DEMO_STAMP): requirements/demo.lock tools/install.sh
	@$(INSTALL) demo
	@touch $@

# the test set includes the demo set
$(TEST_STAMP): requirements/test.lock tools/install.sh
	@$(INSTALL) test
	@touch $@ $(DEMO_STAMP)

# checkov pins dependencies that conflict with the toolchain above: it gets a virtualenv of its own
SCAN_VENV  ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.stamp
$(SCAN_STAMP): requirements/scan.lock tools/install.sh
	@PYTHON=$(PYTHON) VENV=$(SCAN_VENV) sh tools/install.sh scan
	@touch $@

# Security scanners (checkov, cfn-lint's serverless rules) fail on any finding that is neither fixed nor waived
# inline on its resource (Metadata checkov.skip / cfn-lint.config.ignore_checks, each with its reason);
# python tools/waivers.py lists the waivers. SCAN_REPORT_ONLY: scanned and reported, not (yet) failing.
# cfn-lint checks every template once (~6 s of CPU each): the scanned ones with the serverless rules added, the
# others (e.g. those in SCAN_REPORT_ONLY, whose serverless findings only report) without
LINTED_TEMPLATES   := template.yaml $(wildcard layers/common/stepdeploy/stacks/*.yaml) examples/pipeline/pipeline.yaml
SCANNED_TEMPLATES  ?= template.yaml examples/pipeline/pipeline.yaml layers/common/stepdeploy/stacks/app.yaml
SCAN_REPORT_ONLY   ?=
LINTED_ONLY         = $(filter-out $(SCANNED_TEMPLATES),$(LINTED_TEMPLATES))
# offline: no Prisma Cloud download, no PyPI version check (no API key is used)
CHECKOV = BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(SCAN_VENV)/bin/checkov --framework cloudformation \
	--skip-download --compact --quiet

## demo: from an empty account: provision, deploy, roll back, every trigger, an infrastructure change
demo: $(DEMO_STAMP)
	$(BIN)/python -m stepdeploy_local demo $(ARGS)

## serve: the local world as a server on 127.0.0.1:5000 (aws --endpoint-url http://127.0.0.1:5000 ...)
serve: $(DEMO_STAMP)
	$(BIN)/python -m stepdeploy_local serve $(ARGS)

## bench: the benchmark (scenarios, imports, sizes, wall times, throughput); JSON under .bench/
bench: $(TEST_STAMP)
	$(BIN)/python tools/bench.py $(ARGS)

## test: lint, types, template validation and the whole test suite. The checks run beside pytest (its workers
## and one check at a time share the cores: the checks alone would leave one idle), each target's output together.
test: $(TEST_STAMP) $(SCAN_STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target checks unit

checks: lint typecheck templates

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check layers local functions tests tools cli

typecheck: $(TEST_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy functions --explicit-package-bases

templates: $(TEST_STAMP) $(SCAN_STAMP)
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)
	$(BIN)/cfn-lint --append-rules cfn_lint_serverless.rules -- $(SCANNED_TEMPLATES)
	$(if $(LINTED_ONLY),$(BIN)/cfn-lint -- $(LINTED_ONLY))
	$(CHECKOV) $(addprefix --file ,$(SCANNED_TEMPLATES))
	$(BIN)/python tools/waivers.py --check $(SCANNED_TEMPLATES) > /dev/null
	$(if $(SCAN_REPORT_ONLY),-$(BIN)/cfn-lint --append-rules cfn_lint_serverless.rules -- $(SCAN_REPORT_ONLY))
	$(if $(SCAN_REPORT_ONLY),-$(CHECKOV) $(addprefix --file ,$(SCAN_REPORT_ONLY)))

# one worker per core; tests are spread one by one, those that share a module fixture (a world or a
# template built once) go together to one worker (tests/conftest.py marks them xdist_group)
PYTEST_ARGS ?= -n auto --dist loadgroup
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lock: regenerate requirements/*.lock (every package, with hashes) after changing requirements-dev.txt,
## layers/common/requirements.txt or requirements/*.in
lock:
	$(INSTALL) lock

clean:
	rm -rf $(VENV) $(SCAN_VENV) .uv .aws-sam .pytest_cache .mypy_cache .ruff_cache
