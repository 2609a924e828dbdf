# Market & Media data platform. `make demo` and `make test` are the two commands a fresh clone needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.py constraints.txt | sha256sum | cut -c1-12)

.PHONY: setup constraints demo dev test test-unit lint services-start services-stop kafka-start kafka-stop s3-start s3-stop \
        postgres-start postgres-stop bench docs clean oidc-start oidc-stop versitygw-start versitygw-stop helm-install

setup: $(STAMP)

# pip's wheel cache lives in ~/.cache/pip, so a second clone installs from the cache in seconds.
$(STAMP): setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt --upgrade pip wheel setuptools
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip check
	@rm -f $(VENV)/.installed-* && touch $@

constraints:           ## re-resolve setup.py in a throwaway virtualenv and rewrite constraints.txt (name==version only)
	$(PYTHON) scripts/constraints.py regenerate

demo: setup            ## generate data, ingest it, build dbt, run checks, print campaign performance
	$(BIN)/mm demo

dev: setup             ## the Dagster UI on the embedded platform
	$(BIN)/mm dev

docs: setup            ## dbt docs for analysts
	$(BIN)/mm docs

test: setup            ## start Kafka, S3 and PostgreSQL (and build helm), run the whole suite, stop them
	scripts/test.sh

lint: setup            ## ruff (lint + format check) and sqlfluff over the dbt models; `scripts/lint.sh --fix` applies fixes
	scripts/lint.sh

test-unit: setup       ## no services needed
	$(BIN)/pytest -m unit

bench: setup           ## benchmarks/ at 1M events
	$(BIN)/python benchmarks/run.py

services-start: kafka-start s3-start postgres-start oidc-start versitygw-start
services-stop: kafka-stop s3-stop postgres-stop oidc-stop versitygw-stop

kafka-start: ; scripts/services/kafka.sh start
kafka-stop: ; scripts/services/kafka.sh stop
oidc-start: ; scripts/services/oidc.sh start
oidc-stop: ; scripts/services/oidc.sh stop
versitygw-start: ; scripts/services/versitygw.sh start
versitygw-stop: ; scripts/services/versitygw.sh stop
helm-install:          ## build helm from the Go module proxy (once, cached) for the chart tests in tests/deploy
	scripts/services/helm.sh install
s3-start: ; scripts/services/s3.sh start
s3-stop: ; scripts/services/s3.sh stop
postgres-start: setup ; $(BIN)/python scripts/services/postgres.py start
postgres-stop: ; @test ! -x $(BIN)/python || $(BIN)/python scripts/services/postgres.py stop

clean: services-stop
	rm -rf .mm dbt_project/target dbt_project/logs
