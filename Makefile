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

# MediaPipe 0.10.14 (the last wheels with the Holistic models inside) wants protobuf<5, the toolkit's sentencepiece
# protobuf 7: it goes into a folder of its own that only slt-extract-pose's worker puts on its path
MEDIAPIPE ?= mediapipe==0.10.14
POSE_SITE := $(VENV)/pose-site
POSE_STAMP := $(POSE_SITE)/.installed

.PHONY: install install-pose browser demo test bench clean

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

install-pose: $(POSE_STAMP)

$(POSE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(POSE_SITE) $(MEDIAPIPE) "protobuf>=4.25.3,<5" absl-py attrs \
		flatbuffers opencv-python-headless
	@touch $@

demo: $(STAMP)
	$(BIN)/slt-demo --workdir demo

# slt-serve's browser test drives Debian's Chromium: installed from the Debian packages when missing (needs root)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
		else echo "make browser: install chromium and chromium-driver (apt-get, as root) for the browser test"; fi; }

test: $(STAMP) $(POSE_STAMP) browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) $(POSE_STAMP)
	@# the real fingerspelling keypoints of bench/pose_fingerspelling.py: only its data files are read, so its own
	@# dependencies (scipy, pose-anonymization, simplemma) are not installed
	@$(BIN)/python -c "import importlib.util as u; exit(u.find_spec('spoken_to_signed') is None)" \
		|| $(BIN)/python -m pip install -q --no-deps spoken-to-signed==0.4.0
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf demo .pytest_cache
