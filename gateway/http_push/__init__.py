"""NB-IoT platforms' HTTP push (Huawei IoTDA/OceanConnect, CTWing, OneNET) -> canonical v1.

``create_push_app`` builds the aiohttp app; see ``gateway/http_push/README.md`` for the
routes, the credentials, the property mapping and what was assumed about each platform.
"""

from .app import (
    INGRESS,
    DeviceResolver,
    PushIngress,
    PushStats,
    RedactingAccessLogger,
    create_push_app,
)
from .auth import PlatformCredentials, PushRefused, onenet_signature
from .notification import PLATFORMS, Platform
from .payload import SERVICES

__all__ = [
    "INGRESS",
    "PLATFORMS",
    "SERVICES",
    "DeviceResolver",
    "Platform",
    "PlatformCredentials",
    "PushIngress",
    "PushRefused",
    "PushStats",
    "RedactingAccessLogger",
    "create_push_app",
    "onenet_signature",
]
