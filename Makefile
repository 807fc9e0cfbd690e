# edgepipe: `make demo` builds the android target on the built-in example; `make test` runs the suite.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgepipe-installed

.PHONY: setup demo test test-fast system-deps bench datasets clean

setup: $(STAMP)

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml targets/runners/tfjs_node/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and exactly: any looser spec makes pip fetch a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.lock
	# tensorflowjs pins an older TensorFlow; its converter runs with the locked stack (see README)
	$(PY) -m pip install --quiet --no-deps --ignore-requires-python -r requirements-nodeps.lock
	$(PY) -m pip install --quiet --no-deps -e .
	npm ci --no-audit --no-fund --prefix targets/runners/tfjs_node
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgepipe build --target android

# Debian's chromium, openssh-server/-client, adb and g++: installed where root + apt-get can, otherwise one
# line names the missing packages and the command, before the (long) setup starts.
system-deps:
	@.ci/system-deps

test: system-deps setup
	$(PY) -m pytest

test-fast: system-deps setup
	$(PY) -m pytest -m "not slow"

bench: setup datasets
	$(PY) bench/bench_android.py
	$(PY) bench/bench_formats.py
	$(PY) bench/bench_compression.py
	$(PY) bench/bench_speed.py
	$(PY) bench/bench_quant_real.py

# Fashion-MNIST for `--example fashion-mnist` and the compression benchmark, where apt-get can install it
# (root on Debian); elsewhere the example says how to get it. The tests use the digits examples only.
datasets:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "fashion-mnist: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) \
	  || echo "fashion-mnist: could not install dataset-fashion-mnist (only --example fashion-mnist needs it)"; \
	else echo "fashion-mnist: apt-get install dataset-fashion-mnist (as root) to use --example fashion-mnist"; fi

clean:
	rm -rf build/edgepipe .pytest_cache
