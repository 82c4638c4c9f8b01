# Every target creates the virtual environment .venv first if it is missing (or stale).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: help train test sweep study study-noise tensorboard bench check-losses screenshot figures mutate lint format clean

help:
	@echo "make train        train the default experiment (CEE, MLP 784-100-10); extra overrides: ARGS='loss=sse'"
	@echo "make test         create .venv if needed, install, run the test suite"
	@echo "make sweep        loss x batch-size sweep (experiment=loss_vs_batch), ends with the report table"
	@echo "make study        the fair SSE vs CEE verdict: lr tuned on validation, 5 seeds (logs/study/verdict.md)"
	@echo "make study-noise  CEE, SSE and MAE under label noise p = 0 .. 0.6 (logs/study-noise/verdict.md)"
	@echo "make tensorboard  open TensorBoard on logs/"
	@echo "make bench        speed benchmark against a plain PyTorch loop (writes bench.json)"
	@echo "make check-losses print our losses next to torch's, case by case"
	@echo "make screenshot   docs/tensorboard.png of the Overfitting charts (needs chromium)"
	@echo "make figures      every PNG under docs/ again, after make study and make study-noise"
	@echo "make mutate       mutation testing of every module of src/losslab with logic (mutmut; not in CI)"
	@echo "make lint         ruff check + ruff format --check"

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/losslab-train $(ARGS)

# two workers (2 cores), the 10 slowest tests listed at the end
test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=10 $(ARGS)

sweep: $(STAMP)
	$(VENV)/bin/losslab-train experiment=loss_vs_batch $(ARGS)

study: $(STAMP)
	$(VENV)/bin/losslab-study run $(ARGS)

study-noise: $(STAMP)
	$(VENV)/bin/losslab-study noise $(ARGS)

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir logs $(ARGS)

bench: $(STAMP)
	$(PY) scripts/bench.py $(ARGS)

check-losses: $(STAMP)
	$(PY) scripts/check_losses.py

screenshot: $(STAMP)
	$(PY) scripts/screenshot.py $(ARGS)

figures: $(STAMP)
	$(PY) scripts/figures.py $(ARGS)

# mutmut runs the tests in mutants/, one folder down: the real MNIST is named absolutely, and
# must be there (the tests that read it would skip, and their mutants survive)
mutate: $(STAMP)
	$(PY) -m pip install -q "mutmut>=3.8,<4"
	export LOSSLAB_DATA_DIR="$${LOSSLAB_DATA_DIR:-$(CURDIR)/../shared/data}"; \
	test -d "$$LOSSLAB_DATA_DIR/MNIST/raw" || { echo "make mutate: no $$LOSSLAB_DATA_DIR/MNIST/raw: set LOSSLAB_DATA_DIR" >&2; exit 2; }; \
	$(VENV)/bin/mutmut run --max-children 2 $(ARGS); $(VENV)/bin/mutmut results | tail -n 40
	$(PY) scripts/mutation_score.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
