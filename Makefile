# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to the CPU build 2.13.0
# (a bare `pip install torch` pulls gigabytes of CUDA wheels).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH ?= torch==2.13.0

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@$(PY) deploy/gst_venv_link.py $(VENV) 2>/dev/null || true
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/enet-demo

clean:
	rm -rf $(VENV) demo_out .pytest_cache
