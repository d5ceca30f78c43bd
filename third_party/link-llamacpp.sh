#!/usr/bin/env bash
# Point third_party/llama.cpp and third_party/ggml at the llama.cpp / ggml
# sources vendored inside the github.com/ollama/ollama module pinned in go.mod.
#
# Creates (idempotent, ln -sfn):
#   third_party/llama.cpp/include -> <ollama>/llama/llama.cpp/include
#   third_party/llama.cpp/src     -> <ollama>/llama/llama.cpp/src
#   third_party/ggml/include      -> <ollama>/ml/backend/ggml/ggml/include
#   third_party/ggml/src          -> <ollama>/ml/backend/ggml/ggml/src  (internal headers, e.g. ggml-backend-impl.h)
#
# <ollama> is `go list -m -f '{{.Dir}}' github.com/ollama/ollama` run from the
# repo root (the module is downloaded first if it is not in the module cache).
set -euo pipefail

MODULE="github.com/ollama/ollama"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"

log() { printf 'link-llamacpp: %s\n' "$*" >&2; }
die() { printf 'link-llamacpp: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1" ;;
esac

command -v go >/dev/null 2>&1 || die "go not found in PATH"
cd "$REPO_ROOT"

module_dir() {
  go list -m -f '{{.Dir}}' "$MODULE" 2>/dev/null || true
}

dir="$(module_dir)"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  log "downloading $MODULE (as pinned in go.mod) ..."
  go mod download "$MODULE" >&2 || die "go mod download $MODULE failed (is it required in go.mod?)"
  dir="$(module_dir)"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    # e.g. vendor mode, where go list -m leaves .Dir empty
    dir="$(go mod download -json "$MODULE" 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  fi
fi
[ -n "$dir" ] && [ -d "$dir" ] || die "could not locate the $MODULE module directory"
version="$(go list -m -f '{{.Version}}' "$MODULE" 2>/dev/null || echo '?')"

link() {
  local target="$1" name="$2"
  [ -d "$target" ] || die "$MODULE@$version has no directory ${target#"$dir"/}"
  mkdir -p "$(dirname "$name")"
  if [ -e "$name" ] && [ ! -L "$name" ]; then
    die "$name exists and is not a symlink; remove it and re-run"
  fi
  ln -sfn "$target" "$name"
  log "${name#"$REPO_ROOT"/} -> $target"
}

link "$dir/llama/llama.cpp/include"          "$SCRIPT_DIR/llama.cpp/include"
link "$dir/llama/llama.cpp/src"              "$SCRIPT_DIR/llama.cpp/src"
link "$dir/ml/backend/ggml/ggml/include"     "$SCRIPT_DIR/ggml/include"
link "$dir/ml/backend/ggml/ggml/src"         "$SCRIPT_DIR/ggml/src"

log "linked against $MODULE@$version"
