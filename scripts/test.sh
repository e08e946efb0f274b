#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, and every test with the race
# detector, fuzz seed corpora included. Usage: scripts/test.sh [go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "scripts/test.sh: Go is not installed; install Go 1.26 or newer (https://go.dev/dl/)." >&2
  exit 1
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "scripts/test.sh: these files need gofmt -w:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...
go test -race -count=1 "$@" ./...
