#!/usr/bin/env bash
# Installs the browser that the browser tests drive (internal/browsertest):
# Debian's chromium package, only when /usr/bin/chromium is missing.
#
# Safe to run repeatedly: with Chromium present it installs nothing and does
# not touch apt at all. Fails (non-zero) when Chromium cannot be installed or
# does not run afterwards.
#
#   bash scripts/install-browser.sh
#
# Only the distribution's Chromium is used: no tool that downloads a browser
# build of its own (those downloads fail here, and would bypass Debian's
# security updates). The tests drive it over the DevTools protocol from Go
# (chromedp); chromium-driver is not needed. Text renders with the font
# that chromium's dependencies bring (fontconfig needs one: fonts-dejavu-core
# or an alternative).
#
# Debian only (apt-get; Ubuntu ships Chromium as a snap, which this does not
# use). Uses sudo only when not running as root.
set -euo pipefail

log() { printf 'install-browser: %s\n' "$*"; }
die() { printf 'install-browser: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

start=$SECONDS
bin=/usr/bin/chromium

if [[ -x "$bin" ]]; then
  log "ok: $bin"
else
  log "missing: $bin -> will install: chromium"
  apt_install chromium
fi

# Verify what internal/browsertest relies on; fail loudly otherwise.
[[ -x "$bin" ]] || die "$bin is still missing after installing the Debian package chromium"
version="$("$bin" --version 2>/dev/null)" || die "$bin --version failed; the chromium install is broken"
log "ok: $version ($((SECONDS - start))s)"
