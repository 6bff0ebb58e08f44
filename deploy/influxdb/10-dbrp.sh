#!/bin/bash
# One-shot init script for the influxdb:2.7 image: runs once, right after
# DOCKER_INFLUXDB_INIT_MODE=setup created the org, bucket and admin token (the influx CLI
# is already configured with that token), and never again once the data volume exists.
#
# sealscope and Grafana read with InfluxQL, which addresses a database/retention policy,
# not a bucket: map <bucket> (as database <bucket>, rp autogen) onto the bucket.
set -euo pipefail

db="${SEALSCOPE_INFLUX_DATABASE:-${DOCKER_INFLUXDB_INIT_BUCKET}}"

influx v1 dbrp create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${db}" \
    --rp autogen \
    --default

echo "sealscope: InfluxQL database '${db}' (rp autogen) maps to bucket '${DOCKER_INFLUXDB_INIT_BUCKET}'"
