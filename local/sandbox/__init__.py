"""A local Htouhui: the peer of PROTOCOL.md, with controls for tests under `/_sandbox/`.

Importable as `sandbox` when the `local/` folder is on sys.path. It speaks through the layer's
`htouhui.protocol` (one protocol implementation); when the layer is not on the path yet (a plain
`python -m sandbox` from the repository root), it is added from `layers/common`.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # pragma: no cover - depends on how the interpreter was started
    import htouhui  # noqa: F401
except ImportError:  # pragma: no cover
    _LAYER = Path(__file__).resolve().parents[2] / "layers" / "common"
    if _LAYER.is_dir():
        sys.path.insert(0, str(_LAYER))

DEFAULT_PARTNER_ID = "P2026000001"
DEFAULT_PORT = 3100
DEFAULT_HOST = "127.0.0.1"

__all__ = ["DEFAULT_HOST", "DEFAULT_PARTNER_ID", "DEFAULT_PORT"]
