#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, staticcheck, and every test
# with the race detector, fuzz seed corpora included. Usage: scripts/test.sh [go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "scripts/test.sh: Go is not installed; install Go 1.26 or newer (https://go.dev/dl/)." >&2
  exit 1
fi

# Real servers the tests start: Redis (the limit store) and PostgreSQL (the
# usage ledger), and the headless Chromium the web UI's browser tests drive.
# Installed here when this runs as root with apt-get; otherwise it says what
# to install. They are looked for where the tests look: redis-server and
# chromium-headless-shell on the PATH, PostgreSQL's initdb on the PATH or
# where Debian's packages put it (internal/redistest, internal/pgtest,
# internal/app/browser_test.go).
find_missing() {
  missing=""
  command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
  { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$missing postgresql"
  command -v chromium-headless-shell >/dev/null 2>&1 || missing="$missing chromium-headless-shell"
}
find_missing
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing$missing (Debian packages)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    # A package that was installed already, with its programs off this
    # PATH, is still missing: say so rather than fail every test that needs it.
    find_missing
    if [ -n "$missing" ]; then
      echo "scripts/test.sh: installed$missing, but the tests still cannot find it: is /usr/bin on the PATH?" >&2
      exit 1
    fi
  else
    echo "scripts/test.sh: the tests need$missing; install (Debian/Ubuntu: sudo apt-get install$missing)." >&2
    exit 1
  fi
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "scripts/test.sh: these files need gofmt -w:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...
# staticcheck, pinned in go.mod as a tool (go get -tool).
go tool staticcheck ./...
go test -race -count=1 "$@" ./...
