# Two commands for a newcomer: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UI := services/ui
# npm ci wipes node_modules, so a stamp inside it disappears whenever the packages are reinstalled.
NPM_STAMP := $(UI)/node_modules/.installed
VENDOR_STAMP := $(UI)/static/vendor/.copied
# The third-party TradingView client the conformance test drives against the simulator.
TV_CLIENT := tests/conformance/tradingview
TV_CLIENT_STAMP := $(TV_CLIENT)/node_modules/.installed

.PHONY: install run test unit integration bench chaos lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The pages' browser libraries (socket.io-client, lightweight-charts), pinned in package-lock.json.
$(NPM_STAMP): $(UI)/package-lock.json $(UI)/package.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Node.js 18 or newer (it brings npm);" \
	  "the pages load socket.io-client and lightweight-charts from the npm registry at install time." >&2; exit 1; }
	npm ci --prefix $(UI) --no-audit --no-fund
	touch $(NPM_STAMP)

$(VENDOR_STAMP): $(NPM_STAMP) $(UI)/copy-vendor.mjs
	npm run --silent --prefix $(UI) vendor
	touch $(VENDOR_STAMP)

# @mathieuc/tradingview for tests/conformance/test_tradingview_client.py, pinned in its lock file.
$(TV_CLIENT_STAMP): $(TV_CLIENT)/package-lock.json $(TV_CLIENT)/package.json | $(NPM_STAMP)
	npm ci --prefix $(TV_CLIENT) --no-audit --no-fund
	touch $(TV_CLIENT_STAMP)

install: $(STAMP) $(VENDOR_STAMP)

run: install
	$(BIN)/justtrades run

# The tests also drive a third-party TradingView client (npm) against the simulator.
test: install $(TV_CLIENT_STAMP)
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit

integration: install $(TV_CLIENT_STAMP)
	$(BIN)/pytest -q tests/integration tests/cluster tests/e2e

bench: install
	$(BIN)/justtrades bench

# Two minutes of webhooks and ticks while every service is killed and Redis and PostgreSQL crash,
# then the checks; `justtrades chaos --help` for the length, the rate and repeating a run's seed.
chaos: install
	$(BIN)/justtrades chaos

# What CI holds the line on (and the pre-commit hook, .pre-commit-config.yaml): the format, the
# lint rules and the types, all configured in pyproject.toml.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache $(UI)/node_modules $(UI)/static/vendor \
	  $(TV_CLIENT)/node_modules
