#!/usr/bin/env bash
# Installs the real web applications that the end-to-end tests put behind
# Caddy (internal/realapps), only when missing:
#
#   - WordPress (Debian's wordpress package) with PHP-FPM, php-mysql and a
#     MariaDB server binary (the tests start private mariadbd instances);
#   - Redmine (Debian's redmine package, SQLite flavour), served by WEBrick
#     through rackup as README.Debian documents;
#   - PHP-FPM and the PHP CLI for the tiny session_start() test app.
#
# Safe to run repeatedly: with everything present it installs nothing and
# does not touch apt at all. Fails (non-zero) when anything cannot be
# installed or is still missing afterwards.
#
#   bash scripts/install-apps.sh
#
# No system service is started or configured: service starts are blocked
# with /usr/sbin/policy-rc.d during the install, and Redmine's dbconfig step
# (which would create and migrate a system-wide "default" instance) is
# declined through debconf. The tests run every server themselves, on
# private data directories and free 127.0.0.1 ports.
#
# Debian/Ubuntu only (apt-get). Uses sudo only when not running as root.
set -euo pipefail

log() { printf 'install-apps: %s\n' "$*"; }
die() { printf 'install-apps: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

start=$SECONDS

# Debian packages, in the order apt should consider them. php and php-fpm
# come first so that wordpress' "libapache2-mod-php | php" dependency is met
# by PHP-FPM rather than mod_php. (wordpress still pulls apache2 for its
# "apache2 | httpd" dependency; it is installed but never started.)
wanted=(
  php-cli
  php-fpm
  php
  php-mysql
  mariadb-server
  wordpress
  wordpress-theme-twentytwentythree
  redmine
  redmine-sqlite
  ruby-webrick
  ruby-rack
)

installed() { # installed <package>: dpkg knows it as fully installed
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

packages=()
for p in "${wanted[@]}"; do
  if installed "$p"; then
    log "ok: $p"
  else
    log "missing: $p"
    packages+=("$p")
  fi
done

if ((${#packages[@]} > 0)); then
  # Redmine: do not let dbconfig-common create and migrate the system
  # "default" instance (slow, and the tests never use it).
  preseed() {
    command -v debconf-set-selections >/dev/null 2>&1 || return 0
    printf '%s\n' \
      'redmine redmine/current-instances string default' \
      'redmine redmine/instances/default/dbconfig-install boolean false' \
      'redmine redmine/instances/default/database-type select sqlite3' |
      "$@" debconf-set-selections
  }
  APT_PRESEED=preseed apt_install "${packages[@]}"
else
  log "all application packages present; nothing installed"
fi

# Verify what internal/realapps relies on; fail loudly otherwise.
for p in "${wanted[@]}"; do
  installed "$p" || die "package $p is still not installed"
done
fpm=""
for f in /usr/sbin/php-fpm*; do
  [[ -x "$f" ]] && fpm="$f" && break
done
[[ -n "$fpm" ]] || die "no php-fpm binary in /usr/sbin"
command -v php >/dev/null 2>&1 || die "php (CLI) not on PATH"
php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' || die "PHP CLI lacks the mysqli extension (php-mysql)"
"$fpm" -m 2>/dev/null | grep -qx mysqli || die "$fpm lacks the mysqli extension (php-mysql)"
mariadbd=""
for f in /usr/sbin/mariadbd /usr/sbin/mysqld; do
  [[ -x "$f" ]] && mariadbd="$f" && break
done
[[ -n "$mariadbd" ]] || die "no mariadbd/mysqld in /usr/sbin"
command -v mariadb-install-db >/dev/null 2>&1 || command -v mysql_install_db >/dev/null 2>&1 ||
  die "neither mariadb-install-db nor mysql_install_db on PATH"
[[ -f /usr/share/wordpress/wp-login.php ]] || die "/usr/share/wordpress/wp-login.php missing"
[[ -f /usr/share/redmine/config.ru ]] || die "/usr/share/redmine/config.ru missing"
command -v rackup >/dev/null 2>&1 || die "rackup not on PATH (ruby-rack)"
command -v bundle >/dev/null 2>&1 || die "bundle not on PATH (ruby-bundler)"
ruby -e 'require "webrick"; require "sqlite3"' || die "ruby cannot load webrick and sqlite3"

log "ok: $fpm, $mariadbd, /usr/share/wordpress, /usr/share/redmine ($((SECONDS - start))s)"
