"""The one error vocabulary: the application error hierarchy, the JSON body
every error is rendered as, ``{"error": {"code": ..., "message": ..., "fields": ...}}``,
and the one mapping from any exception to the 4xx a caller gets
(:func:`application_error`). The DRF handler and the platform endpoints under
/hooks/ (hooks.inbound.common) both render through it; anything it does not
map is a real fault: a logged 500.

(M8Com's 401/403 bodies, ``{"message": ...}``, are fixed by its contract and
are the only platform answers outside this vocabulary.)
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(
        self, message: str, *, fields: dict | None = None, code: str | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        # Response headers that belong to the error (405's Allow).
        self.headers = headers or {}
        if code:
            self.code = code

    def body(self) -> dict:
        return error_body(self.code, self.message, self.fields)


class ValidationFailed(ApplicationError):
    status_code = 400
    code = "invalid"


class InvalidJson(ApplicationError):
    """The body does not parse as JSON (or exceeds the parser's nesting limit)."""

    status_code = 400
    code = "invalid_json"


class NotAuthenticated(ApplicationError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(ApplicationError):
    status_code = 403
    code = "forbidden"


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(ApplicationError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, allowed: str):
        super().__init__(f"Use {allowed}.", headers={"Allow": allowed})


class TooLarge(ApplicationError):
    status_code = 413
    code = "too_large"


class UnsupportedMediaType(ApplicationError):
    status_code = 415
    code = "unsupported_media_type"


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def application_error(exc: BaseException) -> ApplicationError | None:
    """The 4xx error a caller gets for *exc*, or None when it is a real fault (a 500).

    Django raises some request errors while a view reads the request (the query
    string with more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters, a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE): they are the caller's, never a 500.
    """
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, TooManyFieldsSent):
        return ValidationFailed(
            "The request has too many query or form parameters (at most 1,000).", code="too_many_parameters"
        )
    if isinstance(exc, RequestDataTooBig):
        return TooLarge("The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return ValidationFailed("The request was refused as malformed.", code="bad_request")
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, PermissionDenied):
        return Forbidden("Permission denied.")
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return ValidationFailed("The request has invalid fields.", fields=fields)
    return None


def _flatten(detail) -> dict:
    if isinstance(detail, dict):
        return {
            key: [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {"non_field_errors": [str(item) for item in (detail if isinstance(detail, list) else [detail])]}


def exception_handler(exc, context):
    error = application_error(exc)
    if error is not None:
        return Response(error.body(), status=error.status_code, headers=error.headers or None)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(
            error_body("invalid", "The request has invalid fields.", _flatten(exc.detail)),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return Response(error_body(str(code), str(exc.detail)), status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__ if context else "view")
    return Response(
        error_body("server_error", "An unexpected error occurred."), status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )
