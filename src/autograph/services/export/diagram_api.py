"""A client of the diagram service's HTTP API, acting with the caller's own session token.

The diagram service owns diagram rows and canvases; the priority-3 services (export, git,
AI) read and write diagrams only through it, so ownership checks live in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from autograph.config import Settings
from autograph.errors import Conflict, DependencyDown, InvalidInput, NotFound, OperationFailed
from autograph.services.common.security import Unauthorized

if TYPE_CHECKING:
    import httpx

TIMEOUT_SECONDS = 30.0  # and 3 s to connect


class DiagramAPI:
    """Calls ``/api/diagrams`` on the diagram service with ``Authorization: Bearer token``."""

    def __init__(self, settings: Settings, token: str,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base = settings.service_url("diagram")
        self.token = token
        self.client = client

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        import httpx  # imported on first call: it costs its users ~40 ms at every start

        timeout = httpx.Timeout(TIMEOUT_SECONDS, connect=3.0)
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.base}/api/diagrams{path}"
        try:
            if self.client is not None:
                response = await self.client.request(method, url, json=json, headers=headers,
                                                     timeout=timeout)
            else:
                async with httpx.AsyncClient(timeout=timeout) as client:
                    response = await client.request(method, url, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise DependencyDown(f"the diagram service is unavailable ({type(exc).__name__})") \
                from None
        return _result(response)

    async def get(self, diagram_id: UUID) -> dict[str, Any]:
        """The diagram with its current canvas; NotFound for a missing or foreign one."""
        data: dict[str, Any] = await self._call("GET", f"/{diagram_id}")
        return data

    async def versions(self, diagram_id: UUID) -> list[dict[str, Any]]:
        """Every version of the diagram (without canvases), oldest first."""
        data = await self._call("GET", f"/{diagram_id}/versions")
        return list(data["versions"])

    async def version(self, diagram_id: UUID, number: int) -> dict[str, Any]:
        """One version with its canvas."""
        data: dict[str, Any] = await self._call("GET", f"/{diagram_id}/versions/{number}")
        return data

    async def create(self, name: str, canvas: dict[str, Any]) -> dict[str, Any]:
        """Create a diagram owned by the caller."""
        data: dict[str, Any] = await self._call("POST", "", {"name": name, "canvas": canvas})
        return data

    async def update(self, diagram_id: UUID, canvas: dict[str, Any],
                     name: str | None = None) -> dict[str, Any]:
        """Save a new version of the diagram."""
        body: dict[str, Any] = {"canvas": canvas}
        if name is not None:
            body["name"] = name
        data: dict[str, Any] = await self._call("PUT", f"/{diagram_id}", body)
        return data


def _result(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; otherwise the matching AutographError."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = response.text[:200]
    status = response.status_code
    if status == 401:
        raise Unauthorized(detail or "invalid or expired token")
    if status == 404:
        raise NotFound(detail or "diagram not found")
    if status == 409:
        raise Conflict(detail)
    if status in (400, 413, 422):
        raise InvalidInput(f"the diagram service refused the request: {detail}")
    if status in (502, 503, 504):
        raise DependencyDown(f"the diagram service is unavailable: {detail}")
    raise OperationFailed(f"the diagram service answered {status}: {detail}")
