# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export BANNERS_STATE_DIR ?= $(CURDIR)/var

.PHONY: install run test fuzz bench stress bench-loader stop clean sample screenshot deploy-check deploy-aws

install: $(STAMP)

# Re-installs when the pins change. greenlet 3 goes first, then meinheld 1.0.2 built
# from its sdist with the project's fixes (third_party/meinheld/build.py says which).
$(STAMP): setup.cfg constraints.txt pyproject.toml third_party/meinheld/build.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==24.3.1 setuptools==75.6.0 wheel==0.45.1
	$(BIN)/python -m pip install -q -c constraints.txt greenlet
	$(BIN)/python third_party/meinheld/build.py
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench,deploy]'
	touch $@

sample: install
	$(BIN)/banners sample-data var/sample --seed 1

# make run [PORT=8000] [HOST=127.0.0.1] [DATA=folder] [IMAGES=folder]
# The port is checked first.  DATA is loaded (replacing what is published); without it
# the sample data is loaded only when nothing is published yet: make run never replaces
# data it did not bring.  Every request is logged on standard output.
PORT ?= 8000
HOST ?= 127.0.0.1
run: install
	@$(BIN)/python -m banner_server.bind "$(HOST):$(PORT)"
	@mkdir -p -m 700 "$(BANNERS_STATE_DIR)"  # before sample-data writes into it: operators' files only
	@if [ -n "$(DATA)" ]; then \
	    $(BIN)/banners load "$(DATA)"; test $$? -ne 1; \
	elif $(BIN)/banners status --json 2>/dev/null | grep -q '"loaded": true'; then \
	    echo "serving what is already published (banners status); make run DATA=folder loads another"; \
	else \
	    $(BIN)/banners sample-data var/sample --seed 1 && $(BIN)/banners load var/sample --seed 1; test $$? -ne 1; \
	fi
	$(BIN)/banners serve --bind "$(HOST):$(PORT)" --access-log - $(if $(IMAGES),--images "$(IMAGES)")

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=12

# The property and fuzz tests with 20x their examples, fresh random ones each run.
fuzz: install
	BANNERS_FUZZ_SCALE=20 $(BIN)/python -m pytest -n 2 -q tests/test_fuzz.py tests/test_rules.py tests/test_reader_differential.py

bench: install
	$(BIN)/python bench/throughput.py

bench-loader: install
	$(BIN)/python bench/loader_bench.py

stress: install
	$(BIN)/python bench/stress.py

# Each deploy/ artefact checked offline by its ecosystem's linter (README: Deploying).
deploy-check: install
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yml
	$(BIN)/cfn-lint --include-checks I -- deploy/aws/banners.yaml
	deploy/systemd/verify.sh
	$(BIN)/shellcheck deploy/install-host.sh deploy/aws/bootstrap.sh deploy/aws/deploy.sh deploy/systemd/verify.sh

# Creates or updates the AWS stack (needs the AWS CLI, credentials and VPC_ID,
# LB_SUBNETS, INSTANCE_SUBNETS, REPO: see deploy/aws/deploy.sh). Never run by CI.
deploy-aws:
	deploy/aws/deploy.sh

stop:
	-test -x $(BIN)/banners && $(BIN)/banners redis stop

clean: stop
	rm -rf $(VENV) var .pytest_cache .hypothesis

# The README's picture of /dashboard, from a server started by `make run` on
# $(HOST):$(PORT), in headless Chromium (apt-get install chromium).
screenshot: install
	$(BIN)/python docs/screenshot.py http://$(HOST):$(PORT)/dashboard docs/dashboard.png --width 900 --height 1000
