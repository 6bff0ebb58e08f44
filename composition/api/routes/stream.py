"""The live stream of alert changes and fresh readings (server-sent events), in the
caller's scope; the hub and the frames are in ``composition/api/stream.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from composition.api.auth import PrincipalDep
from composition.api.params import MAX_ID
from composition.api.stream import EventStream, StreamHub

router = APIRouter(tags=["stream"])


@router.get(
    "/stream",
    response_class=EventStream,
    status_code=200,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`alert` events (id: the change's id; data: the alert as "
            "`GET /alerts/{id}` answers it) and `reading` events (data: device_id, t, "
            "values), with `: keepalive` comments between.",
        },
    },
)
async def stream(
    request: Request,
    principal: PrincipalDep,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_ID,
            description="resume after this alert change (EventSource sends it by itself)",
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="as Last-Event-ID, for clients that cannot set it"),
    ] = None,
    lifetime_s: Annotated[
        float | None,
        Query(gt=0, le=86_400, description="end the stream after this (at most the server's)"),
    ] = None,
) -> EventStream:
    principal.require("alerts:read")
    hub: StreamHub = request.app.state.stream_hub
    sub = hub.subscribe(principal.scope)
    resume = last_event_id if last_event_id is not None else after
    try:
        backlog = await hub.backlog(sub, resume) if resume is not None else []
    except BaseException:
        hub.unsubscribe(sub)
        raise
    limit = hub.tuning.lifetime_s
    return EventStream(
        hub, sub, backlog=backlog, lifetime_s=min(limit, lifetime_s) if lifetime_s else limit
    )
