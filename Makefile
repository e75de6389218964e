# Every target delegates to dev.py, which needs only python3 (it installs uv when missing).
# Extra arguments: `make test ARGS="-k heartbeat"`.
PYTHON ?= python3
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: install lint format typecheck lock-check test bench demo images release release-check deploy-check ci help

install: ## Install uv if missing, then the locked environment
	$(PYTHON) dev.py install $(ARGS)

lint: ## Ruff lint and format check
	$(PYTHON) dev.py lint $(ARGS)

format: ## Sort imports and reformat in place
	$(PYTHON) dev.py format $(ARGS)

typecheck: ## Mypy, strict
	$(PYTHON) dev.py typecheck $(ARGS)

lock-check: ## Fail when uv.lock is stale
	$(PYTHON) dev.py lock-check $(ARGS)

test: ## Run the test suite (ARGS go to pytest)
	$(PYTHON) dev.py test $(ARGS)

bench: ## Run the end-to-end benchmark
	$(PYTHON) dev.py bench $(ARGS)

demo: ## Run the one-command demo
	$(PYTHON) dev.py demo $(ARGS)

images: ## Each service image's closure, input digest and tag
	$(PYTHON) dev.py images $(ARGS)

release: ## Release what changed since its last release
	$(PYTHON) dev.py release $(ARGS)

release-check: ## Fail when a changed library has no bump and no Unreleased entry
	$(PYTHON) dev.py release-check $(ARGS)

deploy-check: ## hadolint, ansible-lint, manifest schemas, deptry
	$(PYTHON) dev.py deploy-check $(ARGS)

ci: ## Everything CI checks: lint, typecheck, lock, release and deploy checks, tests
	$(PYTHON) dev.py ci $(ARGS)

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'
