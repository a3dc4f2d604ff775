#!/usr/bin/env bash
# Installs the real cookie parsers that internal/cookieparsers runs, only
# when missing. Safe to run repeatedly: with everything present it installs
# nothing and does not touch apt or npm at all.
#
#   bash scripts/install-parsers.sh
#
#   php        php-cli + php-cgi (Debian)      $_COOKIE as the CGI SAPI fills it
#   werkzeug   python3-werkzeug (Debian)       under Debian's /usr/bin/python3
#   httpcookies  http.cookies of /usr/bin/python3 (stdlib)
#   rack       ruby + ruby-rack (Debian)       under /usr/bin/ruby
#   node       npm package `cookie`, pinned in internal/cookieparsers/node/
#              (package.json + package-lock.json), installed with `npm ci`
#
# Debian/Ubuntu only (apt-get). Uses sudo only when not running as root.
# Exits non-zero if anything is still missing afterwards.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'install-parsers: %s\n' "$*"; }
die() { printf 'install-parsers: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

# Interpreters are used by absolute path: the PATH python3 may be a pyenv one
# without Debian's python3-werkzeug.
PY=/usr/bin/python3
RUBY=/usr/bin/ruby
PHP=/usr/bin/php
PHPCGI=/usr/bin/php-cgi
nodedir=internal/cookieparsers/node

# Each check is a shell snippet; it is run before and (for a final verdict)
# after installing.
checks=(
  "php|[[ -x $PHP ]]|php-cli"
  "php-cgi|[[ -x $PHPCGI ]]|php-cgi"
  "python3|[[ -x $PY ]]|python3"
  "werkzeug|$PY -c 'import werkzeug' 2>/dev/null|python3-werkzeug"
  "ruby|[[ -x $RUBY ]]|ruby"
  "rack|$RUBY -e 'require \"rack\"' 2>/dev/null|ruby-rack"
  "node|command -v node >/dev/null 2>&1|nodejs"
  "npm|command -v npm >/dev/null 2>&1|npm"
)

packages=()
for c in "${checks[@]}"; do
  IFS='|' read -r name test pkg <<<"$c"
  if eval "$test"; then
    log "ok: $name"
  else
    log "missing: $name -> will install: $pkg"
    packages+=("$pkg")
  fi
done

if ((${#packages[@]} > 0)); then
  apt_install "${packages[@]}"
else
  log "all system packages present; nothing installed"
fi

# Final verdict on the system packages: fail loudly if any is still missing.
for c in "${checks[@]}"; do
  IFS='|' read -r name test pkg <<<"$c"
  eval "$test" || die "still missing after install: $name (package $pkg)"
done

# The npm package, at the version pinned in package-lock.json.
want="$(node -e 'process.stdout.write(require(process.argv[1]).packages["node_modules/cookie"].version)' \
  "$PWD/$nodedir/package-lock.json")"
have="$(node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
  "$PWD/$nodedir/node_modules/cookie/package.json")"
if [[ "$have" == "$want" ]]; then
  log "ok: npm cookie@$have ($nodedir/node_modules)"
else
  log "npm cookie: have '${have:-none}', want $want -> running: npm ci --no-audit --no-fund (in $nodedir)"
  (cd "$nodedir" && npm ci --no-audit --no-fund)
  have="$(node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "$PWD/$nodedir/node_modules/cookie/package.json")" ||
    die "npm cookie not installed in $nodedir"
  [[ "$have" == "$want" ]] || die "npm cookie: installed $have, want $want"
  log "installed: npm cookie@$have"
fi

log "versions: php $($PHP -r 'echo PHP_VERSION;')," \
  "werkzeug $($PY -c 'import importlib.metadata as m; print(m.version("werkzeug"))')," \
  "python $($PY -c 'import platform; print(platform.python_version())')," \
  "rack $($RUBY -e 'require "rack"; print Rack.release')," \
  "ruby $($RUBY -e 'print RUBY_VERSION')," \
  "node $(node --version), cookie $have"
