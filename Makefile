# One entry point for everything a developer or CI does. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: what running needs (make run/sandbox/demo: requirements-run.txt), and everything (tests, linters,
# SAM: requirements-dev.txt, which includes the first). A fresh clone's `make run` installs only the first.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check --progress-bar off
# Python 3.13 (the Lambda runtime) when the machine has it, on PATH or through pyenv; else python3 >= 3.11.
PYTHON_BOOT ?= $(shell scripts/find-python)
ENV ?= uat

export PYTHONPATH := $(CURDIR)/layers/common$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help venv test checkov lint typecheck cfn-lint pytest unit integration e2e sandbox run reset demo stack-routes bench build deploy validate openapi keygen sign verify canonical clean probe

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(RUN_STAMP): requirements-run.txt layers/common/requirements.txt
	@test -x $(PY) || { echo "== creating $(VENV) with $(PYTHON_BOOT)"; $(PYTHON_BOOT) -m venv $(VENV); }
	@echo "== installing what running needs (requirements-run.txt); make venv or make test add the test tools"
	@# --no-compile: Python compiles each module on its first import instead, only the ones running uses
	$(PIP_INSTALL) --no-compile -r requirements-run.txt
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	@echo "== installing the test, lint and build tools (requirements-dev.txt)"
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP) ## create or refresh the virtualenv from the pinned files (everything: running, tests, SAM)

test: lint typecheck cfn-lint checkov pytest ## every check and every test (what CI runs)

lint: $(STAMP) ## ruff, and bandit over the layer and the functions (skips and their reasons: pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r layers functions

# checkov pins an older boto3 than the stack: its own virtualenv, from requirements-checkov.txt.
CHECKOV_STAMP := $(VENV)/checkov/.installed
$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(VENV)/checkov/bin/python || $(PYTHON_BOOT) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --disable-pip-version-check --progress-bar off -q -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP) ## checkov over template.yaml: 0 failed checks (accepted ones skipped in each resource's Metadata)
	$(VENV)/checkov/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

typecheck: $(STAMP) ## mypy (strict) on the layer and the bench (its in-memory store implements the Store protocol)
	$(VENV)/bin/mypy layers/common/htouhui layers/common/onboarding bench

# The regions the template is linted for: the default one and the two AWS China regions (docs/china.md).
LINT_REGIONS ?= us-east-1 cn-north-1 cn-northwest-1

cfn-lint: $(STAMP) ## lint the SAM template for us-east-1 and the AWS China regions
	$(VENV)/bin/cfn-lint --regions $(LINT_REGIONS) -- template.yaml

pytest: $(STAMP) ## the test suite (unit, integration, e2e)
	$(PY) -m pytest

unit: $(STAMP) ## unit tests only
	$(PY) -m pytest tests/unit

integration: $(STAMP) ## integration tests only
	$(PY) -m pytest tests/integration

e2e: $(STAMP) ## end-to-end tests only
	$(PY) -m pytest tests/e2e

sandbox: $(RUN_STAMP) ## the Htouhui sandbox alone on http://127.0.0.1:3100 (SANDBOX_PORT, SANDBOX_TIME_SCALE, HTOUHUI_PARTNER_ID)
	PYTHONPATH="$(CURDIR)/local:$(PYTHONPATH)" $(PY) -m sandbox serve

run: $(RUN_STAMP) ## the whole stack from template.yaml: API :3000, DynamoDB :5000, sandbox :3100 (docs/local.md)
	PYTHONPATH="$(CURDIR)/local:$(PYTHONPATH)" $(PY) -m stack $(ARGS)

reset: $(RUN_STAMP) ## start over: empty the running stack's tables and reset its sandbox (API_PORT)
	@PYTHONPATH="$(CURDIR)/local:$(PYTHONPATH)" $(PY) -m stack reset

demo: $(RUN_STAMP) ## one fresh user from register to status 3, step by step, against `make run` (or a stack it starts)
	PYTHONPATH="$(CURDIR)/local:$(PYTHONPATH)" $(PY) -m stack.demo $(ARGS)

stack-routes: $(RUN_STAMP) ## what `make run` would serve, read from template.yaml (routes, tables, event sources)
	@PYTHONPATH="$(CURDIR)/local:$(PYTHONPATH)" $(PY) -m stack.template $(or $(TEMPLATE),template.yaml)

openapi: $(STAMP) ## regenerate openapi.json (the merchant routes) from the handlers
	$(PY) scripts/gen-openapi

# SAM without Docker: the virtualenv's python3.13 (the Lambda runtime) first on PATH; no telemetry.
# PIP_INDEX_URL / PIP_TRUSTED_HOST: a PyPI mirror for builders inside China, passed to sam build's pip (docs/china.md).
PIP_MIRROR := $(if $(PIP_INDEX_URL),PIP_INDEX_URL="$(PIP_INDEX_URL)") $(if $(PIP_TRUSTED_HOST),PIP_TRUSTED_HOST="$(PIP_TRUSTED_HOST)")
SAM := SAM_CLI_TELEMETRY=0 $(PIP_MIRROR) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CURDIR)/$(VENV)/bin/sam
BUILD_DIR ?= .aws-sam/build

validate: $(STAMP) ## cfn-lint (LINT_REGIONS) and sam validate --lint on template.yaml, in us-east-1 and cn-north-1
	$(VENV)/bin/cfn-lint --regions $(LINT_REGIONS) -- template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1
	$(SAM) validate --lint --template template.yaml --region cn-north-1

bench: $(STAMP) ## benchmarks against their floors: prints a table, writes bench/results.json (about 4 min on 2 cores)
	$(PY) -m bench

build: $(STAMP) ## sam build for arm64 without a container (python3.13 from the virtualenv)
	@test -x $(VENV)/bin/python3.13 || { echo "make build needs $(VENV) on Python 3.13 (the Lambda runtime): rm -rf $(VENV) and make venv with python3.13 on PATH" >&2; exit 2; }
	$(SAM) build --template template.yaml --build-dir $(BUILD_DIR) --config-env $(ENV)
	@# Lambda's /opt and /var/task are read-only: without .pyc every cold start compiles every module (~430 ms,
	@# docs/performance.md). Python 3.13 bytecode is the same on arm64; unchecked-hash: no source timestamp check.
	$(PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR)

deploy: $(STAMP) ## sam build, then sam deploy --config-env ENV (make deploy ENV=uat|stage|prod)
	@case "$(ENV)" in uat|stage|prod|cn) ;; *) echo "ENV must be uat, stage, prod or cn, got '$(ENV)'" >&2; exit 2;; esac
	$(MAKE) --no-print-directory build ENV=$(ENV)
	$(SAM) deploy --config-env $(ENV) --template-file $(BUILD_DIR)/template.yaml

keygen: $(RUN_STAMP) ## a new merchant key pair: make keygen OUT=dir
	$(PY) -m htouhui keygen --out $(or $(OUT),.local/keys)

canonical: $(RUN_STAMP) ## canonical string of a JSON object of fields on stdin
	@$(PY) -m htouhui canonical

sign: $(RUN_STAMP) ## sign JSON fields on stdin: make sign KEY=merchant_private.pem
	@$(PY) -m htouhui sign --key $(KEY)

verify: $(RUN_STAMP) ## verify JSON fields on stdin: make verify KEY=htouhui_public.pem
	@$(PY) -m htouhui verify --key $(KEY)

clean: ## remove build output and caches (keeps the virtualenv)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache

# Operator commands against a deployed stack (docs/runbook.md): STACK=htouhui-onboarding-$(ENV) by default;
# STACK=local: the stack `make run` started (its /_local/health on API_PORT names its tables, queues and bus).
# USER_ID, not USER: make would take the login name from the environment.
ADMIN := $(PY) -m onboarding.ops.admin --stack $(or $(STACK),htouhui-onboarding-$(ENV)) $(if $(filter local,$(STACK)),--local-api http://127.0.0.1:$(or $(API_PORT),3000))

.PHONY: admin-show admin-check admin-stuck admin-redrive admin-reapply admin-republish admin-export admin-erase
admin-show: $(STAMP) ## a user and its history, masked: make admin-show USER_ID=u-0001 [ENV=prod]
	$(ADMIN) show $(USER_ID)
admin-check: $(STAMP) ## force a check of one user (CheckUserStatus on the bus): make admin-check USER_ID=u-0001
	$(ADMIN) check $(USER_ID)
admin-stuck: $(STAMP) ## users below status 3 not updated for DAYS (and STATUS=1|2|none): make admin-stuck DAYS=3
	$(ADMIN) stuck --days $(DAYS) $(if $(STATUS),--status $(STATUS))
admin-redrive: $(STAMP) ## dead letters back: make admin-redrive QUEUE=url|LogicalId (TO_BUS=default | TO_QUEUE=url|LogicalId)
	$(ADMIN) redrive $(QUEUE) $(if $(TO_QUEUE),--to-queue $(TO_QUEUE),--to-bus $(or $(TO_BUS),default))
admin-reapply: $(STAMP) ## verify a stored notification again and apply it: make admin-reapply NOTIFY_NO=N...
	$(ADMIN) reapply $(NOTIFY_NO)
admin-republish: $(STAMP) ## UserStatusChanged again from the table, same event_ids: make admin-republish USER_ID=u-0001 | SINCE=2026-12-01T00:00:00Z
	$(ADMIN) republish $(if $(SINCE),--since $(SINCE),$(USER_ID))
admin-export: $(STAMP) ## the user's own copy (PIPL art. 45), unmasked JSON: make admin-export USER_ID=u-0001 [OUT=file]
	$(ADMIN) export $(USER_ID) $(if $(OUT),--out $(OUT))
admin-erase: $(STAMP) ## erase a user's personal data, keep a tombstone: make admin-erase USER_ID=u-0001 CONFIRM=yes
	@test "$(CONFIRM)" = yes || { echo "erasure cannot be undone: add CONFIRM=yes" >&2; exit 2; }
	$(ADMIN) erase $(USER_ID) --yes

probe: $(STAMP) ## which protocol profile Htouhui speaks: make probe ENV=uat PARTNER_ID=P... KEY=merchant_private.pem HTOUHUI_KEY=htouhui_public.pem (from an address Htouhui allows; prod needs ALLOW_PROD=1; BASE_URL= another server, e.g. the sandbox)
	@test -n "$(PARTNER_ID)" -a -n "$(KEY)" -a -n "$(HTOUHUI_KEY)" || { echo "make probe needs PARTNER_ID, KEY and HTOUHUI_KEY (a path, file:, secretsmanager: or ssm:)" >&2; exit 2; }
	$(PY) -m onboarding.ops probe $(if $(BASE_URL),--base-url $(BASE_URL),--env $(ENV)) --partner-id $(PARTNER_ID) --key $(KEY) --htouhui-key $(HTOUHUI_KEY) $(if $(ALLOW_PROD),--allow-prod) $(foreach p,$(PROFILE),--profile $(p))
