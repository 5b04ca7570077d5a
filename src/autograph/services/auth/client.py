"""Logging in from outside the services (the ``autograph admin token`` command)."""

from __future__ import annotations

import httpx

from autograph.config import Settings
from autograph.errors import ConfigError, DependencyDown, OperationFailed
from autograph.services.common.security import Unauthorized


def admin_password(settings: Settings) -> str:
    """AUTOGRAPH_ADMIN_PASSWORD, else HOME/secrets/admin-password (written at first start).

    ConfigError when neither exists (the auth service has not started yet).
    """
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    path = settings.secrets_dir / "admin-password"
    try:
        return path.read_text().strip()
    except OSError:
        raise ConfigError(
            f"no admin password: set AUTOGRAPH_ADMIN_PASSWORD or start the auth service "
            f"once to generate {path}"
        ) from None


def login(settings: Settings, email: str, password: str,
          timeout: float = 10.0) -> dict[str, object]:
    """POST /api/auth/login through the gateway (else straight to the auth service) and
    return the token answer.

    Unauthorized for wrong credentials, DependencyDown when neither answers,
    OperationFailed for any other answer.
    """
    last = ""
    for service in ("gateway", "auth"):
        url = f"{settings.service_url(service)}/api/auth/login"
        try:
            response = httpx.post(url, json={"email": email, "password": password},
                                  timeout=timeout, trust_env=False)
        except httpx.HTTPError as exc:
            last = f"{service}: {exc}"
            continue
        detail = _detail(response)
        if response.status_code == 200:
            return dict(response.json())
        if response.status_code == 401:
            raise Unauthorized(f"login refused for {email}: {detail}")
        if response.status_code in (502, 503, 504):
            last = f"{service}: {detail}"
            continue
        raise OperationFailed(f"login failed (HTTP {response.status_code}): {detail}")
    raise DependencyDown(f"cannot log in, the auth service is unreachable ({last}); "
                         "use `autograph admin token --api-key` for the admin API")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]
