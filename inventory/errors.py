"""One root error for everything that goes wrong while reading or reaching a site."""

from __future__ import annotations


class InventoryError(Exception):
    """Root of every error raised by the inventory package."""


class HostileValueError(InventoryError):
    """A value (from config or from a site) that must never reach a shell."""


class TransportError(InventoryError):
    """The site's host could not be reached or the connection broke."""


class HostKeyError(TransportError):
    """The host key is unknown or changed: the connection was refused."""


class RemoteCommandError(InventoryError):
    """A remote command failed; carries everything a ticket needs to show."""

    def __init__(self, message: str, *, command: str, exit_code: int, stdout: str, stderr: str):
        super().__init__(message)
        self.command = command
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class WPCLIFatalError(RemoteCommandError):
    """WordPress, a plugin or a theme died with a PHP fatal error while WP-CLI ran (exit 1 or 255)."""


class RestError(InventoryError):
    """The REST API answered with an error, or not with JSON."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RestUnreached(RestError):
    """No answer came back (a timeout, a refused or broken connection): nothing the site said."""
