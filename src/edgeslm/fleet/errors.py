"""The control plane's refusals. Each maps to one HTTP status (api.py) and to exit code 2 in the CLI."""

from __future__ import annotations

from edgeslm.errors import EdgeslmError


class FleetError(EdgeslmError):
    """Base class of the control plane's errors; `status` is the HTTP status the API answers with."""

    status = 400


class NotFound(FleetError):
    status = 404


class Conflict(FleetError):
    """The request contradicts what the registry holds (a name taken, a version published with other bytes)."""

    status = 409


class Unauthorized(FleetError):
    """No credentials, or ones the registry does not know. The message never says which part was wrong."""

    status = 401


class Forbidden(FleetError):
    """Valid credentials that do not allow this (a device reading another device's record)."""

    status = 403


class StoreError(FleetError):
    """The bundle store cannot take or give a bundle (full disk, unreadable folder)."""

    status = 507


class DatabaseError(FleetError):
    """The registry's database cannot be opened, is from a newer edgeslm, or refused a statement."""

    status = 503
