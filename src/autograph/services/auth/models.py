"""Request and response models of the auth service (unknown fields are refused)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from autograph.services.common.validation import clean_text

MIN_PASSWORD = 10
MAX_PASSWORD = 128
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "123456789", "1234567890", "qwertyuiop",
    "letmein123", "iloveyou12", "administrator", "changeme123", "welcome123", "passw0rd123",
    "qwerty12345", "abc1234567", "autograph123",
})
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"),
            re.compile(r"[^a-zA-Z0-9]"))


def password_problem(password: str, email: str = "") -> str | None:
    """Why a password is too weak, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD:
        return f"password must have at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"password must have at most {MAX_PASSWORD} characters"
    if password.lower() in COMMON_PASSWORDS:
        return "password is too common"
    if len(set(password)) < 4:
        return "password repeats too few characters"
    if sum(1 for pattern in _CLASSES if pattern.search(password)) < 2:
        return "password needs two kinds of characters (lower, upper, digits, symbols)"
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in password.lower():
        return "password must not contain the e-mail address"
    return None


class UserRegister(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    password: str = Field(max_length=1024)
    full_name: str | None = Field(default=None, max_length=1000)

    @field_validator("full_name")
    @classmethod
    def _full_name(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value, "full_name", 200)

    @model_validator(mode="after")
    def _strong_password(self) -> UserRegister:
        problem = password_problem(self.password, self.email)
        if problem:
            raise ValueError(problem)
        return self


class LoginRequest(BaseModel):
    """E-mail and password (the e-mail is matched case-insensitively)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    """An opaque session token to send as ``Authorization: Bearer <access_token>``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserPublic(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: int
    email: str
    full_name: str | None
    role: Literal["user", "admin"]
    created_at: datetime


class UsersPublic(BaseModel):
    """A page of users."""

    users: list[UserPublic]
    count: int
