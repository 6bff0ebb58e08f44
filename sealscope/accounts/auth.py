"""Turning credentials into a ``Principal``: API keys, browser sessions, sign-in and -out.

Every refusal is ``Unauthenticated`` with the same reason whatever went wrong (unknown key
id, wrong secret, expired, revoked), so an answer never tells an attacker which part was
right. Nothing here logs a secret; log lines name key ids and usernames only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from sealscope.accounts import passwords, tokens
from sealscope.accounts.models import ApiKey, Organisation, Session
from sealscope.accounts.scope import Principal, Scope
from sealscope.accounts.store import AccountStore
from sealscope.accounts.throttle import SignInThrottle
from sealscope.errors import NotFound, Unauthenticated

__all__ = ["Authenticator"]

log = logging.getLogger(__name__)

_BAD_KEY: Final = "invalid, expired or revoked API key"
_BAD_SESSION: Final = "not signed in, or the session expired"
_BAD_SIGN_IN: Final = "wrong username or password"
# last_used_at is for people reading a key list: minute resolution spares a write per request
_TOUCH_EVERY_S: Final = 60.0


class Authenticator:
    def __init__(
        self,
        store: AccountStore,
        *,
        session_ttl_s: float = 12 * 3600,
        throttle: SignInThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.session_ttl_s = session_ttl_s
        self._throttle = throttle or SignInThrottle()
        self._clock = clock

    def principal_of_org(
        self,
        org: Organisation,
        *,
        name: str,
        via: str,
        user_id: int | None = None,
        key_id: str | None = None,
    ) -> Principal:
        sites = self.store.list_sites(operator_id=org.id) if org.kind == "operator" else ()
        return Principal(
            org_id=org.id,
            org_kind=org.kind,
            name=name,
            via=via,  # type: ignore[arg-type]
            scope=Scope.for_org(org, sites),
            user_id=user_id,
            key_id=key_id,
        )

    # -- API keys ------------------------------------------------------------------------

    def create_key(
        self, org_id: int, *, name: str, expires_at: float | None = None
    ) -> tuple[str, ApiKey]:
        """-> (the key, shown to its owner once and never stored; its stored record)."""
        full, key_id, secret_sha256 = tokens.new_api_key()
        record = self.store.add_key(
            ApiKey(
                key_id=key_id,
                org_id=org_id,
                name=name,
                secret_sha256=secret_sha256,
                created_at=self._clock(),
                expires_at=expires_at,
            )
        )
        log.info("API key %s (%r) created for organisation %d", key_id, name, org_id)
        return full, record

    def principal_for_key(self, token: str) -> Principal:
        parsed = tokens.parse_api_key(token)
        if parsed is None:
            raise Unauthenticated(_BAD_KEY)
        key_id, secret = parsed
        try:
            key = self.store.get_key(key_id)
        except NotFound:
            tokens.same_digest(secret, "0" * 64)  # same work as a known id
            raise Unauthenticated(_BAD_KEY) from None
        now = self._clock()
        if not tokens.same_digest(secret, key.secret_sha256) or not key.is_usable(now):
            raise Unauthenticated(_BAD_KEY)
        if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY_S:
            self.store.touch_key(key_id, t=now)
        org = self.store.get_org(key.org_id)
        return self.principal_of_org(org, name=key.name, via="key", key_id=key_id)

    # -- people ----------------------------------------------------------------------------

    def sign_in(self, username: str, password: str, *, source: str) -> tuple[str, Principal]:
        """-> (the session token for the cookie, who signed in). Raises SignInThrottled
        past the failure limits and Unauthenticated for a wrong username or password."""
        self._throttle.check(username=username, source=source)
        user = self.store.find_user(username)
        ok = (
            passwords.verify_password(user.password_hash, password)
            if user is not None
            else passwords.verify_nobody(password)
        )
        if user is None or not ok or user.disabled:
            self._throttle.failed(username=username, source=source)
            log.warning("failed sign-in for %r from %s", username, source)
            raise Unauthenticated(_BAD_SIGN_IN)
        self._throttle.succeeded(username=username)
        token, token_sha256 = tokens.new_session_token()
        now = self._clock()
        self.store.delete_expired_sessions(now=now)
        self.store.add_session(
            Session(
                token_sha256=token_sha256,
                user_id=user.id,
                created_at=now,
                expires_at=now + self.session_ttl_s,
            )
        )
        log.info("%r signed in from %s", username, source)
        return token, self._principal_of_user(user.id)

    def principal_for_session(self, token: str) -> Principal:
        session = self.store.get_session(tokens.digest(token))
        if session is None or session.expires_at <= self._clock():
            raise Unauthenticated(_BAD_SESSION)
        return self._principal_of_user(session.user_id)

    def sign_out(self, token: str) -> None:
        self.store.delete_session(tokens.digest(token))

    def _principal_of_user(self, user_id: int) -> Principal:
        user = self.store.get_user(user_id)
        if user.disabled:
            raise Unauthenticated(_BAD_SESSION)
        org = self.store.get_org(user.org_id)
        return self.principal_of_org(org, name=user.username, via="session", user_id=user.id)
