"""Fleet provisioning: a manufacturer's CSV or JSON file in, devices registered with their
MQTT and CoAP credentials and nameplate claim codes out (once, as a file); claiming moves
a device into an operator's site."""

from sealscope.provisioning.bundle import BUNDLE_COLUMNS, IssuedCredentials, credentials_csv
from sealscope.provisioning.claim_codes import ClaimCodes, new_claim_code, normalise_claim_code
from sealscope.provisioning.claim_limiter import ClaimLimiter
from sealscope.provisioning.provisioner import (
    CoapKeyIssuer,
    FileFormat,
    Mode,
    MqttIdentities,
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
    "ClaimCodes",
    "ClaimLimiter",
    "CoapKeyIssuer",
    "FieldProblem",
    "FileFormat",
    "FleetRow",
    "IssuedCredentials",
    "Mode",
    "MqttIdentities",
    "ProvisionedDevice",
    "Provisioner",
    "ProvisioningResult",
    "ProvisioningStore",
    "RowProblem",
    "RowStatus",
    "SqlProvisioningStore",
    "Upload",
    "UploadRow",
    "credentials_csv",
    "new_claim_code",
    "normalise_claim_code",
    "parse_csv",
    "parse_json",
    "validate_rows",
]
