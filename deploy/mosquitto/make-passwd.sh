#!/bin/sh
# Create deploy/mosquitto/passwd with the sealscope service users, passwords from .env.
# Devices are added afterwards, one line each (deploy/README.md). Re-running rewrites the
# service users and keeps every other line (the devices).
#   deploy/mosquitto/make-passwd.sh [path/to/.env]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
env_file=${1:-$here/../../.env}
passwd=$here/passwd

# shellcheck disable=SC1090
. "$env_file"

if command -v mosquitto_passwd >/dev/null 2>&1; then
    mp() { mosquitto_passwd "$@"; }
    file=$passwd
else
    # No local mosquitto: use the broker image's mosquitto_passwd on the same file.
    mp() { docker run --rm -v "$here:/work" eclipse-mosquitto:2.0 mosquitto_passwd "$@"; }
    file=/work/passwd
fi

touch "$passwd"
for pair in \
    "sealscope-ingest:${SEALSCOPE_INGEST_MQTT_PASSWORD:-}" \
    "sealscope-api:${SEALSCOPE_API_MQTT_PASSWORD:-}" \
    "sealscope-gateway:${SEALSCOPE_GATEWAY_MQTT_PASSWORD:-}" \
    "sealscope-health:${SEALSCOPE_MQTT_HEALTH_PASSWORD:-}" \
    "sealscope-sim:${SEALSCOPE_SIM_MQTT_PASSWORD:-}"; do
    user=${pair%%:*}
    password=${pair#*:}
    if [ -z "$password" ]; then
        echo "skip $user: no password in $env_file" >&2
        mp -D "$file" "$user" >/dev/null 2>&1 || true
        continue
    fi
    mp -b "$file" "$user" "$password"
done

# The broker runs as uid 1883 in the eclipse-mosquitto image and must read the file.
chmod 0640 "$passwd"
echo "wrote $passwd; if it is not readable by uid 1883: sudo chown 1883:1883 $passwd" >&2
