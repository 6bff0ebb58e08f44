"""Email channel: one message per delivery over SMTP (stdlib smtplib, in a thread).

The Message-ID is derived from the delivery id, so every attempt of one delivery is the
same message to mail systems, and the id is in a header and the JSON body for people's
tools. Subject fields come from detector output; control characters are stripped so they
cannot inject headers.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Self

from sealscope.delivery.outbox import Delivery
from sealscope.delivery.subscription import ChannelKind
from sealscope.errors import DeliveryFailed

__all__ = ["EmailChannel"]


def _printable(text: object, max_chars: int = 80) -> str:
    return "".join(c if c.isprintable() else " " for c in str(text))[:max_chars]


class EmailChannel:
    kind: ChannelKind = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.timeout_s = timeout_s
        self._host, self._port = host, port
        self._sender = sender
        self._username, self._password = username, password
        self._starttls = starttls

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def message(self, delivery: Delivery) -> EmailMessage:
        envelope = json.loads(delivery.body)
        data = envelope.get("data", {})
        what = data.get("device_id") or f"{data.get('dimension')} {data.get('group')}"
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = delivery.target
        msg["Subject"] = _printable(
            f"[sealscope] {data.get('category')} sev {data.get('severity')}: "
            f"{what} {data.get('cause')} ({envelope.get('type')})",
            max_chars=200,
        )
        msg["Message-ID"] = f"<{delivery.id}@sealscope>"
        msg["X-Sealscope-Delivery-Id"] = delivery.id
        msg.set_content(
            f"{_printable(data.get('summary'), 1000)}\n\n"
            + json.dumps(envelope, indent=2, sort_keys=True)
        )
        return msg

    def _send_blocking(self, msg: EmailMessage) -> int:
        with smtplib.SMTP(self._host, self._port, timeout=self.timeout_s) as smtp:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            smtp.send_message(msg)  # raises unless the server took it (250)
            return 250

    async def send(self, delivery: Delivery) -> int | None:
        msg = self.message(delivery)
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._send_blocking, msg), self.timeout_s
            )
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"SMTP {exc.smtp_code}", status_code=exc.smtp_code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed("SMTP refused the recipient", status_code=codes[0]) from exc
        except (smtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}") from exc
