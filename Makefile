# The two commands of the README: `make demo` (main job) and `make test`.
# Both install what they need: the Debian packages in debian-packages.txt (photos for the built-in
# corpus, a browser for the page tests) and a virtual environment with the CPU build of torch.
# SYSTEM_PACKAGES=skip installs no system package: the demo then builds the small corpus from the
# photos pip installs (knowingly, via --small-corpus) and the browser tests skip.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES ?= install
DEBIAN := $(shell grep -v '^\#' debian-packages.txt)
DEMO_FLAGS := $(if $(filter skip,$(SYSTEM_PACKAGES)),--small-corpus,)

.PHONY: demo test system lint bench shipped explainer clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0   # CPU build; a range would pull CUDA
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# Installs the missing Debian packages: directly as root, else through `sudo -n`, else stops with one line.
system:
ifeq ($(SYSTEM_PACKAGES),skip)
	@echo "make: SYSTEM_PACKAGES=skip: not installing $(DEBIAN)"
else
	@missing=$$(for p in $(DEBIAN); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	[ -z "$$missing" ] && exit 0; missing=$$(echo $$missing); \
	if ! command -v apt-get >/dev/null; then sudo=none; \
	elif [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi; \
	if [ "$$sudo" = none ]; then \
		echo "make: missing Debian packages: $$missing; run 'sudo apt-get install $$missing' and retry, or add SYSTEM_PACKAGES=skip (small corpus, browser tests skipped)" >&2; \
		exit 1; fi; \
	echo "make: installing Debian packages: $$missing"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
endif

demo: system $(STAMP)
	$(VENV)/bin/unigendet demo --out runs $(DEMO_FLAGS)

test: system $(STAMP)
	$(PY) -m ruff check src tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

bench: $(STAMP)
	$(PY) bench/model_throughput.py

# Re-trains the in-the-wild detector the package ships, from ../shared/data (not committed): its recipe on
# leave-one-source-out and leave-one-family-out folds (the card quotes both) and its CNNDetection column, then
# the detector itself on the whole pool.
WILD ?= ../shared/data/wild-train
SHIPPED_FLAGS ?= --circulate-prob 0.5 --max-fpr 0.05 --threshold-by source --crossfit 4 --abstain 0.1 \
	--crop-choice evidence --whole-weight 0.5
shipped: $(STAMP)
	$(VENV)/bin/unigendet eval folds --by source --min-files 60 --data $(WILD) --out runs/folds/shipped-source $(SHIPPED_FLAGS)
	$(VENV)/bin/unigendet eval folds --by family --data $(WILD) --out runs/folds/shipped-family $(SHIPPED_FLAGS)
	$(PY) bench/wild_detection.py --data $(WILD) --out runs/wild-bench --merge --only "(shipped)" --no-logo
	$(VENV)/bin/unigendet train forensic --data $(WILD) --out src/unigendet/shipped/wild --name forensic-wild \
		--bench runs/wild-bench/results.json \
		--folds runs/folds/shipped-source/folds.json,runs/folds/shipped-family/folds.json $(SHIPPED_FLAGS)

clean:
	rm -rf $(VENV) runs .pytest_cache

# Trains the explaining UniGenDet the package ships: the demo's text-to-image run (runs/t2i) and corpus
# (runs/data) with the frozen forensic encoder swapped in, GDUF on wild-train, its questions giving the shipped
# detector's verdict and evidence and its answers stating that verdict, its reasons and the measured cues;
# then its explanations benchmark.
explainer: $(STAMP)
	$(VENV)/bin/unigendet train gduf --init runs/t2i --understanding tiny-forensic --det-data $(WILD) \
		--explains shipped --evidence-prompt --data runs/data --out runs/explain --steps 600 --det-per-step 16 --t2i-per-step 4 --lr 5e-4 \
		--eval-every 0 --ckpt-every 300 --ship src/unigendet/shipped/explain
	$(PY) bench/explanations.py --checkpoint shipped:explain --data $(WILD) --out runs/explanations
