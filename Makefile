# Two commands on a fresh machine (Python 3.11 + pip):  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast lint benchmark clean

$(STAMP): setup.cfg constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

# The main job: the demo on the bundled real clip -> annotated video + JSON-lines keypoints in output/demo.
# It uses the COCO HRNet-W32 256x192 zoo model (downloaded once into ~/.cache/pose). Without network
# access it says so and reruns with untrained weights, clearly bannered, so the pipeline (detector,
# tracking, rendering, JSONL) still runs; pass DEMO_ARGS='--weights FILE' to use a local checkpoint.
demo: $(STAMP)
	@$(BIN)/pose-demo demo/assets/demo_skeleton.mp4 --output-dir output/demo --offline-fallback $(DEMO_ARGS)

# The whole test suite (what .ci/run calls).
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Lint and the import contract (the floors of setup.cfg); .ci/run runs these and the tests.
lint: $(STAMP)
	$(BIN)/ruff check pose tests benchmarks scripts demo
	$(BIN)/lint-imports setup.cfg --no-cache

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) output .pytest_cache
