"""Alert delivery: subscriptions, the transactional outbox, the dispatcher and its channels.

Flow: the alert store's write path calls ``Outbox.enqueue(txn, change)`` inside its own
transaction -> one pending delivery per matching subscription -> a ``Dispatcher`` claims
due deliveries with a lease, sends them on their ``Channel`` (webhook, MQTT, email) and
records each attempt in the subscription's delivery log -> retried with backoff and full
jitter, ``dead`` after the budget, ``redeliver`` on request.
"""

from sealscope.delivery.backoff import RetryPolicy
from sealscope.delivery.channel import Channel
from sealscope.delivery.dispatcher import Dispatcher
from sealscope.delivery.email import EmailChannel
from sealscope.delivery.memory_outbox import MemoryOutbox
from sealscope.delivery.mqtt_channel import MqttChannel
from sealscope.delivery.notification import Notification
from sealscope.delivery.outbox import Attempt, Delivery, Outbox
from sealscope.delivery.signature import new_secret, sign, verify
from sealscope.delivery.sql_outbox import SqlOutbox
from sealscope.delivery.subscription import Subscription
from sealscope.delivery.webhook import WebhookChannel

__all__ = [
    "Attempt",
    "Channel",
    "Delivery",
    "Dispatcher",
    "EmailChannel",
    "MemoryOutbox",
    "MqttChannel",
    "Notification",
    "Outbox",
    "RetryPolicy",
    "SqlOutbox",
    "Subscription",
    "WebhookChannel",
    "new_secret",
    "sign",
    "verify",
]
