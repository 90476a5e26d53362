#!/usr/bin/env bash
# `make run`: serve on 127.0.0.1:8080 with SQLite at ./data/apikeyd.db. On a
# new database, first creates a demo account and prints its primary key once.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${APIKEYD_DB:-./data/apikeyd.db}
LISTEN=${APIKEYD_LISTEN:-127.0.0.1:8080}
mkdir -p "$(dirname "$DB")"
if [ ! -e "$DB" ]; then
    out=$(./build/apikeyd account create --db "$DB" --name demo)
    key=$(printf '%s' "$out" | sed -n 's/.*"api_key": "\([^"]*\)".*/\1/p')
    echo "$out"
    cat <<MSG

A demo account was created. Its primary key is shown above and never again.
Try it:

  curl -H "Authorization: Bearer $key" http://$LISTEN/v1/account/api-keys/

MSG
fi
exec ./build/apikeyd serve --db "$DB" --listen "$LISTEN"
