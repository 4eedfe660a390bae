#!/usr/bin/env bash
# Before the tests: make sure the local PostgreSQL that the postgres project uses is up. On this machine kind it is
# installed but may be stopped; elsewhere, point ANNAL_TEST_DATABASE_URL at a server and this does nothing.
set -u
[ -n "${ANNAL_TEST_DATABASE_URL:-}" ] && exit 0
command -v pg_isready >/dev/null 2>&1 || { echo "pg_isready not found: the postgres test project needs PostgreSQL at 127.0.0.1:5432" >&2; exit 0; }
pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "PostgreSQL is down; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && exit 0; sleep 1; done
fi
echo "PostgreSQL is not reachable at 127.0.0.1:5432: the postgres test project will fail" >&2
exit 0
