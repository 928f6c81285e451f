"""An emulator of Microsoft Entra ID and Azure Resource Manager for development and tests.

One HTTPS port on loopback serves both the authority host (OpenID configuration, JWKS, the
client-credentials token endpoint) and ARM (`GET /subscriptions`, the Activity Log), for a synthetic
Contoso tenant derived from a seed. A control API under `/_emulator/` lets other processes steer it.
Nothing deployed imports this package.
"""

from .emulator import DEFAULT_AUDIENCE, FAULT_KINDS, Emulator, Fault, RequestRecord
from .events import JSON_NULL
from .tenant import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR, Subscription
from .tokens import TOKEN_KINDS

__all__ = [
    "DEFAULT_AUDIENCE",
    "FAULT_KINDS",
    "GLOBAL_ADMINISTRATOR",
    "JSON_NULL",
    "SECURITY_ADMINISTRATOR",
    "TOKEN_KINDS",
    "Emulator",
    "Fault",
    "RequestRecord",
    "Subscription",
]
