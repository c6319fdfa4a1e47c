# lapse: `make run` starts the whole stack on this machine; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test check lint fmt unit synth layer bench bench-options bench-engine deploy clean browser reference

# One install at a time (flock): two make commands started together must not both run pip on
# the same venv. pip stays below 26.3, which chalice 1.34 requires.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@flock $(VENV).lock sh -ec '\
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q "pip>=24,<26.3"; \
	  $(BIN)/python -m pip install -q -r requirements-dev.txt; \
	  $(BIN)/python -m pip install -q --no-deps -e .; \
	  touch $(STAMP)'


install: $(STAMP)

# Records and objects are kept in LAPSE_DATA_DIR across restarts (local/persist.py); `make clean`
# forgets them.
LAPSE_DATA_DIR ?= .run/data
run: install
	LAPSE_DATA_DIR=$(LAPSE_DATA_DIR) $(BIN)/python -m local.stack

test: install browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The browser tests (tests/browser): Debian's Chromium (Playwright cannot download browsers here)
# and Uppy from the npm registry, pinned by tests/browser/uppy/package-lock.json.
UPPY := tests/browser/uppy
browser: $(UPPY)/node_modules/.package-lock.json
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

$(UPPY)/node_modules/.package-lock.json: $(UPPY)/package-lock.json
	cd $(UPPY) && npm ci --no-audit --no-fund --loglevel=error

# GET /docs serves Redoc's standalone bundle from chalicelib/static/ (Chalice packages only app.py
# and chalicelib/, and nothing may be fetched at run time). The copy is committed; `make reference`
# refreshes it from the npm registry, pinned by vendor/redoc/package-lock.json.
REDOC := vendor/redoc
reference: $(REDOC)/node_modules/.package-lock.json
	cp $(REDOC)/node_modules/redoc/bundles/redoc.standalone.js chalicelib/static/
	cp $(REDOC)/node_modules/redoc/bundles/redoc.standalone.js.LICENSE.txt chalicelib/static/

$(REDOC)/node_modules/.package-lock.json: $(REDOC)/package-lock.json
	cd $(REDOC) && npm ci --no-audit --no-fund --loglevel=error

unit: install
	$(BIN)/python -m pytest tests/unit -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy infra/app.py infra/stacks infra/backfill_in_flight.py  # its own run: infra/app.py is another module "app"

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint unit

synth: install
	bash infra/synth.sh

layer: install
	bash layers/ffmpeg/build.sh

# The product path against the usual pipeline (bench/product.py), then what each timelapse option
# adds to a render (bench/options.py); QUICK=1: short sources.
bench: install
	$(BIN)/python -m bench.product $(if $(QUICK),--quick)
	$(BIN)/python -m bench.options $(if $(QUICK),--quick)

bench-options: install
	$(BIN)/python -m bench.options $(if $(QUICK),--quick)

# The render engine alone, reading from its own range server or disk (bench/render.py).
bench-engine: install
	$(BIN)/python -m bench.render $(if $(QUICK),--quick)

# A long decode-all render on one worker against the same render fanned out (bench/fanout.py).
bench-fanout: install
	$(BIN)/python -m bench.fanout $(if $(QUICK),--quick)

deploy: install
	bash infra/deploy.sh $(STAGE)

clean:
	rm -rf build .run .pytest_cache .mypy_cache .ruff_cache

# The history check at full size (`make test` runs it small): LAPSE_STRESS_UPLOADS=200 by default.
LAPSE_STRESS_UPLOADS ?= 200
.PHONY: stress
stress: install
	LAPSE_STRESS_UPLOADS=$(LAPSE_STRESS_UPLOADS) $(BIN)/python -m pytest tests/stress -q -s --timeout=1800
