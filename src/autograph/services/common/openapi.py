"""The OpenAPI documents tell the truth about errors: the real 422 shape and the statuses
every route can answer (401/403 by its security, 404 by its path parameters, 503 when a
dependency is down …), each with the ``{"detail": …}`` body the error handlers send."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}

# What the RequestValidationError handler sends (services/common/app.py): a one-line detail
# and the list of field errors.
VALIDATION_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {"type": "array", "title": "Errors", "items": {
            "type": "object",
            "properties": {"loc": {"type": "array", "items": {"type": "string"}},
                           "msg": {"type": "string"}, "type": {"type": "string"}},
            "required": ["loc", "msg", "type"],
        }},
    },
    "required": ["detail"],
}

_DESCRIPTIONS = {
    "400": "Malformed request (bad JSON, invalid value)",
    "401": "Missing, invalid or expired token",
    "403": "Not allowed for this principal (admin role required)",
    "404": "Not found (or not yours)",
    "409": "Conflict: taken, or another operation is running",
    "413": "Request body over the limit",
    "429": "Too many attempts: wait Retry-After seconds",
    "503": "A dependency (PostgreSQL, Redis, S3, a service) is unavailable",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    codes = ["503"]
    if operation.get("security"):
        codes.append("401")
        if path.startswith("/api/admin") or path == "/api/users":
            codes.append("403")
    if "{" in path:
        codes.append("404")
    if method in ("post", "put", "patch") or operation.get("parameters"):
        codes.append("400")
    if operation.get("requestBody"):
        codes.append("413")
    if path.startswith("/api/admin") and method in ("post", "delete"):
        codes.append("409")
    if path == "/api/auth/register":
        codes.append("409")
    if path == "/api/auth/login":
        codes.append("429")
    return codes


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses to every operation of ``schema`` (in place; idempotent) and
    replace FastAPI's 422 schema by the one actually sent. Returns ``schema``."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["HTTPValidationError"] = VALIDATION_SCHEMA
    schemas.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in _statuses(path, method, operation):
                responses.setdefault(code, {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ref}},
                })
    return schema
