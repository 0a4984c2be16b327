"""One root error for what goes wrong while acting on a site."""

from __future__ import annotations

from inventory.errors import InventoryError


class PlaybookError(InventoryError):
    """A playbook could not do what it was asked; the site was left as safe as it could be."""


class BackupError(PlaybookError):
    """No verified backup: nothing may change on the site."""


class LockedError(PlaybookError):
    """Another run holds the site's lock on its host."""


class RestoreError(PlaybookError):
    """Putting a backup back failed."""
