"""E-mail channel: one message per alert notice over SMTP (optional STARTTLS and login)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

from pydantic import SecretStr

from autograph.dr.alerts.models import Alert
from autograph.errors import ConfigError, OperationFailed


@dataclass
class EmailChannel:
    """Sends each alert notice as a plain-text e-mail through an SMTP server.

    ``password`` is a SecretStr: it appears in no repr, log line or error message.
    Raises ConfigError when built without recipients or with a password but no username.
    """

    host: str
    port: int
    from_addr: str
    to_addrs: tuple[str, ...]
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_seconds: float = 10.0
    name: str = "email"

    def __post_init__(self) -> None:
        if not self.to_addrs:
            raise ConfigError("email alerts: no recipient address configured")
        if self.password is not None and not self.username:
            raise ConfigError("email alerts: an SMTP password needs a username")

    def message(self, alert: Alert) -> EmailMessage:
        """Build the e-mail for one alert notice."""
        mail = EmailMessage()
        mail["Subject"] = alert.subject()
        mail["From"] = self.from_addr
        mail["To"] = ", ".join(self.to_addrs)
        mail["X-AutoGraph-Alert"] = f"{alert.key} {alert.status}"
        mail.set_content(alert.text() + "\n")
        return mail

    def send(self, alert: Alert) -> None:
        """Connect, optionally STARTTLS and log in, send; raises OperationFailed on any error.

        Each network step is bounded by ``timeout_seconds``.
        """
        where = f"SMTP {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    secret = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.username, secret)
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            raise OperationFailed(f"{where}: {self._describe(exc)}") from None

    def _describe(self, exc: BaseException) -> str:
        """Say what went wrong without ever repeating the password."""
        text = f"{type(exc).__name__}: {exc}"
        secret = self.password.get_secret_value() if self.password else ""
        return text.replace(secret, "**********") if secret else text
