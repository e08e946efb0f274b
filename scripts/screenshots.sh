#!/usr/bin/env bash
# Writes the web UI's screenshots for the docs into docs/images/: it runs the
# browser tests (internal/app/webui_test.go) with -screenshots, which write
# each page they drive there as well as into their temp dirs. Needs Debian's
# chromium-headless-shell (apt-get install chromium-headless-shell).
# Usage: scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/images
go test -count=1 -run '^TestBrowser' ./internal/app -args -screenshots="$PWD/docs/images"
ls -l docs/images
