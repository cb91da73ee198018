# kftransfer: `make demo` and `make test` bootstrap .venv from constraints.txt on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core, at most 4, as each loads TensorFlow and
# starts its own kfp.local step processes. Much of a test's time is single-threaded
# (imports, step processes), so 2 workers on 2 cores run the suite 1.7x faster than one
# (docs/benchmarks.md). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

# Real ImageNet weights for offline machines (this repo's CI); users with internet get
# Keras' own download. Override: make demo DEMO_ARGS="--weights imagenet".
SHARED_WEIGHTS := $(wildcard ../shared/weights/mobilenet_1.0_224_imagenet_notop.weights.h5)
DEMO_ARGS ?= $(if $(SHARED_WEIGHTS),--weights $(SHARED_WEIGHTS))

# Container images: tag = package version (components/__init__.py); GPU images add -gpu.
VERSION  := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' components/__init__.py)
IMAGE    ?= ghcr.io/kftransfer/kftransfer
REGISTRY ?=

.PHONY: venv demo test lint format bench compile lock lock-gpu clean image image-gpu push

venv: $(STAMP)

$(STAMP): constraints.txt pyproject.toml requirements-keras-hub.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[cpu,dev]'
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -r requirements-keras-hub.txt
	touch $@

demo: $(STAMP)
	$(BIN)/kftransfer demo $(DEMO_ARGS)

# pytest exits 5 when it collects nothing: say so, and fail.
test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# One benchmark at a time (two at once on a small machine make both noise).
BENCHES = $(filter-out __init__ common,$(basename $(notdir $(wildcard bench/*.py))))
bench: $(STAMP)
	for name in $(BENCHES); do $(BIN)/python -m bench.$$name || exit 1; done

compile: $(STAMP)
	$(BIN)/kftransfer compile -o pipeline.yaml

# Re-resolve the lock from pyproject.toml in a scratch venv, then the GPU image's additions.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q '.[cpu,dev]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/pip freeze --exclude kftransfer; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv
	$(MAKE) lock-gpu

# constraints-gpu.txt: TensorFlow's CUDA/cuDNN wheels resolved against constraints.txt.
lock-gpu: $(STAMP)
	$(BIN)/python -m devtools.lock_gpu

image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

image-gpu:
	docker build --build-arg VERSION=$(VERSION) --build-arg VARIANT=gpu -t $(IMAGE):$(VERSION)-gpu .

# make push REGISTRY=us-docker.pkg.dev/my-project/ml  (then: kftransfer submit --image ...)
push:
	test -n "$(REGISTRY)" || { echo "error: set REGISTRY=host/path" >&2; exit 2; }
	for tag in $(VERSION) $(VERSION)-gpu; do \
	  if docker image inspect $(IMAGE):$$tag >/dev/null 2>&1; then \
	    docker tag $(IMAGE):$$tag $(REGISTRY)/kftransfer:$$tag && docker push $(REGISTRY)/kftransfer:$$tag; \
	  fi; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
