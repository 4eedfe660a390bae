#!/usr/bin/env bash
# Installs the packages as a user would: packs every workspace package, installs the tarballs into a new project
# outside the repository (no workspace, no links), and there runs a program on PGlite and one on PostgreSQL with
# plain Node 22 and 24, `npx annal --help`, a strict `tsc --module nodenext` consumer, and a bundle of a core-only
# program, which must hold no PGlite. Usage: bash test/package/check.sh (after `npm ci`, with PostgreSQL up).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/annal-package-XXXXXX)"
[ -n "${ANNAL_PACKAGE_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
url="${ANNAL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PGOPTIONS="--client-min-messages=warning"
node24="$repo/node_modules/node/bin/node"

cd "$repo"
for name in core ui sql-pg sql-pglite http nats webhooks cli; do
  npm pack -w "@annal/$name" --pack-destination "$work" > /dev/null
done
if tar tzf "$work/annal-core-"*.tgz | grep -E '(^|/)test/|\.test\.'; then
  echo "@annal/core's tarball holds tests" >&2
  exit 1
fi

# The tarballs are what a release publishes (docs/releasing.md), so they are what the linters read.
for tarball in "$work"/annal-*.tgz; do
  echo "== publint and attw: $(basename "$tarball")"
  # --strict: a warning fails as an error does.
  "$node24" "$repo/node_modules/publint/src/cli.js" run "$tarball" --strict
  # Every module is a subpath through the "./*" export, which attw does not expand: name each one, so a module
  # whose .d.ts is missing or whose export does not resolve fails here. Profile esm-only: the packages are ESM
  # ("type": "module", no "require" condition, no "main"), so the two resolutions it leaves out, node10 and
  # require() from CommonJS, are ones they do not offer; every problem in node16-ESM and bundler fails the check.
  modules="$(tar tzf "$tarball" | sed -n 's#^package/dist/\([^/]*\)\.js$#./\1#p' | { grep -vx './index' || true; })"
  # A package with one module (@annal/ui) has no subpath to name, and an empty list would swallow the next flag.
  entrypoints=()
  # shellcheck disable=SC2206 # one argument per module
  [ -z "$modules" ] || entrypoints=(--include-entrypoints $modules)
  "$node24" "$repo/node_modules/@arethetypeswrong/cli/dist/index.js" "$tarball" --profile esm-only \
    "${entrypoints[@]}" --format ascii --no-color > "$work/attw.txt" 2>&1 ||
    { cat "$work/attw.txt" >&2; echo "attw found problems in $(basename "$tarball")" >&2; exit 1; }
  # npm shows the README away from the repository, where a relative link leads nowhere.
  tar xzf "$tarball" -O package/README.md | "$node24" -e '
    const text = require("node:fs").readFileSync(0, "utf8")
    const targets = [...text.matchAll(/\]\(([^)\s]+)[^)]*\)|^\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1] ?? m[2])
    const relative = targets.filter((url) => !/^(https?:|mailto:|#)/.test(url))
    if (relative.length > 0) {
      console.error(`relative links in the README, broken on npm: ${relative.join(", ")}`)
      process.exit(1)
    }'
done

mkdir "$work/app" "$work/node22"
(cd "$work/node22" && npm init -y > /dev/null && npm install --no-audit --no-fund --silent node@22 > /dev/null)
node22="$work/node22/node_modules/node/bin/node"

cd "$work/app"
npm init -y > /dev/null
npm pkg set type=module
# The versions the workspace is tested with, from its own lockfile.
version() { "$node24" -p "require('$repo/node_modules/$1/package.json').version"; }
npm install --no-audit --no-fund --silent "$work"/annal-*.tgz "effect@$(version effect)" \
  "@effect/sql-pg@$(version @effect/sql-pg)" "@effect/platform-node@$(version @effect/platform-node)" \
  "typescript@$(version typescript)" "rolldown@$(version rolldown)"
cp "$repo/examples/quickstart/src/main.ts" pglite.ts
# The same program on PostgreSQL: only its client layer differs, in a schema of this run's own.
sed -e 's#^import { PgliteClient } from "@annal/sql-pglite"#import { PgFeedSignal } from "@annal/sql-pg"\nimport * as Redacted from "effect/Redacted"#' \
  -e 's#\(EventStore\|Migrations\)\.layer()#\1.layer({ schema: process.env["ANNAL_SCHEMA"] ?? "public" })#' \
  -e 's#Layer.provideMerge(PgliteClient.layer({.*}))#Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(process.env["DATABASE_URL"] ?? "") }))#' \
  pglite.ts > pg.ts
[ "$(grep -c 'ANNAL_SCHEMA' pg.ts)" = 2 ] && grep -q "PgFeedSignal.layerClient" pg.ts && ! grep -q "PgliteClient" pg.ts || { echo "the quickstart's client layer moved: update check.sh" >&2; exit 1; }
cp "$repo/test/package/core-only.ts" "$repo/test/package/tsconfig.json" .

if npm ls --all --omit=dev --prefix node_modules/@annal/core 2> /dev/null | grep -E "pglite|platform-node"; then
  echo "@annal/core depends on PGlite or @effect/platform-node" >&2
  exit 1
fi
core_deps="$("$node24" -p "Object.keys(require('./node_modules/@annal/core/package.json').dependencies ?? {}).join(',')")"
[ -z "$core_deps" ] || { echo "@annal/core has dependencies: $core_deps" >&2; exit 1; }

schema="annal_pkg_$$"
for node in "$node22" "$node24"; do
  echo "== $("$node" --version): PGlite"
  ANNAL_DATA_DIR=memory:// "$node" pglite.ts | tee out.txt
  grep -q "current name: Acme Commodities" out.txt
  echo "== $("$node" --version): PostgreSQL"
  psql "$url" -qc "DROP SCHEMA IF EXISTS ${schema} CASCADE"
  DATABASE_URL="$url" ANNAL_SCHEMA="$schema" "$node" pg.ts | tee out.txt
  grep -q "current name: Acme Commodities" out.txt
  psql "$url" -qc "DROP SCHEMA IF EXISTS ${schema} CASCADE"
done

echo "== npx annal --help"
PATH="$(dirname "$node24"):$PATH" npx annal --help | grep -q "annal <subcommand>"

echo "== tsc --module nodenext, strict"
"$node24" node_modules/typescript/bin/tsc -p tsconfig.json

echo "== a core-only bundle has no PGlite"
# PGlite's loader names its WebAssembly file; nothing of Annal's does.
holds_pglite() { grep -q "pglite.wasm" "$1"/*.js; }
bundle() { "$node24" node_modules/rolldown/bin/cli.mjs "$1" --platform node --format esm -d "$2" > /dev/null 2>&1; }
# The control: a program on PGlite bundles it, so the check below can see it.
bundle pglite.ts bundle-pglite
holds_pglite bundle-pglite || { echo "the check cannot see PGlite in a bundle that has it" >&2; exit 1; }
bundle core-only.ts bundle-core
"$node24" bundle-core/core-only.js
if holds_pglite bundle-core; then
  echo "the core-only bundle holds PGlite" >&2
  exit 1
fi
echo "packages install and run as a user's would"
