"""Domain errors. They carry what the HTTP edge needs to answer; nothing here knows about HTTP."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SettingsError(ConnectorError):
    code = "ConfigurationError"

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidInput(ConnectorError):
    """Bad input from the caller; names the field."""

    code = "InvalidInput"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unauthenticated(ConnectorError):
    code = "Unauthorized"


class Forbidden(ConnectorError):
    code = "Forbidden"


class NotFound(ConnectorError):
    code = "NotFound"


class Conflict(ConnectorError):
    code = "Conflict"


class ServiceUnavailable(ConnectorError):
    """A dependency is down for now; the caller may retry."""

    code = "ServiceUnavailable"
