#!/usr/bin/env bash
# go-quiet.sh [--note] ARGS...: runs `${GO:-go} ARGS...`, hiding the C/C++
# compiler warnings that cgo prints while compiling the llama.cpp and ggml
# sources vendored in github.com/ollama/ollama (a first build prints dozens,
# e.g. -Wstringop-overflow from ggml-cpu/repack.cpp). They are not ours to
# fix, and silencing them with compiler flags would change CGO_CFLAGS and so
# force another full compile.
#
# The go command prints each package's compiler output as a block that
# starts with a line "# IMPORT/PATH"; blocks of packages under
# github.com/ollama/ollama/ are held back, everything else passes through as
# it comes. If the command fails, the held-back blocks are printed after
# all, so no compiler error is ever hidden. The exit status is the go
# command's. V=1 hides nothing.
#
# --note: if the command is still running after 45 s, say on stderr why a
# first build takes minutes (for commands that only build).
set -uo pipefail

GO="${GO:-go}"
note=0
if [ "${1:-}" = --note ]; then
  note=1
  shift
fi
if [ "${V:-0}" = 1 ]; then
  exec "$GO" "$@"
fi

held="$(mktemp "${TMPDIR:-/tmp}/go-quiet.XXXXXX")"
note_pid=""
cleanup() {
  if [ -n "$note_pid" ]; then kill "$note_pid" 2>/dev/null; fi
  rm -f "$held"
}
trap cleanup EXIT

if [ "$note" = 1 ]; then
  # sleep gets no handle on stderr: killed early, it must not hold a pipe open.
  ( sleep 45 </dev/null >/dev/null 2>&1 &&
    echo "go $1: still building (a first build compiles llama.cpp and ggml: minutes on 2 cores; later builds reuse it)" >&2 ) &
  note_pid=$!
fi

# stdout goes straight through (fd 3); stderr is filtered.
{ "$GO" "$@" 2>&1 1>&3 3>&- | awk -v held="$held" '
    /^# / { hide = index($2, "github.com/ollama/ollama/") == 1 }
    /^go: / { hide = 0 }
    hide { print > held; next }
    { print; fflush() }
  ' >&2 3>&-; } 3>&1
status=$?

if [ "$status" -ne 0 ] && [ -s "$held" ]; then
  cat "$held" >&2
fi
exit "$status"
