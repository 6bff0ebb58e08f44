"""The credentials file: the only place a device's secrets are ever shown, once.

CSV, one row per device that got new credentials in this upload: ``device_id``,
``mqtt_username``, ``mqtt_password``, ``coap_key``, ``claim_code``. A cell is empty where
nothing new was issued (no broker administration configured, a CoAP key kept from before,
a device already claimed). The values are URL-safe base64 and Crockford base 32, so no
cell needs quoting; it is written with the csv module all the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["BUNDLE_COLUMNS", "IssuedCredentials", "credentials_csv"]

BUNDLE_COLUMNS = ("device_id", "mqtt_username", "mqtt_password", "coap_key", "claim_code")


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    device_id: str
    mqtt_username: str = ""
    # repr=False: a stray log line or failure report never shows a secret
    mqtt_password: str = field(default="", repr=False)
    coap_key: str = field(default="", repr=False)
    claim_code: str = field(default="", repr=False)


def credentials_csv(issued: Iterable[IssuedCredentials]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BUNDLE_COLUMNS)
    writer.writerows(
        (c.device_id, c.mqtt_username, c.mqtt_password, c.coap_key, c.claim_code) for c in issued
    )
    return out.getvalue()
