"""An emulator of Microsoft Entra ID and Azure Resource Manager for development and tests.

One HTTPS port on loopback serves both the authority host (OpenID configuration, JWKS, the
client-credentials token endpoint, the browser sign-in) and ARM (`GET /subscriptions`, the Activity Log),
for a synthetic Contoso tenant derived from a seed. A small control API under `/_emulator/` serves
its settings, mints tokens and sets the page latency for other processes.
Nothing deployed imports this package.
"""

from .emulator import Emulator
from .events import JSON_NULL
from .tenant import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR

__all__ = ["GLOBAL_ADMINISTRATOR", "JSON_NULL", "SECURITY_ADMINISTRATOR", "Emulator"]
