# Two commands do everything on a fresh machine: `make demo` and `make test`. Both create .venv/ and install
# what they need once; a second run installs nothing (the stamp .venv/.installed is newer than setup.cfg).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel by default. A torch already in the venv (a user's CUDA build, say) is kept.
TORCH ?= torch==2.13.0
FAIRSEQ ?= fairseq-fixed==0.12.3.1
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install browser demo test bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "setuptools>=64" wheel
	@$(BIN)/python -c "import torch" 2>/dev/null && echo "keeping torch $$($(BIN)/python -c 'import torch; print(torch.__version__)')" \
		|| $(BIN)/python -m pip install $(TORCH)
	@# fairseq's declared dependencies pull torchaudio and a CUDA torch: install it alone; setup.cfg lists its needs
	@$(BIN)/python -c "import fairseq" 2>/dev/null || $(BIN)/python -m pip install --no-deps $(FAIRSEQ)
	@# .[hf]: safetensors for Hugging Face MBart folders, and transformers, which the conversion's tests compare with;
	@# .[web]: Gradio for slt-serve (selenium, in .[test], drives the browser of its test)
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test,hf,web]"
	@touch $@

demo: $(STAMP)
	$(BIN)/slt-demo --workdir demo

# slt-serve's browser test drives Debian's Chromium: installed from the Debian packages when missing (needs root)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
		else echo "make browser: install chromium and chromium-driver (apt-get, as root) for the browser test"; fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf demo .pytest_cache
