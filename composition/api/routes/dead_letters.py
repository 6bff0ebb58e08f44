"""Dead letters: what ingest could not use, with the reason, newest first (admin only:
they hold raw payloads of every tenant)."""

from __future__ import annotations

from fastapi import APIRouter

from composition.api.auth import PrincipalDep
from composition.api.deps import DeadLettersDep
from composition.api.models import DeadLetterPublic, DeadLettersPublic
from composition.api.params import Limit, Offset

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@router.get("", response_model=DeadLettersPublic)
def list_dead_letters(
    dead_letters: DeadLettersDep,
    principal: PrincipalDep,
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DeadLettersPublic:
    principal.require("dead_letters:read")
    letters = dead_letters.list(device_id=device_id, limit=limit, offset=offset)
    return DeadLettersPublic(
        data=[DeadLetterPublic.of(d) for d in letters],
        total=dead_letters.count(),
        limit=limit,
        offset=offset,
    )
