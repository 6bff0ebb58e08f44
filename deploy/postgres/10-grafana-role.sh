#!/bin/bash
# One-shot init script for the postgres:16 image: runs once, when the data volume is new.
#
# Grafana's alerts panel reads PostgreSQL as sealscope_grafana, a login that may only
# SELECT the alerts and devices tables. sealscope's migration 0001_base grants that when
# it creates them (they do not exist yet at this point), and grants nothing else to it.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$SEALSCOPE_POSTGRES_GRAFANA_PASSWORD" <<'SQL'
CREATE ROLE sealscope_grafana LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"DBNAME" TO sealscope_grafana;
GRANT USAGE ON SCHEMA public TO sealscope_grafana;
SQL
echo "sealscope: role sealscope_grafana created for Grafana (read-only, alerts and devices)"
