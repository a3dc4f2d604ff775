#!/usr/bin/env bash
# The project's test command: bash scripts/test.sh [go test args...]
#
# Installs missing dependencies (Redis, the real applications, Chromium),
# checks formatting, runs go vet and then the whole test suite against real
# Redis servers and browsers started by the tests.
#
#   bash scripts/test.sh                     # everything, with -race
#   bash scripts/test.sh -run Cluster -v     # extra args go to `go test`
#   RACE=0 bash scripts/test.sh              # without the race detector
#   PKGS=./internal/... bash scripts/test.sh # narrow the packages
#   LINT=0 bash scripts/test.sh              # skip staticcheck
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==== %s ====\n' "$*"; }

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: go not found on PATH" >&2
  exit 1
fi

section "dependencies (scripts/install-deps.sh)"
if [[ "${LINT:-1}" != 0 ]]; then
  bash scripts/install-deps.sh --lint
else
  bash scripts/install-deps.sh
fi

section "cookie parsers of real stacks (scripts/install-parsers.sh)"
bash scripts/install-parsers.sh

section "real applications (scripts/install-apps.sh)"
bash scripts/install-apps.sh

section "browser for the page tests (scripts/install-browser.sh)"
bash scripts/install-browser.sh

go version
redis-server --version

section "gofmt"
# testdata may hold deliberately odd Go files; vendor is not ours.
unformatted="$(find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' \
  -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)"
if [[ -n "$unformatted" ]]; then
  echo "not gofmt'ed (run gofmt -w on these):" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "ok"

section "go vet"
go vet ./...
echo "ok"

if [[ "${LINT:-1}" != 0 ]]; then
  section "staticcheck"
  gobin="$(go env GOBIN)"
  [[ -n "$gobin" ]] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
  "$gobin/staticcheck" ./...
  echo "ok"
fi

race=(-race)
if [[ "${RACE:-1}" == 0 ]]; then
  race=()
fi
read -r -a pkgs <<<"${PKGS:-./...}"

section "go test ${race[*]} -count=1 -timeout 45m ${pkgs[*]} $*"
go test "${race[@]}" -count=1 -timeout 45m "${pkgs[@]}" "$@"

section "all checks passed"
