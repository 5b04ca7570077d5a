"""Slack channel: each alert notice POSTed as ``{"text": …}`` to an incoming-webhook URL.

The URL is the secret (anyone holding it can post), so it is kept in a SecretStr and never
written to logs or errors. The request goes through ``urllib`` rather than an HTTP client library
that logs request URLs at INFO level.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import SecretStr

from autograph.dr.alerts.models import Alert
from autograph.errors import ConfigError, OperationFailed

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "resolved": ":white_check_mark:"}


@dataclass
class SlackChannel:
    """Posts each alert notice to a Slack incoming webhook, bounded by ``timeout_seconds``.

    Raises ConfigError when the URL is not http(s).
    """

    webhook_url: SecretStr = field(repr=False)
    timeout_seconds: float = 10.0
    name: str = "slack"
    _host: str = field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        parts = urlsplit(self.webhook_url.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("slack alerts: the webhook URL must be an http(s) URL")
        self._host = parts.hostname

    def payload(self, alert: Alert) -> dict[str, str]:
        """The JSON body Slack receives for one alert notice."""
        icon = ICONS["resolved"] if alert.status == "resolved" else ICONS[alert.severity]
        return {"text": f"{icon} {alert.text()}"}

    def send(self, alert: Alert) -> None:
        """POST the notice; raises OperationFailed on a non-2xx answer, a timeout or no answer."""
        request = urllib.request.Request(
            self.webhook_url.get_secret_value(),
            data=json.dumps(self.payload(alert)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        where = f"Slack webhook on {self._host}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise OperationFailed(f"{where} answered HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise OperationFailed(f"{where}: {self._describe(exc)}") from None

    def _describe(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc
        text = f"{type(exc).__name__}: {reason}"
        return text.replace(self.webhook_url.get_secret_value(), "<webhook URL>")
