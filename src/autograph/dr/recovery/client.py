"""A small synchronous client of the application API: recovery's verify step and the drill."""

from __future__ import annotations

from typing import Any

import httpx

from autograph.config import Settings
from autograph.errors import OperationFailed


class ApiClient:
    """A small synchronous client of the application API (thread-safe)."""

    def __init__(self, settings: Settings, *, via_gateway: bool | None = None,
                 timeout: float = 15.0) -> None:
        if via_gateway is None:
            via_gateway = settings.services is None or "gateway" in settings.services
        self.auth_url = settings.service_url("gateway" if via_gateway else "auth")
        self.diagram_url = settings.service_url("gateway" if via_gateway else "diagram")
        self.http = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=32))

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _call(self, method: str, url: str, token: str | None = None, *, ok: tuple[int, ...]
              = (200, 201), **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise OperationFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code not in ok:
            raise OperationFailed(f"{method} {url} answered {response.status_code}: "
                                  f"{response.text[:200]}")
        return response.json() if response.content else None

    def register(self, email: str, password: str) -> dict[str, Any]:
        """POST /api/auth/register."""
        return dict(self._call("POST", f"{self.auth_url}/api/auth/register",
                               json={"email": email, "password": password}))

    def login(self, email: str, password: str) -> str:
        """POST /api/auth/login; returns the access token."""
        body = self._call("POST", f"{self.auth_url}/api/auth/login",
                          json={"email": email, "password": password})
        return str(body["access_token"])

    def me(self, token: str) -> dict[str, Any]:
        """GET /api/users/me."""
        return dict(self._call("GET", f"{self.auth_url}/api/users/me", token))

    def create_diagram(self, token: str, name: str,
                       canvas: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/diagrams."""
        body: dict[str, Any] = {"name": name}
        if canvas is not None:
            body["canvas"] = canvas
        return dict(self._call("POST", f"{self.diagram_url}/api/diagrams", token, json=body))

    def update_diagram(self, token: str, diagram_id: str,
                       canvas: dict[str, Any]) -> dict[str, Any]:
        """PUT /api/diagrams/{id} with a new canvas (a new version)."""
        return dict(self._call("PUT", f"{self.diagram_url}/api/diagrams/{diagram_id}", token,
                               json={"canvas": canvas}))

    def get_diagram(self, token: str, diagram_id: str) -> dict[str, Any]:
        """GET /api/diagrams/{id} (with its canvas)."""
        return dict(self._call("GET", f"{self.diagram_url}/api/diagrams/{diagram_id}", token))

    def delete_diagram(self, token: str, diagram_id: str) -> None:
        """DELETE /api/diagrams/{id}."""
        self._call("DELETE", f"{self.diagram_url}/api/diagrams/{diagram_id}", token,
                   ok=(200, 204))

    def versions(self, token: str, diagram_id: str) -> list[dict[str, Any]]:
        """GET /api/diagrams/{id}/versions."""
        body = self._call("GET", f"{self.diagram_url}/api/diagrams/{diagram_id}/versions",
                          token)
        return list(body["versions"])

    def list_diagrams(self, token: str, page: int = 200) -> list[dict[str, Any]]:
        """Every diagram of the caller (all pages)."""
        found: list[dict[str, Any]] = []
        while True:
            body = self._call("GET", f"{self.diagram_url}/api/diagrams", token,
                              params={"limit": page, "offset": len(found)})
            batch = list(body["diagrams"])
            found += batch
            if len(batch) < page or len(found) >= int(body.get("count", 0)):
                return found

    def upload(self, token: str, diagram_id: str, filename: str, data: bytes,
               content_type: str) -> dict[str, Any]:
        """POST /api/diagrams/{id}/uploads (multipart ``file``)."""
        return dict(self._call(
            "POST", f"{self.diagram_url}/api/diagrams/{diagram_id}/uploads", token,
            files={"file": (filename, data, content_type)}))

    def download(self, token: str, diagram_id: str, upload_id: str) -> bytes:
        """GET /api/diagrams/{id}/uploads/{upload_id}: the upload's bytes."""
        url = f"{self.diagram_url}/api/diagrams/{diagram_id}/uploads/{upload_id}"
        response = self.http.get(url, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise OperationFailed(f"GET {url} answered {response.status_code}")
        return response.content
