#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library (C API) for this platform.
#
# Source: the npm package onnxruntime-node@1.24.3 (MIT), which ships prebuilt
# libraries at package/bin/napi-v6/<os>/<arch>/. Only the library is
# installed; ONNX Runtime's C headers are not part of that package.
#
# Installs into ${XDG_CACHE_HOME:-$HOME/.cache}/go-sdtp/onnxruntime/1.24.3/<os>-<arch>/
# and points the symlink third_party/onnxruntime/lib at that directory.
# Supported: linux-x64, linux-arm64, darwin-arm64.
#
# Usage:
#   third_party/fetch-onnxruntime.sh               fetch if needed, print library path
#   third_party/fetch-onnxruntime.sh --print-path  print library path only (no fetch)
#
# The only line on stdout is the absolute library path; progress goes to stderr.
set -euo pipefail

ORT_VERSION="1.24.3"
NPM_SPEC="onnxruntime-node@${ORT_VERSION}"
# sha256 of onnxruntime-node-1.24.3.tgz as produced by `npm pack` (same on every platform).
TARBALL_SHA256="aa1bb5fa261ea68de05dd53efbba210cd7adf2d2850f4c3a201054c74cc78040"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/go-sdtp"

log() { printf 'fetch-onnxruntime: %s\n' "$*" >&2; }
die() { printf 'fetch-onnxruntime: error: %s\n' "$*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  else
    die "need sha256sum or shasum to verify downloads"
  fi
}

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) die "unsupported OS '$(uname -s)' (supported: linux-x64, linux-arm64, darwin-arm64)" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) die "unsupported CPU '$(uname -m)' (supported: linux-x64, linux-arm64, darwin-arm64)" ;;
esac

# Library file name as shipped, its sha256, and the extra symlink names to create.
case "$os-$arch" in
  linux-x64)
    LIB="libonnxruntime.so.1"
    LIB_SHA256="92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682"
    LINKS=(libonnxruntime.so) ;;
  linux-arm64)
    LIB="libonnxruntime.so.1"
    LIB_SHA256="33032cb5b91c12edbf028d7c69fa40a31848d66c0095448758af237d5e0b07db"
    LINKS=(libonnxruntime.so) ;;
  darwin-arm64)
    LIB="libonnxruntime.${ORT_VERSION}.dylib"
    LIB_SHA256="76831409ce6eded92b4cb343cf422c458a60c1ea1d5f3cfa69692ab7fcc67f0f"
    LINKS=(libonnxruntime.dylib) ;;
  *) die "no prebuilt ONNX Runtime in $NPM_SPEC for $os-$arch (supported: linux-x64, linux-arm64, darwin-arm64)" ;;
esac

DEST="$CACHE_DIR/onnxruntime/$ORT_VERSION/$os-$arch"
LIB_PATH="$DEST/$LIB"
REPO_LINK="$SCRIPT_DIR/onnxruntime/lib"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  --print-path) printf '%s\n' "$LIB_PATH"; exit 0 ;;
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage; die "unknown argument: $1" ;;
esac

need_fetch=1
if [ -f "$LIB_PATH" ]; then
  got="$(sha256_of "$LIB_PATH")"
  if [ "$got" = "$LIB_SHA256" ]; then
    need_fetch=0
    log "cached: $LIB_PATH (sha256 ok)"
  else
    log "cached $LIB_PATH has sha256 $got, want $LIB_SHA256; fetching again"
  fi
fi

if [ "$need_fetch" = 1 ]; then
  command -v npm >/dev/null 2>&1 || die "npm not found; it is needed to fetch $NPM_SPEC"
  mkdir -p "$DEST"
  # Temp dir on the same filesystem as DEST so the final mv is an atomic rename.
  TMP="$(mktemp -d "$CACHE_DIR/onnxruntime/.fetch.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  trap 'exit 130' INT TERM

  log "downloading $NPM_SPEC (~86 MB) ..."
  (cd "$TMP" && npm pack "$NPM_SPEC" --silent >&2) || die "npm pack $NPM_SPEC failed"
  tgz="$TMP/onnxruntime-node-${ORT_VERSION}.tgz"
  [ -f "$tgz" ] || die "npm pack did not produce $(basename "$tgz")"
  got="$(sha256_of "$tgz")"
  [ "$got" = "$TARBALL_SHA256" ] || die "sha256 mismatch for $(basename "$tgz"): got $got, want $TARBALL_SHA256"

  member="package/bin/napi-v6/$os/$arch/$LIB"
  tar -xzf "$tgz" -C "$TMP" "$member" || die "$member not found in $(basename "$tgz")"
  got="$(sha256_of "$TMP/$member")"
  [ "$got" = "$LIB_SHA256" ] || die "sha256 mismatch for $LIB: got $got, want $LIB_SHA256"
  chmod 0755 "$TMP/$member"
  mv -f "$TMP/$member" "$LIB_PATH"
  log "installed $LIB_PATH"
fi

for l in "${LINKS[@]}"; do
  ln -sfn "$LIB" "$DEST/$l"
done

mkdir -p "$SCRIPT_DIR/onnxruntime"
if [ -e "$REPO_LINK" ] && [ ! -L "$REPO_LINK" ]; then
  die "$REPO_LINK exists and is not a symlink; remove it and re-run"
fi
ln -sfn "$DEST" "$REPO_LINK"
log "linked third_party/onnxruntime/lib -> $DEST"

printf '%s\n' "$LIB_PATH"
