"""sealscope's exception hierarchy.

Third-party errors are translated into these at the adapter that catches them
(``raise ... from exc``), so callers never depend on paho, influxdb-client or
sqlite3 exception types::

    SealscopeError
    ├── ConfigError                   settings that cannot work (placeholder secret, bad URL)
    ├── MessageRejected               one message is unusable; it goes to the dead-letter store
    │   ├── MalformedMessage          not JSON, wrong type, missing or unknown field
    │   │   ├── PayloadTooLarge       over the byte bound, refused before parsing
    │   │   └── BadSenml              an NB-IoT SenML pack the gateway cannot use
    │   ├── UnknownSchemaVersion      ``v`` is not a version this build speaks
    │   ├── TopicRejected             topic outside the v1 scheme or device id invalid
    │   ├── UnknownDevice             the device is not in the registry
    │   └── PoisonMessage             processing it raised or crashed the process
    ├── StoreError                    the telemetry store failed
    │   ├── StoreUnavailable          transient: retry later (``retry_after_s`` may say when)
    │   └── PointsRejected            permanent: the store refused the data itself
    ├── SpoolFull                     the on-disk spool reached its byte bound
    ├── NotFound                      a registry/alert lookup found nothing
    ├── Conflict                      a create collided with an existing record
    ├── FleetFileRejected             a provisioning file unusable as a whole (row faults are data)
    ├── PushRefused                   a platform push that did not prove its sender (``status``)
    ├── PublishError                  the simulator's MQTT publishing failed (``acked`` so far)
    │   ├── ConnectFailed             the broker refused or could not be reached
    │   └── AckTimeout                publishes still unacknowledged after the timeout
    ├── ServerFailed                  a managed child service did not start or died (``log_tail``)
    ├── DeliveryFailed                one send of an alert delivery failed (retried later)
    ├── WebhookVerificationError      a webhook's signature, id or timestamp does not hold
    ├── AccessDenied                  the caller may not do this (accounts, scopes)
    │   ├── Unauthenticated           no credentials, or wrong/expired/revoked ones (HTTP 401)
    │   ├── Forbidden                 the caller's role may not do this at all (HTTP 403)
    │   └── SignInThrottled           too many failed sign-ins (HTTP 429, ``retry_after_s``)
    ├── BrokerAdminError              the broker's dynamic-security API refused a command
    │   └── BrokerAdminUnavailable    transient: no connection or no answer in time
    └── BrokerUnavailable             the API's broker link is down or did not acknowledge a command

An id outside the caller's scope raises ``NotFound``, never ``Forbidden``: it must answer
exactly as a missing id does.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AckTimeout",
    "BadSenml",
    "BrokerAdminError",
    "BrokerAdminUnavailable",
    "BrokerUnavailable",
    "ConfigError",
    "Conflict",
    "ConnectFailed",
    "DeliveryFailed",
    "FleetFileRejected",
    "Forbidden",
    "MalformedMessage",
    "MessageRejected",
    "NotFound",
    "PayloadTooLarge",
    "PointsRejected",
    "PoisonMessage",
    "PublishError",
    "PushRefused",
    "SealscopeError",
    "ServerFailed",
    "SignInThrottled",
    "SpoolFull",
    "StoreError",
    "StoreUnavailable",
    "TopicRejected",
    "Unauthenticated",
    "UnknownDevice",
    "UnknownSchemaVersion",
    "WebhookVerificationError",
]


class SealscopeError(Exception):
    """Base of every error sealscope raises on purpose."""


class ConfigError(SealscopeError):
    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class MessageRejected(SealscopeError):
    """A message that can never be stored as it is; ``reason`` is what the dead-letter keeps."""

    code = "rejected"

    def __init__(self, reason: str, *, device_id: str | None = None, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.device_id = device_id
        self.field = field


class MalformedMessage(MessageRejected):
    code = "malformed"


class PayloadTooLarge(MalformedMessage):
    code = "too_large"

    def __init__(self, size_bytes: int, max_bytes: int, *, device_id: str | None = None) -> None:
        super().__init__(f"payload {size_bytes} bytes > {max_bytes}", device_id=device_id)
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class UnknownSchemaVersion(MessageRejected):
    code = "unknown_version"

    def __init__(self, version: object, *, device_id: str | None = None) -> None:
        super().__init__(
            f"unknown schema version v={version!r}; this build speaks v=1",
            device_id=device_id,
            field="v",
        )
        self.version = version


class TopicRejected(MessageRejected):
    code = "bad_topic"


class UnknownDevice(MessageRejected):
    code = "unknown_device"

    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is not registered", device_id=device_id)


class PoisonMessage(MessageRejected):
    """Not a fault of the message's form: handling it raised, or killed the process."""

    code = "poison"


class StoreError(SealscopeError):
    pass


class StoreUnavailable(StoreError):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PointsRejected(StoreError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SpoolFull(SealscopeError):
    def __init__(self, used_bytes: int, max_bytes: int) -> None:
        super().__init__(f"spool holds {used_bytes} of {max_bytes} bytes")
        self.used_bytes = used_bytes
        self.max_bytes = max_bytes


class NotFound(SealscopeError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(SealscopeError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} already exists")
        self.kind = kind
        self.key = key


class FleetFileRejected(SealscopeError):
    """A fleet file that cannot be read as rows at all (encoding, header, shape, size)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadSenml(MalformedMessage):
    """The pack cannot be used; ``reason`` names the record (``records[i]``) and the fault."""


class PushRefused(SealscopeError):
    """A push that did not prove it came from the platform (not a message problem)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PublishError(SealscopeError):
    def __init__(self, message: str, *, acked: int = 0) -> None:
        super().__init__(message)
        self.acked = acked


class ConnectFailed(PublishError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"MQTT connect to {host}:{port} failed: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class AckTimeout(PublishError):
    def __init__(self, *, acked: int, pending: int, timeout_s: float) -> None:
        super().__init__(
            f"{pending} publishes unacknowledged after {timeout_s:g} s ({acked} acknowledged)",
            acked=acked,
        )
        self.pending = pending
        self.timeout_s = timeout_s


class ServerFailed(SealscopeError):
    """A child service did not start or died; ``log_tail`` holds the end of its log."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- log tail ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


class AccessDenied(SealscopeError):
    """Base of the refusals the API maps to 401/403/429; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthenticated(AccessDenied):
    pass


class Forbidden(AccessDenied):
    pass


class SignInThrottled(AccessDenied):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed sign-ins; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class BrokerAdminError(SealscopeError):
    """A dynamic-security command failed; ``command``/``target`` say which, ``error`` why."""

    def __init__(
        self, error: str, *, command: str | None = None, target: str | None = None
    ) -> None:
        where = f"{command} {target!r}" if target else command
        super().__init__(f"{where}: {error}" if where else error)
        self.error = error
        self.command = command
        self.target = target


class BrokerAdminUnavailable(BrokerAdminError):
    """No connection to the broker, or no answer in time; commands may have been applied."""


class BrokerUnavailable(SealscopeError):
    """The broker is not reachable or did not acknowledge in time (the API's commands)."""


class DeliveryFailed(SealscopeError):
    """``status_code``: HTTP status, SMTP reply or MQTT reason code when the peer answered."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class WebhookVerificationError(SealscopeError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
