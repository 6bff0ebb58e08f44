"""Schemathesis over the app's own OpenAPI, against a real uvicorn over seeded SQLite files.

Every operation gets schema-valid and schema-violating requests; no answer may be a 5xx, and
every answer must match the status codes, content type and body schema the OpenAPI
declares. CI runs a short version (``FUZZ_EXAMPLES`` per operation and mode);
``SEALSCOPE_FUZZ_EXAMPLES=500`` runs the deep one.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from composition.api import create_app
from composition.api.params import MAX_ID
from sealscope.config import Settings

FUZZ_EXAMPLES = int(os.environ.get("SEALSCOPE_FUZZ_EXAMPLES", "20"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


# The OpenAPI needs no store, so it is read from an app that never starts; the requests go
# to the live one. (schemathesis' lazy from_fixture does not run under pytest 9.)
schema = schemathesis.openapi.from_dict(
    create_app(Settings(data_dir=Path(tempfile.gettempdir()) / "sealscope-never-opened")).openapi()
)


# the test sends each role's own credentials; generated (and deliberately malformed) ones
# would be overwritten, and a "negative" request would then be a valid one
schema.config.generation.update(with_security_parameters=False)


# status -> answers, over the whole module; printed at the end (run with -s to see it)
ANSWERS: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_answers() -> Iterator[None]:
    yield
    print(f"\nschemathesis: {ANSWERS.total()} requests, by status {dict(sorted(ANSWERS.items()))}")


def _end_stream_soon(case: schemathesis.Case) -> None:
    """The live stream runs until its lifetime: a valid (or absent) lifetime_s becomes a
    short one, so the call returns; an invalid one is left for the API to refuse."""
    query = dict(case.query or {})
    try:
        lifetime = float(query.get("lifetime_s", 1.0))
    except (TypeError, ValueError):
        return
    if 0 < lifetime <= 86_400:
        query["lifetime_s"] = 0.05
        case.query = query


@pytest.mark.parametrize(
    "role", ["anonymous", "operator", "manufacturer", "monitoring_point", "admin"]
)
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_no_server_error_and_answers_match_schema(
    case: schemathesis.Case, live_api: Any, role: str
) -> None:
    # random ids almost never exist: about half the valid ones are swapped for seeded rows
    # (chosen by the generated value itself, so a failing case still replays exactly)
    params = case.path_parameters or {}
    device_id = params.get("device_id")
    if isinstance(device_id, str) and len(device_id) % 2 == 0:
        params["device_id"] = live_api.device_ids[len(device_id) % len(live_api.device_ids)]
    alert_id = params.get("alert_id")
    if isinstance(alert_id, int) and 1 <= alert_id <= MAX_ID and alert_id % 2 == 0:
        params["alert_id"] = live_api.alert_ids[alert_id % len(live_api.alert_ids)]
    if case.path_parameters and "org_id" in case.path_parameters and alert_id is None:
        case.path_parameters["org_id"] = live_api.operator_id
    if case.path == "/api/v1/stream":
        _end_stream_soon(case)
    key = live_api.keys[role]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = case.call_and_validate(base_url=live_api.url, checks=CHECKS, headers=headers)
    ANSWERS[response.status_code] += 1
