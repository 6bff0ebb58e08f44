"""NB-IoT radio, battery and clock of the simulated devices, vectorised over messages.

* Coverage: each device has a mean RSRP (where it is installed: basements and valve pits
  are deep indoor) and fast fading per transmission. An uplink leg fails with a
  probability that rises steeply below ~-120 dBm; the acknowledgement (CoAP ACK, PUBACK)
  can be lost on the downlink leg the same way. A device retransmits until it sees an
  acknowledgement, up to ``max_attempts``: an uplink that arrived but whose ACK was lost
  arrives again — a duplicate the service has to collapse.
* Energy: each transmission costs charge by coverage enhancement level (more repetitions,
  longer transmit at ~220 mA in deep coverage), each wake-up a fixed overhead, each sample
  the sensor and MCU, and PSM sleep a few µA. Li-SOCl2 voltage stays flat and falls off a
  cliff near the end of capacity.
* Clock: start offset (a few seconds; for some devices hours to a year off: lost RTC,
  factory epoch, time zone bug) plus crystal drift in ppm, until a ``time_sync`` downlink.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "battery_voltage",
    "charge_per_attempt_mah",
    "sinr_db",
    "transmit",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_TX_CURRENT_A = 0.22
_WAKE_MAH = 0.02  # RRC connection set-up and release, sensor warm-up
SAMPLE_MAH = 0.0005
SLEEP_MA = 0.005


# what the modem reports on waking: its RSRP and SINR readings scatter around the link's
RSRP_READ_SD_DB = 3.0
SINR_READ_SD_DB = 2.0
RSRP_RANGE_DBM = (-140.0, -44.0)  # 3GPP's reporting range
SINR_RANGE_DB = (-20.0, 30.0)


def sinr_db(rsrp_dbm: F64) -> F64:
    # minimum of maximum rather than clip: numba compiles this for one value too
    return np.minimum(np.maximum(0.4 * (rsrp_dbm + 120.0), SINR_RANGE_DB[0]), SINR_RANGE_DB[1])


def _tx_seconds(rsrp_dbm: F64) -> F64:
    # CE0 / CE1 / CE2 by RSRP, with repetitions growing the transmit time
    return np.where(rsrp_dbm >= -105.0, 1.2, np.where(rsrp_dbm >= -115.0, 4.0, 16.0))


def charge_per_attempt_mah(rsrp_dbm: F64) -> F64:
    return _TX_CURRENT_A * _tx_seconds(rsrp_dbm) / 3.6


def wake_charge_mah(attempts: I64, rsrp_dbm: F64) -> F64:
    return _WAKE_MAH + attempts * charge_per_attempt_mah(rsrp_dbm)


FADING_SD_DB = 4.0  # fast fading around a device's mean RSRP, per transmission
ACK_LOSS_SHARE = 0.8  # the downlink leg loses an acknowledgement this much less often


def leg_loss(rsrp_dbm: F64) -> F64:
    """Chance that one leg of a transmission is lost at ``rsrp_dbm``: arrays, or a float
    (the compiled radio in ``kernel`` compiles this same function)."""
    return 0.003 + 0.997 / (1.0 + np.exp((rsrp_dbm + 125.0) / 4.5))


def transmit(
    rng: np.random.Generator, rsrp_dbm: F64, max_attempts: int, *, is_ideal: bool
) -> tuple[I64, I64, npt.NDArray[np.bool_]]:
    """Send one message per entry of ``rsrp_dbm`` (the sender's mean RSRP).

    Returns (copies that reached the network, transmissions made, acknowledgement seen).
    """
    m = rsrp_dbm.size
    if is_ideal or m == 0:
        ones = np.ones(m, dtype=np.int64)
        return ones, ones.copy(), np.ones(m, dtype=bool)
    fading = rsrp_dbm[:, None] + rng.normal(0.0, FADING_SD_DB, (m, max_attempts))
    loss = leg_loss(fading)
    up_ok = rng.random((m, max_attempts)) >= loss
    ack_ok = rng.random((m, max_attempts)) >= ACK_LOSS_SHARE * loss
    success = up_ok & ack_ok
    # numpy types any(axis=...) as "scalar or array"; over an axis of 2-D it is an array
    is_acked = cast(npt.NDArray[np.bool_], success.any(axis=1))
    attempts = np.where(is_acked, success.argmax(axis=1) + 1, max_attempts)
    made = np.arange(max_attempts)[None, :] < attempts[:, None]
    copies = (up_ok & made).sum(axis=1)
    return copies.astype(np.int64), attempts.astype(np.int64), is_acked


def battery_voltage(used_fraction: F64) -> F64:
    """Open-circuit voltage of a Li-SOCl2 cell by used capacity; non-increasing."""
    f = np.minimum(np.maximum(used_fraction, 0.0), 1.2)  # clip, as numba compiles it
    return np.maximum(3.66 - 0.1 * f - 25.0 * np.maximum(f - 0.9, 0.0) ** 2, 2.0)
