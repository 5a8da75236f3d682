"""Errors of the usage API as RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

import json

from starlette.responses import Response

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound, Unavailable
from meterdesk.services.batches import error_detail, error_field

PROBLEM_TYPE = "urn:meterdesk:problem:"
TITLES = {
    400: ("malformed-request", "Malformed request"),
    401: ("unauthorized", "Missing, unknown or revoked API key"),
    403: ("forbidden", "The API key lacks the scope"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "The request body did not arrive in time"),
    409: ("conflict", "Conflict with what the ledger holds"),
    413: ("payload-too-large", "Request body too large"),
    422: ("invalid-field", "Invalid field"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Database unavailable"),
}


class Problem(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, field: str | None = None, headers: dict | None = None, extra: dict | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> Response:
        slug, title = TITLES.get(self.status, ("error", "Error"))
        document = {"type": PROBLEM_TYPE + slug, "title": title, "status": self.status, "detail": self.detail}
        if self.field is not None:
            document["field"] = self.field
        document.update(self.extra)
        return Response(
            json.dumps(document, ensure_ascii=False), status_code=self.status,
            media_type="application/problem+json", headers=self.headers,
        )


def from_error(error: MeterdeskError, *, not_found: int = 422) -> Problem:
    """A service's error as the API answers it. An unknown customer or unit named in a body is an invalid
    field (422); one named in the path is a missing resource (`not_found=404`)."""
    if isinstance(error, InvalidInput):
        return Problem(422, error.problem, field=error.field)
    if isinstance(error, NotFound):
        return Problem(not_found, error_detail(error), field=error_field(error))
    if isinstance(error, Conflict):
        return Problem(409, error_detail(error), field=error_field(error))
    if isinstance(error, Unavailable):
        return Problem(503, str(error), headers={"Retry-After": "1"})
    return Problem(422, str(error))
