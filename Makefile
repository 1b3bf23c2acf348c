# The two commands that matter: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs when missing (`make test` also
# Prometheus, from Debian's package, as CI does).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIB := deploy/kafka/lib/.resolved

.PHONY: demo test install kafka-jars prometheus kafka-start kafka-stop bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(KAFKA_LIB): deploy/kafka/pom.xml
	deploy/kafka/kafka.sh jars

kafka-jars: $(KAFKA_LIB)

prometheus:
	@bash deploy/install_prometheus.sh

demo: $(STAMP) $(KAFKA_LIB)
	$(BIN)/driftwise demo

test: $(STAMP) $(KAFKA_LIB) prometheus
	$(BIN)/python -m pytest $(PYTEST_ARGS)

kafka-start: $(KAFKA_LIB)
	deploy/kafka/kafka.sh start

kafka-stop:
	deploy/kafka/kafka.sh stop

bench: $(STAMP)
	$(BIN)/driftwise bench all

clean:
	rm -rf runs .pytest_cache
