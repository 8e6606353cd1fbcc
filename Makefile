# Everything a fresh machine needs is installed from here: a venv in .venv and the package with
# its extras. `make demo` and `make test` are the two commands README.md promises.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-library

.PHONY: all install demo test lint bench bench-synthetic bench-accuracy bench-robustness bench-decoders clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,plot,dask]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python tools/make_demo_library.py $(DEMO)
	$(BIN)/engine-run --db $(DEMO).lmdb $(DEMO)
	@echo "--- three of the stored records (engine-query --db $(DEMO).lmdb export):"
	@$(BIN)/engine-query --db $(DEMO).lmdb export | head -n 3 | $(BIN)/python tools/show_records.py
	@echo "--- the M4A files, AAC and ALAC, read by FFmpeg (engine-query --db $(DEMO).lmdb export | grep m4a):"
	@$(BIN)/engine-query --db $(DEMO).lmdb export | grep '\.m4a"' | $(BIN)/python tools/show_records.py
	@echo "--- the tracks most like track 1 (engine-query --db $(DEMO).lmdb similar 1 -k 3):"
	@$(BIN)/engine-query --db $(DEMO).lmdb similar 1 -k 3
	@echo "--- duplicates (engine-query --db $(DEMO).lmdb duplicates):"
	@$(BIN)/engine-query --db $(DEMO).lmdb duplicates

lint: $(STAMP)
	$(BIN)/ruff check engine kernels tests bench tools
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# The measured set on the small real-music corpus (built once outside the repository by
# ../shared/corpus/make_corpus.sh, which needs root and apt), ~30 min on 2 cores. Run it on a
# quiet machine; bench/README.md explains every figure. `make bench-synthetic` needs no corpus.
CORPUS ?= $(HOME)/.cache/fingerprint-engine/corpus-small
RESULTS := bench/results

bench: $(STAMP)
	test -f $(CORPUS)/manifest.tsv || bash ../shared/corpus/make_corpus.sh $(CORPUS) small
	$(BIN)/python bench/kernel_speed.py $(CORPUS) --repeats 3 -o $(RESULTS)/kernels-corpus-small.json
	$(BIN)/python bench/throughput.py $(CORPUS) --cores 1 2 --repeats 3 \
		-o $(RESULTS)/throughput-corpus-small.json --png $(RESULTS)/throughput-corpus-small.png
	$(BIN)/python bench/memory.py -o $(RESULTS)/memory.json --png $(RESULTS)/memory.png
	$(BIN)/python bench/worker_memory.py --hours 2 -o $(RESULTS)/worker-memory-2h.json
	$(BIN)/python bench/startup.py --repeats 15 -o $(RESULTS)/startup.json
	$(BIN)/python bench/profile_memory.py -o $(RESULTS)/profile-memory.json
	$(BIN)/python bench/peers.py $(CORPUS) --limit 8 -o $(RESULTS)/peers-corpus-small.json
	$(BIN)/python bench/query_speed.py -o $(RESULTS)/query-speed.json
	$(BIN)/python bench/query_calibration.py $(CORPUS) --limit 12 -o $(RESULTS)/query-calibration.json
	$(BIN)/python bench/dask_scaling.py $(CORPUS) --repeats 3 -o $(RESULTS)/dask-scaling-corpus-small.json

# Ground truth and codec robustness of the fingerprint (the version 2 issue): rendered clips need
# `apt-get install fluidsynth fluid-soundfont-gm`; robustness and the query calibration want the
# full corpus (~1 h each here, most of it encoding; a rerun reuses the encodes).
CORPUS_FULL ?= $(HOME)/.cache/fingerprint-engine/corpus-full

bench-accuracy: $(STAMP)
	test -f $(CORPUS)/manifest.tsv || bash ../shared/corpus/make_corpus.sh $(CORPUS) small
	$(BIN)/python bench/accuracy.py --corpus $(CORPUS) -o $(RESULTS)/accuracy-v2.json

bench-robustness: $(STAMP)
	test -f $(CORPUS_FULL)/manifest.tsv || bash ../shared/corpus/make_corpus.sh $(CORPUS_FULL) full
	$(BIN)/python bench/robustness.py $(CORPUS_FULL) \
		--work $(HOME)/.cache/fingerprint-engine/robustness-full -o $(RESULTS)/robustness-v2.json
	rm -rf $(HOME)/.cache/fingerprint-engine/query-calibration-full
	$(BIN)/python bench/query_calibration.py $(CORPUS_FULL) --limit 0 \
		--reuse $(HOME)/.cache/fingerprint-engine/robustness-full \
		--work $(HOME)/.cache/fingerprint-engine/query-calibration-full \
		-o $(RESULTS)/query-calibration-full.json

# libsndfile against FFmpeg on every format either reads (engine/decode FORMAT_DECODERS), and the
# 2-hour M4A's worker memory; ~12 min, 1.1 GB of transcodes cached under ~/.cache.
bench-decoders: $(STAMP)
	test -f $(CORPUS)/manifest.tsv || bash ../shared/corpus/make_corpus.sh $(CORPUS) small
	$(BIN)/python bench/decoders.py $(CORPUS) --rounds 5 -o $(RESULTS)/decoders.json
	$(BIN)/python bench/worker_memory.py --hours 2 --format m4a -o $(RESULTS)/worker-memory-2h-m4a.json

bench-synthetic: $(STAMP)
	$(BIN)/python bench/kernel_speed.py --synthetic 3 --seconds 240 --repeats 3 -o $(RESULTS)/kernels-synthetic.json

clean:
	rm -rf $(VENV) $(DEMO) $(DEMO).lmdb .pytest_cache build *.egg-info
