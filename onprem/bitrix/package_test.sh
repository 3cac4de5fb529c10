#!/usr/bin/env bash
# package_test.sh: builds the module archive twice and checks it: every file
# an installation needs, nothing else (no tests, no stand-in kernel), one top
# folder, a parseable installer, and byte-identical builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash "$here/package.sh" "$tmp/a.tar.gz" >/dev/null
bash "$here/package.sh" "$tmp/b.tar.gz" >/dev/null
fail() { echo "package_test: $*" >&2; exit 1; }

cmp -s "$tmp/a.tar.gz" "$tmp/b.tar.gz" || fail "two builds differ: the archive is not reproducible"
tar -tzf "$tmp/a.tar.gz" | sort > "$tmp/list"
for f in include.php options.php default_option.php install/index.php install/version.php tools/ship.php \
  lang/en/install/index.php lang/ru/install/index.php lang/en/options.php lang/ru/options.php \
  lib/Agent.php lib/EventCapture.php lib/Module.php lib/Serializer.php lib/Settings.php lib/Shipper.php \
  lib/Signer.php lib/Spool.php lib/SpoolTable.php lib/Status.php lib/StreamTransport.php lib/Subscriptions.php \
  lib/Transport.php lib/Uuid.php; do
  grep -qx "b24hub.forwarder/$f" "$tmp/list" || fail "missing b24hub.forwarder/$f"
done
if grep -v '^b24hub\.forwarder/' "$tmp/list"; then fail "entries outside b24hub.forwarder/"; fi
if grep -Ei '(^|/)tests?/|phpunit|kernel' "$tmp/list"; then fail "test files in the archive"; fi
# Every lib/ class file is named as its class (PSR-4, what include.php's autoloader expects).
mkdir "$tmp/x" && tar -xzf "$tmp/a.tar.gz" -C "$tmp/x"
for f in "$tmp"/x/b24hub.forwarder/lib/*.php; do
  name=$(basename "$f" .php)
  grep -Eq "^(final |abstract )?(class|interface) $name( |$)" "$f" || fail "lib/$name.php does not declare $name"
done
grep -q "class b24hub_forwarder extends CModule" "$tmp/x/b24hub.forwarder/install/index.php" || fail "installer class missing"
echo "package_test: ok ($(wc -l < "$tmp/list") entries)"
