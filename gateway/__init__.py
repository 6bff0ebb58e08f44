"""NB-IoT ingress: CoAP/UDP (SenML CBOR/JSON) and platform HTTP push -> canonical MQTT."""

from gateway.coap import CoapServer, CoapStats, UplinkResource, uplink_dedup_key
from gateway.downlink import (
    Command,
    CommandRequest,
    CommandState,
    CommandSubscriber,
    DownlinkQueue,
    command_status_topic,
    decode_command_request,
)
from gateway.forwarder import Forwarder, ForwarderStats, OutboundMessage
from gateway.keys import DeviceKeyInfo, DeviceKeys, SqliteDeviceKeys, load_pepper
from gateway.senml import (
    CONTENT_FORMAT_SENML_CBOR,
    CONTENT_FORMAT_SENML_JSON,
    BadSenml,
    Record,
    decode,
    decode_cbor,
    decode_json,
    encode_cbor,
    encode_json,
)
from gateway.service import Gateway, HttpAppFactory, run_gateway
from gateway.translate import READING_UNITS, CommandReport, Uplink, translate
from gateway.uplink import CanonicalMessage, UplinkSink

__all__ = [
    "CONTENT_FORMAT_SENML_CBOR",
    "CONTENT_FORMAT_SENML_JSON",
    "READING_UNITS",
    "BadSenml",
    "CanonicalMessage",
    "CoapServer",
    "CoapStats",
    "Command",
    "CommandReport",
    "CommandRequest",
    "CommandState",
    "CommandSubscriber",
    "DeviceKeyInfo",
    "DeviceKeys",
    "DownlinkQueue",
    "Forwarder",
    "ForwarderStats",
    "Gateway",
    "HttpAppFactory",
    "OutboundMessage",
    "Record",
    "SqliteDeviceKeys",
    "Uplink",
    "UplinkResource",
    "UplinkSink",
    "command_status_topic",
    "decode",
    "decode_cbor",
    "decode_command_request",
    "decode_json",
    "encode_cbor",
    "encode_json",
    "load_pepper",
    "run_gateway",
    "translate",
    "uplink_dedup_key",
]
