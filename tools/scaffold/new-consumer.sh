#!/usr/bin/env bash
# new-consumer.sh NAME [EVENTS] — generate services/NAME, a working, tested
# consumer module built on libs/consumer, from tools/scaffold/template.
#
#   NAME    lower-case service name, e.g. invoice-sync (letters, digits, '-')
#   EVENTS  comma-separated raw events, default ONCRMDEALUPDATE
#
# Run from anywhere (the Taskfile runs it from the repository root). It
# refuses to overwrite an existing directory, runs `go mod tidy`, gofmt, vet
# and the generated tests with GOWORK=off (the module must build on its own,
# as its Docker image does), and adds the module to go.work.
#
#   SCAFFOLD_DEST=DIR   generate DIR/NAME instead of services/NAME. Replace
#                       lines point at the repository's libs: relative when
#                       DIR is inside the repository, absolute otherwise (a
#                       temporary directory for a check).
#   SCAFFOLD_NO_WORK=1  do not add the module to go.work (implied when DIR is
#                       outside the repository).
#
# The Kubernetes manifests, Dockerfile and deploy/k8stest entries are not
# generated: docs/adding-a-consumer.md ("Deploying it") lists them.
set -euo pipefail

name="${1:-}"
events="${2:-ONCRMDEALUPDATE}"
if [[ ! "$name" =~ ^[a-z][a-z0-9-]{1,40}$ ]]; then
  echo "usage: $0 NAME [EVENTS]   (NAME: lower-case letters, digits and '-', e.g. invoice-sync)" >&2
  exit 2
fi
if [[ ! "$events" =~ ^[A-Z0-9_]+(,[A-Z0-9_]+)*$ ]]; then
  echo "EVENTS must be comma-separated upper-case event codes, e.g. ONCRMDEALADD,ONCRMDEALUPDATE" >&2
  exit 2
fi

# relpath FROM TO prints directory TO relative to directory FROM; both are
# absolute physical paths.
relpath() {
  local from=$1 to=$2 up=
  while [[ $from != / && $to != "$from" && $to != "$from"/* ]]; do
    from=$(dirname "$from")
    up=../$up
  done
  local rest=${to#"$from"}
  rest=${rest#/}
  local r=$up$rest
  r=${r%/}
  echo "${r:-.}"
}

root="$(cd "$(dirname "$0")/../.." && pwd -P)"
parent="${SCAFFOLD_DEST:-$root/services}"
mkdir -p "$parent"
parent="$(cd "$parent" && pwd -P)"
dest="$parent/$name"
if [[ -e "$dest" ]]; then
  echo "$dest already exists" >&2
  exit 1
fi
inside=0
if [[ "$dest" == "$root"/* ]]; then
  inside=1
  libs="$(relpath "$dest" "$root")"
else
  libs="$root"
fi
pkg="${name//-/}"
envname="$(tr 'a-z-' 'A-Z_' <<<"$pkg")"
schema="${name//-/_}"
first="${events%%,*}"
eventlist="$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$events")"
template="$root/tools/scaffold/template"

while IFS= read -r -d '' src; do
  rel="${src#"$template"/}"
  rel="${rel//__NAME__/$name}"
  rel="${rel//__PKG__/$pkg}"
  rel="${rel%.tmpl}"
  mkdir -p "$dest/$(dirname "$rel")"
  sed -e "s/__NAME__/$name/g; s/__PKG__/$pkg/g; s/__ENV__/$envname/g; s/__SCHEMA__/$schema/g" \
      -e "s/__EVENTLIST__/$eventlist/g; s/__EVENTS__/${events//,/, }/g; s/__FIRSTEVENT__/$first/g" \
      -e "s|__ROOT__|$libs|g" \
      "$src" >"$dest/$rel"
done < <(find "$template" -type f -print0)

cd "$dest"
# Start from the libraries' checksums: tidy then resolves the versions the
# libraries already use without asking the checksum database for each.
cat "$root"/libs/go.sum "$root"/libs/*/go.sum "$root"/proto/go.sum 2>/dev/null | sort -u >go.sum
GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null
gofmt -l . | (! grep .) || { echo "generated code is not gofmt-clean" >&2; exit 1; }
GOWORK=off go vet ./...
GOWORK=off go test -count=1 ./...
if [[ "${SCAFFOLD_NO_WORK:-}" != 1 && $inside == 1 ]]; then
  (cd "$root" && go work use "./$(relpath "$root" "$dest")")
elif [[ "${SCAFFOLD_NO_WORK:-}" != 1 ]]; then
  echo "$dest is outside the repository: not added to go.work" >&2
fi
echo "generated $dest: start in internal/consumer/handler/handler.go; deploy it as docs/adding-a-consumer.md (\"Deploying it\") says"
