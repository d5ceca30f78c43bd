#!/usr/bin/env bash
# await-deps.sh BINARY ARGS...: make test's `go test -exec` wrapper. make
# test compiles while ONNX Runtime and the model download (fetch-deps in
# the Makefile); a test binary must not start before they are there. This
# waits for the download's outcome, $SDTP_DEPS_DONE.ok or .failed, then
# runs the binary, or fails if the download failed.
set -uo pipefail
done="${SDTP_DEPS_DONE:?await-deps.sh: SDTP_DEPS_DONE is not set (run by make test)}"
while [ ! -e "$done.ok" ] && [ ! -e "$done.failed" ]; do
  sleep 0.5
done
if [ ! -e "$done.ok" ]; then
  echo "await-deps: fetching ONNX Runtime or the model failed (its error is above); not running $(basename "$1")" >&2
  exit 1
fi
exec "$@"
