# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to the CPU build 2.13.0
# (a bare `pip install torch` pulls gigabytes of CUDA wheels). The venv has
# OpenVINO (the fastest CPU backend, ~60 MB): `make demo` runs on it and
# `make test` tests it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH ?= torch==2.13.0

.PHONY: demo test test-py38 test-py310 venv clean reference-model reference-model-v1 gpu-check pretrained-onnx

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[torch,dev,openvino,batch]'
	@$(PY) deploy/gst_venv_link.py $(VENV) 2>/dev/null || true
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The user's install on JetPack's Pythons (3.8: JetPack 5.1, 3.10: JetPack 6): a fresh venv with only
# `pip install .` of this checkout (no torch, no pytest), then the README's commands in it with the
# shipped default model and an explicit one, driven by the main venv's pytest (tests/install/run.sh).
# Each skips in one line when pyenv's Python is not there.
PY38 ?= $(HOME)/.pyenv/versions/3.8.18/bin/python
PY310 ?= $(HOME)/.pyenv/versions/3.10.13/bin/python

test-py38: $(STAMP)
	tests/install/run.sh test-py38 $(PY38) .venv38

test-py310: $(STAMP)
	tests/install/run.sh test-py310 $(PY310) .venv310

demo: $(STAMP)
	$(BIN)/enet-demo

# On a CUDA machine, in under 8 minutes: the gpu tests and enet-bench on PyTorch
# (FP32/FP16) and, when TensorRT is installed, on TensorRT engines; one summary
# table (docs/engines.md). The venv's torch must have CUDA there: pip's default
# torch wheel for Linux x86_64 does (this project's CPU machines pin a +cpu one).
gpu-check: $(STAMP)
	$(BIN)/python -m tools.gpu_check

# The recipe behind the shipped camvid weights (README "Reference model"):
# two fine-tunes of the first shipped weights (camvid-v1, package data) at
# 480x360 for 8 epochs each, then the average of their weights (a model
# soup, enet-average). Ingredient C1: class-weighted cross-entropy plus the
# Lovasz-softmax loss on crops zoomed 0.75-1.75x; C2: the Lovasz loss alone
# at the scale the model runs at (--scale 1 1). Both keep an EMA of the
# weights and their best val epoch. About 1 h on 2 quiet CPU cores. The same
# CPU and the same --threads reproduce every step bit for bit
# (docs/training.md). `make reference-model-v1` reruns stages A and B behind
# camvid-v1 from scratch (about 1 h 50 min). Re-running continues an
# interrupted stage (--resume).
CAMVID ?= ../shared/data/camvid
RUNS ?= runs
STAGE_A := --size 240x176 --val-size 240x176 --batch 4 --epochs 70 --lr 1e-3 --warmup-epochs 1 --scale 0.75 1.5 --threads 2
STAGE_B := --size 480x360 --val-size 480x360 --batch 4 --epochs 40 --lr 3e-4 --scale 0.75 1.25 --threads 2
FINETUNE := --init-from camvid-v1 --size 480x360 --val-size 480x360 --batch 4 --epochs 8 --lr 2e-4 --ema 0.998
STAGE_C1 := $(FINETUNE) --loss ce+lovasz --scale 0.75 1.75 --threads 2
STAGE_C2 := $(FINETUNE) --loss lovasz --scale 1 1 --threads 1

reference-model: $(STAMP)
	$(BIN)/enet-train --data-root $(CAMVID) -o $(RUNS)/stage_c1 $(STAGE_C1) \
	  $$(test -f $(RUNS)/stage_c1/last.pth && echo --resume $(RUNS)/stage_c1/last.pth)
	$(BIN)/enet-train --data-root $(CAMVID) -o $(RUNS)/stage_c2 $(STAGE_C2) \
	  $$(test -f $(RUNS)/stage_c2/last.pth && echo --resume $(RUNS)/stage_c2/last.pth)
	$(BIN)/enet-average $(RUNS)/stage_c1/best.pth $(RUNS)/stage_c2/best.pth -o $(RUNS)/reference.pth \
	  --data-root $(CAMVID)
	$(BIN)/enet-plot $(RUNS)/stage_c1/log.jsonl -o $(RUNS)/training_curve_c1.png
	$(BIN)/enet-plot $(RUNS)/stage_c2/log.jsonl -o $(RUNS)/training_curve_c2.png
	$(BIN)/enet-eval $(RUNS)/reference.pth --data-root $(CAMVID) --split val
	@echo "ENET_MODEL=$(RUNS)/reference.pth makes it every command's default (README \"Reference model\")"

reference-model-v1: $(STAMP)
	$(BIN)/enet-train --data-root $(CAMVID) -o $(RUNS)/half $(STAGE_A) \
	  $$(test -f $(RUNS)/half/last.pth && echo --resume $(RUNS)/half/last.pth)
	$(BIN)/enet-train --data-root $(CAMVID) -o $(RUNS)/full $(STAGE_B) \
	  $$(test -f $(RUNS)/full/last.pth && echo --resume $(RUNS)/full/last.pth || echo --init-from $(RUNS)/half/best.pth)
	$(BIN)/enet-plot $(RUNS)/half/log.jsonl $(RUNS)/full/log.jsonl -o $(RUNS)/training_curve.png
	$(BIN)/enet-eval $(RUNS)/full/best.pth --data-root $(CAMVID) --split val

# the shipped FP32 and INT8 ONNX of a named model (default camvid), measured, JSON rewritten (docs/api.md)
pretrained-onnx: $(STAMP)
	$(BIN)/python -m tools.pretrained_build $(or $(NAME),camvid) --data-root $(CAMVID)

clean:
	rm -rf $(VENV) .venv38 .venv310 demo_out .pytest_cache
