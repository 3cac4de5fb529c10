#!/usr/bin/env bash
# package.sh OUT: packs the b24hub.forwarder module into OUT (a .tar.gz whose
# single top folder is b24hub.forwarder/, to unpack into local/modules/).
# The archive is reproducible: sorted names, fixed owner and mtime.
set -euo pipefail
out=${1:?usage: package.sh OUT.tar.gz}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$out")"
if command -v php >/dev/null 2>&1; then
  # A syntax error must not reach an installation.
  find "$here/b24hub.forwarder" -name '*.php' -print0 | xargs -0 -n1 php -l >/dev/null
fi
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode='u+rwX,go+rX,go-w' \
  -C "$here" -cf - b24hub.forwarder | gzip -9n > "$out"
echo "packed $out"
