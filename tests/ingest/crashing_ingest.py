"""``sealscope`` whose translate kills the whole process on a marked payload (tests only).

Stands in for what no real input does any more (a crash in C code, the OOM killer): the
process dies by a real SIGKILL while a message is in processing, so the test sees what a
restart makes of it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import ingest.processing
from composition.cli import main

MARKER = b"KILL-THE-INGEST"
_translate = ingest.processing.translate


def _killing_translate(topic: str, payload: bytes, *args: Any, **kwargs: Any) -> Any:
    if MARKER in payload:
        os.kill(os.getpid(), signal.SIGKILL)
    return _translate(topic, payload, *args, **kwargs)


ingest.processing.translate = _killing_translate  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main())
