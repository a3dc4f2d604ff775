#!/usr/bin/env bash
# Installs what the tests (and later the benchmark) need, only when missing.
# Safe to run repeatedly: with everything present it installs nothing and
# does not touch apt at all.
#
#   bash scripts/install-deps.sh           # test dependencies
#   bash scripts/install-deps.sh --lint    # ... plus staticcheck (or LINT=1)
#
# Debian/Ubuntu only (apt-get). Uses sudo only when not running as root.
set -euo pipefail

lint="${LINT:-0}"
case "${1:-}" in
  "") ;;
  --lint) lint=1 ;;
  *) echo "usage: $0 [--lint]" >&2; exit 2 ;;
esac

log() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

packages=()
need() { # need <command> <debian package>...
  local cmd="$1"; shift
  if command -v "$cmd" >/dev/null 2>&1; then
    log "ok: $cmd ($(command -v "$cmd"))"
  else
    log "missing: $cmd -> will install: $*"
    packages+=("$@")
  fi
}

# Tests start real Redis servers and build clusters (internal/redistest).
need redis-server redis-server
need redis-cli redis-tools

# `go test -race` (the default in scripts/test.sh) needs cgo and a C compiler.
if [[ "${RACE:-1}" != 0 ]] && command -v go >/dev/null 2>&1; then
  cc="$(go env CC)"
  need "${cc:-gcc}" gcc libc6-dev
fi

# The benchmark (go run ./bench) drives load with wrk.
need wrk wrk
# Chromium for the page tests: scripts/install-browser.sh.

if ((${#packages[@]} > 0)); then
  apt_install "${packages[@]}"
else
  log "all system packages present; nothing installed"
fi

if [[ "$lint" == 1 ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-deps: go not found; cannot install staticcheck" >&2
    exit 1
  fi
  gobin="$(go env GOBIN)"
  if [[ -z "$gobin" ]]; then
    gobin="$(go env GOPATH | cut -d: -f1)/bin"
  fi
  if [[ -x "$gobin/staticcheck" ]]; then
    log "ok: staticcheck ($gobin/staticcheck)"
  else
    log "running: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 (into $gobin)"
    # GOFLAGS cleared so a -mod setting meant for this repo does not apply.
    GOBIN="$gobin" GOFLAGS='' go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
    log "installed: $gobin/staticcheck"
  fi
  case ":$PATH:" in
    *":$gobin:"*) ;;
    *) log "note: $gobin is not on PATH" ;;
  esac
fi
