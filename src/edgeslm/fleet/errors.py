"""The control plane's refusals. Each class carries the one HTTP status (and the error type in the JSON body) that
api.py answers with; the CLI turns any of them into exit code 2."""

from __future__ import annotations

from edgeslm.errors import EdgeslmError


class FleetError(EdgeslmError):
    """Base class of the control plane's errors: a request the caller must change."""

    status, kind = 400, "invalid_request_error"


class NotFound(FleetError):
    status, kind = 404, "not_found"


class Conflict(FleetError):
    """The request contradicts what the registry holds (a name taken, a version published with other bytes)."""

    status, kind = 409, "conflict"


class Unauthorized(FleetError):
    """No credentials, or ones the registry does not know. The message never says which part was wrong."""

    status, kind = 401, "unauthorized"


class Forbidden(FleetError):
    """Valid credentials that do not allow this (a device reading another device's record)."""

    status, kind = 403, "forbidden"


class StoreError(FleetError):
    """The bundle store cannot take or give a bundle (full disk, unreadable folder)."""

    status, kind = 507, "insufficient_storage"


class DatabaseError(FleetError):
    """The registry's database cannot be opened, is from a newer edgeslm, or refused a statement."""

    status, kind = 503, "unavailable"
