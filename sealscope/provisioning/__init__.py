"""Fleet provisioning: a manufacturer's CSV or JSON file in, devices registered with their
MQTT and CoAP credentials and nameplate claim codes out (once, as a file); claiming moves
a device into an operator's site. The MQTT logins reach the broker in the background
(``BrokerApplier``), their progress in the upload's report."""

from sealscope.provisioning.broker_applier import BrokerApplier
from sealscope.provisioning.broker_queue import BrokerProgress, BrokerState, SqlBrokerQueue
from sealscope.provisioning.bundle import BUNDLE_COLUMNS, IssuedCredentials, credentials_csv
from sealscope.provisioning.claim_codes import ClaimCodes, new_claim_code, normalise_claim_code
from sealscope.provisioning.claim_limiter import ClaimLimiter
from sealscope.provisioning.provisioner import (
    CoapKeyIssuer,
    FileFormat,
    Mode,
    MqttIdentities,
    MqttLoginQueue,
    Provisioner,
    ProvisioningResult,
)
from sealscope.provisioning.rows import (
    COLUMNS,
    MAX_ROWS,
    FieldProblem,
    FleetRow,
    RowProblem,
    parse_csv,
    parse_json,
    validate_rows,
)
from sealscope.provisioning.sealing import PasswordSealer, load_sealing_key
from sealscope.provisioning.store import (
    ProvisionedDevice,
    ProvisioningStore,
    RowStatus,
    SqlProvisioningStore,
    Upload,
    UploadRow,
)

__all__ = [
    "BUNDLE_COLUMNS",
    "COLUMNS",
    "MAX_ROWS",
    "BrokerApplier",
    "BrokerProgress",
    "BrokerState",
    "ClaimCodes",
    "ClaimLimiter",
    "CoapKeyIssuer",
    "FieldProblem",
    "FileFormat",
    "FleetRow",
    "IssuedCredentials",
    "Mode",
    "MqttIdentities",
    "MqttLoginQueue",
    "PasswordSealer",
    "ProvisionedDevice",
    "Provisioner",
    "ProvisioningResult",
    "ProvisioningStore",
    "RowProblem",
    "RowStatus",
    "SqlBrokerQueue",
    "SqlProvisioningStore",
    "Upload",
    "UploadRow",
    "credentials_csv",
    "load_sealing_key",
    "new_claim_code",
    "normalise_claim_code",
    "parse_csv",
    "parse_json",
    "validate_rows",
]
