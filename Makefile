# Every command a person runs. `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
# Runs import scikit-learn; without cached bytecode each one recompiles it (~1.5 s).
unexport PYTHONDONTWRITEBYTECODE
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo demo-local test test-fast lint format bench bench-dash bench-ray kafka-jars kafka-up kafka-down kafka-status clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev,examples,optuna,ray]'
	rm -f $(VENV)/.installed-* && touch $@

## The quick-start example end to end: a Polyaxon mapping of 4 configurations trained on this machine.
demo-local: install
	$(BIN)/bridge run -f examples/quick-start/mapping.yaml

## `make demo`: Optuna's TPE tunes the quick-start model through the Kafka bridge (a local broker, `bridge serve`,
## examples/optuna/optimize.py); see deploy/demo.sh. DEMO_ARGS go to optimize.py, e.g. DEMO_ARGS="--iterations 8".
demo: install
	bash deploy/demo.sh $(DEMO_ARGS)

## Lint, type-check, then every test (the real Kafka broker and a three-node Ray cluster are started by the test
## session itself, in a private network namespace with loopback only: tests/private_network.sh).
## The AsyncAPI parser comes from npm when the test first runs: that test runs first, outside the namespace.
test: install kafka-jars lint
	$(BIN)/pytest -q -p no:cacheprovider tests/contract/test_schemas_asyncapi_parser.py
	bash tests/private_network.sh $(BIN)/pytest -q -p no:cacheprovider \
		--ignore=tests/contract/test_schemas_asyncapi_parser.py $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -q -m "not kafka" $(PYTEST_ARGS)

lint: install
	$(BIN)/python tests/import_graph.py  # no import circle, the layers kept, aiokafka and ray in their folders
	$(BIN)/ruff check bridge tests examples benchmarks
	$(BIN)/ruff format --check bridge tests examples benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format bridge tests examples benchmarks
	$(BIN)/ruff check --fix bridge tests examples benchmarks

## The figures of BENCHMARKS.md (issue 9's P1, P2, P3, P5, issue 18's one-study load and the memory bound), each against its baseline in the
## same run; benchmarks/report.py writes them into BENCHMARKS.md's table.
bench: install kafka-jars
	# Byte-compiled first, as an installed package is (pip compiles at install): with PYTHONDONTWRITEBYTECODE set,
	# every `bridge` process would otherwise compile the modules changed since the last compile, at each start.
	$(BIN)/python -m compileall -q bridge
	$(BIN)/python benchmarks/run_overhead.py && $(BIN)/python benchmarks/serve_throughput.py
	$(BIN)/python benchmarks/one_study.py
	# Profiles in a run of their own: attaching py-spy and JFR stalls serve and the broker for seconds, which the
	# measured run above must not include.
	$(BIN)/python benchmarks/one_study.py --seconds 30 --profile benchmarks/results/profile --out one_study_profiled.json
	$(BIN)/python benchmarks/optuna_study.py
	$(BIN)/python benchmarks/memory_backlog.py
	$(BIN)/python benchmarks/report.py

## `bridge dash` over a results topic of 1,000,000 results: peak RSS (target 300 MB) and first render (2 s).
bench-dash: install kafka-jars
	$(BIN)/python benchmarks/dash_memory.py

## Runs over a three-node Ray cluster on this machine against the ideal, and against Ray Tune on the same cluster.
bench-ray: install
	$(BIN)/uv pip install -q --python $(BIN)/python 'ray[tune]==2.60.0'
	$(BIN)/python benchmarks/ray_efficiency.py

kafka-jars:
	bash deploy/kafka/kafka.sh jars

kafka-up: kafka-jars
	bash deploy/kafka/kafka.sh up

kafka-down:
	bash deploy/kafka/kafka.sh down

kafka-status:
	bash deploy/kafka/kafka.sh status

clean:
	rm -rf .bridge .pytest_cache .mypy_cache .ruff_cache
