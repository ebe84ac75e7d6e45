# exo-autoscale — the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Dependency order: a package comes after the packages it needs.
PACKAGES := exo-client exo-zone slow-web exo-sd exo-scaler exo-lab exo-testkit
APT_PACKAGES := prometheus prometheus-alertmanager cloud-init systemd
SPEED ?= 10
DEMO_ARGS ?=

.PHONY: help bootstrap system-packages venv test check tox demo wheels deploy destroy record-cassettes bench bench-quick lint fmt clean

help:
	@echo "make demo              run the whole autoscaling loop locally (exo-lab) and write a report"
	@echo "make test              every test suite (tox: one env per package + lint, type, infra, e2e); what CI runs"
	@echo "make check             the edit loop: lint, types and unit tests, no lab runs (3–4 minutes)"
	@echo "make wheels            build every package's wheel into dist/ (what cloud-init installs)"
	@echo "make deploy            wheels, terraform apply on Exoscale, then each service's key proven (needs EXOSCALE_API_KEY/SECRET)"
	@echo "make destroy           terraform destroy: nothing left running or billing"
	@echo "make record-cassettes  re-record the vcrpy cassettes (exo-client, exo-sd) against a local exo-zone (fast timings)"
	@echo "make bench             benchmarks (make bench-quick for the short smoke run)"

bootstrap: system-packages venv

# Prometheus, Alertmanager and promtool are the real Debian binaries; cloud-init gives
# `cloud-init schema`, systemd gives `systemd-analyze verify`.
system-packages:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v cloud-init >/dev/null || missing="$$missing cloud-init"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing — install them (Debian/Ubuntu: sudo apt-get install$$missing) and re-run"; exit 1; \
	  fi; \
	fi

$(BIN)/tox:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "tox>=4.22" "tox-uv>=1.11" "build>=1.2" "ruff>=0.6"

# The development venv: every package editable, so `exo-lab run` and the CLIs work from the tree.
$(VENV)/.installed: $(BIN)/tox $(foreach p,$(PACKAGES),packages/$(p)/pyproject.toml)
	$(BIN)/pip install -q $(foreach p,$(PACKAGES),-e packages/$(p))
	$(BIN)/pip install -q --group test --group type 2>/dev/null || $(BIN)/pip install -q pytest pytest-timeout vcrpy hypothesis httpx pytest-socket jsonschema mypy types-requests types-PyYAML
	touch $@

venv: $(VENV)/.installed

# The whole-loop e2e tests first and alone: their assertions are about timing (no reversal,
# one decision a tick), so nothing may compete with them for the 2 cores. Then every other env
# two at a time; bench-smoke's exit status says only whether the code worked, never a figure.
PARALLEL_ENVS := exo-lab,bench-smoke,wheels,exo-sd,infra,exo-scaler,type,slow-web,exo-zone,exo-client,lint
test: bootstrap
	$(BIN)/tox run -e e2e
	$(BIN)/tox run-parallel --parallel 2 --parallel-no-spinner -e $(PARALLEL_ENVS)

tox: test

# The edit loop: no real Prometheus, no member processes, no lab run. Each package's tests run
# on their own (their tests/ folders import sibling helper modules by name).
UNIT_TESTS := exo-zone exo-client slow-web exo-sd exo-scaler exo-lab
check: venv
	$(BIN)/ruff check packages infra
	$(BIN)/ruff format --check packages infra
	$(BIN)/python -m mypy $(foreach p,$(filter-out exo-testkit,$(PACKAGES)),packages/$(p)/src) packages/exo-testkit/src
	@for p in $(UNIT_TESTS); do \
	  echo "== $$p"; \
	  $(BIN)/pytest -q -p no:cacheprovider packages/$$p/tests -m "not e2e and not integration" || exit 1; \
	done

demo: bootstrap
	$(BIN)/exo-lab run --speed $(SPEED) $(DEMO_ARGS)

# Reproducible: the build backend is pinned exactly in every pyproject.toml, and the zip
# timestamps are poetry-core's own default instant whatever SOURCE_DATE_EPOCH the caller's
# environment holds. The same tree gives the same sha256 (tests/test_wheels.py), so a
# re-deploy without a code change replaces nothing.
WHEEL_EPOCH := 1451606400
wheels: $(BIN)/tox
	rm -rf dist && mkdir -p dist
	@for p in $(PACKAGES); do \
	  [ "$$p" = exo-testkit ] && continue; \
	  SOURCE_DATE_EPOCH=$(WHEEL_EPOCH) $(BIN)/python -m build --wheel --outdir dist packages/$$p >/dev/null || exit 1; \
	done
	@ls -1 dist

# Terraform reads no EXOSCALE_* variable itself; the SOS (aws) provider needs the key as a
# variable, so both providers get it from TF_VAR_*. Extra arguments: TF_ARGS='-var ...' (each
# word reaches Terraform as it was typed, quotes and brackets included: make single-quotes every
# word, so the recipe's shell removes nothing), or a tfvars file: TF_VARS_FILE=my.tfvars.
TF := terraform -chdir=infra/terraform
TF_ARGS ?=
TF_VARS_FILE ?=
sq = '$(subst ','"'"',$(1))'
tf_args = $(if $(TF_VARS_FILE),$(call sq,-var-file=$(abspath $(TF_VARS_FILE)))) $(foreach word,$(TF_ARGS),$(call sq,$(word)))
define tf_credentials
	@test -n "$$EXOSCALE_API_KEY" -a -n "$$EXOSCALE_API_SECRET" || { echo "export EXOSCALE_API_KEY and EXOSCALE_API_SECRET first"; exit 1; }
	$(if $(TF_VARS_FILE),@test -f $(call sq,$(TF_VARS_FILE)) || { echo "TF_VARS_FILE=$(TF_VARS_FILE): no such file"; exit 1; })
endef

# Not done until each service's key is proven: right after apply, every call exo-sd and
# exo-scaler make, with their own generated keys, and one each must be refused (exo-lab
# check-keys, one line per call). A scoped rule refused while the operator's key may make the
# same call names the fallback, -var iam_scope_by_id=false (docs/security.md).
deploy: wheels venv
	$(tf_credentials)
	$(TF) init -input=false
	TF_VAR_exoscale_api_key="$$EXOSCALE_API_KEY" TF_VAR_exoscale_api_secret="$$EXOSCALE_API_SECRET" \
	  $(TF) apply -input=false $(tf_args)
	$(TF) output -json | $(BIN)/exo-lab check-keys --outputs -
	@echo "deployed, and both keys proven"

destroy:
	$(tf_credentials)
	$(TF) init -input=false
	TF_VAR_exoscale_api_key="$$EXOSCALE_API_KEY" TF_VAR_exoscale_api_secret="$$EXOSCALE_API_SECRET" \
	  $(TF) destroy -input=false $(tf_args)

record-cassettes: venv
	$(BIN)/python packages/exo-client/tests/record_cassettes.py
	$(BIN)/python packages/exo-sd/tests/record_cassettes.py

bench: venv
	$(BIN)/python -m exo_lab.bench --out bench-results

bench-quick: venv
	$(BIN)/python -m exo_lab.bench --quick --out bench-results

lint: $(BIN)/tox
	$(BIN)/tox run -e lint

fmt: $(BIN)/tox
	$(BIN)/ruff format packages infra
	$(BIN)/ruff check --fix packages infra

clean:
	rm -rf $(VENV) .tox dist build
