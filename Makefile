# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install bench clean

$(BIN)/kretain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/kretain

install: $(BIN)/kretain

demo: install
	$(BIN)/kretain demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/backup.py --archive s3://kretain-bench/archive --cap-mb 80
	$(BIN)/python bench/delete.py
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) kretain-demo
