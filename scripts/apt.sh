# Sourced by the install scripts: apt_install installs Debian packages the
# way every one of them must, and is the one place that knows how.
#
#   apt_install <package>...
#
# Root or sudo; apt-get only. Service starts are blocked while it runs
# (/usr/sbin/policy-rc.d, only if none is installed, removed afterwards):
# the tests start every server they need themselves, on private data and
# free loopback ports, and a package's system service must not take a port
# or a data directory. Waits for a concurrent apt/dpkg run. Needs log() and
# die() from the sourcing script. $APT_PRESEED, if set, is a function run
# (as root) before the install, for debconf answers.
apt_install() {
  local sudo=() as policy lock
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: $*"
    sudo=(sudo)
  fi
  as="${sudo[*]:+sudo }"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"

  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    log "temporarily blocking service starts via $policy"
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    # shellcheck disable=SC2064 # expand sudo now
    trap "${sudo[*]} rm -f $policy" EXIT
  fi

  export DEBIAN_FRONTEND=noninteractive
  if [[ -n "${APT_PRESEED:-}" ]]; then
    "$APT_PRESEED" "${sudo[@]}"
  fi
  lock=(-o DPkg::Lock::Timeout=600)
  log "running: ${as}apt-get update"
  "${sudo[@]}" apt-get "${lock[@]}" update -q
  log "running: ${as}apt-get install -y --no-install-recommends $*"
  "${sudo[@]}" apt-get "${lock[@]}" install -y -q --no-install-recommends "$@"
  log "installed: $*"
}
