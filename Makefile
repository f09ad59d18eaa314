# dexgrasp: set-up, main job, tests, benchmark and an offline wheelhouse.
# `make run` and `make test` are all a fresh clone on a CPU machine needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is installed only when the venv cannot import it yet, so a CUDA build already there is kept.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=

# Offline wheelhouse for an air-gapped cluster: target Python version and platform tag.
PY ?= 312
PLATFORM ?= manylinux_2_28_x86_64
WHEELHOUSE ?= wheelhouse
# Every runtime dependency except torch (the cluster brings its own CUDA build). rl-games is
# fetched without dependencies because it requires torch; its other requirements are listed here.
WHEEL_DEPS := mujoco==4.0.0 mujoco-warp==4.0.0 warp-lang==1.19.0 typer rich pyyaml tensorboard numpy matplotlib nvidia-ml-py \
	'gymnasium[classic-control]>=0.29.1' 'psutil>=5.9.0,<6.0.0' 'setproctitle>=1.2.2,<2.0.0' \
	'tensorboardX>=2.5,<3.0' 'watchdog>=2.1.9' pytest 'setuptools>=64' wheel
# pip does not widen --platform to older glibc tags, so list them: manylinux_2_28 also accepts
# manylinux_2_5 .. 2_27 and the manylinux1/2010/2014 aliases.
PLATFORM_FLAGS = $(shell $(PYTHON) -c 'import re, sys; p = sys.argv[1]; m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", p); \
	v, a = (int(m[1]), m[2]) if m else (0, ""); \
	tags = [p] + [f"manylinux_2_{k}_{a}" for k in range(v - 1, 4, -1)] + [f"manylinux{n}_{a}" for n, k in (("2014", 17), ("2010", 12), ("1", 5)) if m and v >= k]; \
	print(" ".join("--platform " + t for t in tags))' $(PLATFORM))
PIP_TARGET = --only-binary=:all: --python-version $(PY) $(PLATFORM_FLAGS) -d $(WHEELHOUSE)

.PHONY: setup run test install-check bench wheelhouse clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null \
		&& echo "torch already importable in $(VENV): keeping it" \
		|| $(BIN)/pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -e '.[test]'
	touch $@

# The main job on a CPU: a small depth teacher (80x60 depth, small networks, 30 PPO iterations),
# then its evaluation. A real run uses the yaml sizes at 160x120 on a GPU (see README).
SMALL_TEACHER := --set train.networks.depth.filters=[8,16,16,16] --set train.networks.depth.lstm_units=64 \
	--set train.networks.depth.lstm_layers=1 --set train.networks.depth.mlp=[64,64] \
	--set train.networks.critic.lstm_units=64 --set train.networks.critic.mlp=[64,64]
RUN_DIR ?= runs/quickstart

run: setup
	$(BIN)/dexgrasp train-teacher --modality depth --res 80x60 --num-envs 16 --max-iterations 30 \
		--device cpu --run-dir $(RUN_DIR) $(SMALL_TEACHER) \
		$(if $(wildcard $(RUN_DIR)/checkpoints/last.pt),--resume $(RUN_DIR)/checkpoints/last.pt)
	$(BIN)/dexgrasp eval --checkpoint $(RUN_DIR)/checkpoints/last.pt --num-envs 16 --episodes 16 \
		--device cpu --json out/eval_teacher.json

test: setup
	$(BIN)/python -m pytest -m "not slow" -q

# The wheel as a user installs it: built, installed without the source tree into a temporary
# target (on top of the venv's dependencies) and run from another folder.
install-check: setup
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/pip wheel --no-deps -q -w "$$tmp/wheel" . && rm -rf build && \
	$(BIN)/pip install --no-deps -q --target "$$tmp/site" "$$tmp"/wheel/dexgrasp-*.whl && \
	cd "$$tmp" && PYTHONPATH="$$tmp/site" $(CURDIR)/$(BIN)/python -c \
		'import dexgrasp_cli, dexgrasp_tasks, sys; sys.exit(not dexgrasp_cli.__file__.startswith(sys.argv[1]))' "$$tmp/site" && \
	PYTHONPATH="$$tmp/site" $(CURDIR)/$(BIN)/python -m dexgrasp_cli eval --policy scripted --num-envs 2 --episodes 1 && \
	echo "install-check: the wheel runs from $$tmp"

bench: setup
	$(BIN)/dexgrasp bench

wheelhouse: setup
	@echo "wheelhouse for cp$(PY) on $(PLATFORM) (torch excluded: bring your CUDA build)"
	$(BIN)/pip download $(PIP_TARGET) --no-deps rl-games==1.6.5
	$(BIN)/pip download $(PIP_TARGET) $(WHEEL_DEPS)
	$(BIN)/pip wheel --no-deps -w $(WHEELHOUSE) .
	rm -rf build  # setuptools' in-tree build folder

clean:
	rm -rf build *.egg-info $(WHEELHOUSE)
