# DTI Assistant. Two commands matter: `make demo` and `make test`; everything else is a step of them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PO := $(wildcard locales/*/LC_MESSAGES/dti.po)
MO := $(PO:.po=.mo)
SOURCES := bot scoring flows storage

.PHONY: all demo demo-score migrations test lint typecheck catalogs i18n bench clean

all: $(STAMP) catalogs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

catalogs: $(MO)

locales/%/LC_MESSAGES/dti.mo: locales/%/LC_MESSAGES/dti.po $(STAMP)
	$(BIN)/pybabel -q compile --use-fuzzy -d locales -D dti -l $*

# Extract message keys from the code and merge them into both catalogs (then translate the new ones).
i18n: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ -k t --no-location --sort-output -o locales/dti.pot $(SOURCES)
	$(BIN)/pybabel -q update -i locales/dti.pot -d locales -D dti --no-fuzzy-matching --ignore-obsolete --width 100

# The demo province lives in var/demo.db (SQLite) with its evidence under var/evidence.
demo: all
	mkdir -p var
	DTI_DATABASE_URL=$${DTI_DATABASE_URL:-sqlite:///$(CURDIR)/var/demo.db} \
	DTI_EVIDENCE_DIR=$${DTI_EVIDENCE_DIR:-$(CURDIR)/var/evidence} \
	$(BIN)/dtibot demo

# The scored example of the foundation issue: a sample commune and a ranked sample set.
demo-score: all
	$(BIN)/dtibot score tay-ninh-commune-2025 bot/demo/tay-ninh-sample-answers.json
	$(BIN)/dtibot rank tay-ninh-commune-2025 bot/demo/tay-ninh-sample-units.json

# Every migration must apply to an empty database before the tests run.
migrations: all
	rm -rf .scratch && mkdir -p .scratch
	DTI_DATABASE_URL=sqlite:///$(CURDIR)/.scratch/scratch.db $(BIN)/dtibot db upgrade
	rm -rf .scratch

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES) tests bench
	$(BIN)/ruff format --check $(SOURCES) tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict scoring flows storage bot

# One pytest worker per core; worksteal keeps the long crash tests from leaving a core idle.
test: all lint typecheck migrations
	$(BIN)/pytest -n auto --dist worksteal

bench: all
	$(BIN)/python bench/score_bench.py
	$(BIN)/python bench/reminder_bench.py
	$(BIN)/python bench/update_bench.py --steps 10
	$(BIN)/python bench/polling_bench.py
	$(BIN)/python bench/profile_updates.py
	$(BIN)/python bench/cold_start_bench.py
	$(BIN)/python bench/export_bench.py
	$(BIN)/python bench/memory_bench.py
	$(BIN)/python bench/web_bench.py
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .scratch $(MO)
