#!/usr/bin/env bash
# test.sh: PHPUnit for the b24hub.forwarder module on the stand-in kernel.
# Needs php-cli (8.1+), its SQLite PDO driver and phpunit (Debian: php-cli
# php-sqlite3 phpunit). Without them it skips locally and fails under
# CI=true, so CI can never pass by not running the PHP tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v phpunit >/dev/null 2>&1 || missing+=(phpunit)
if command -v php >/dev/null 2>&1 && ! php -m | grep -qx pdo_sqlite; then missing+=(php-sqlite3); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "test:php: missing ${missing[*]} (apt-get install -y php-cli phpunit php-sqlite3)" >&2
    exit 1
  fi
  echo "test:php: SKIPPED, missing ${missing[*]} (apt-get install -y php-cli phpunit php-sqlite3)"
  exit 0
fi
php -r 'exit(PHP_VERSION_ID >= 80100 ? 0 : 1);' || { echo "test:php: PHP 8.1+ required, have $(php -r 'echo PHP_VERSION;')" >&2; exit 1; }
phpunit -c "$here/tests/phpunit.xml"
