"""Request and response models of the diagram service (unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autograph.services.common.validation import check_json_depth, clean_text

MAX_NAME = 200
MAX_CANVAS_DEPTH = 64


def _canvas(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        check_json_depth(value, "canvas", MAX_CANVAS_DEPTH)
    return value


class DiagramCreate(BaseModel):
    """A new diagram; the canvas is any JSON object (default: empty)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=4 * MAX_NAME)
    canvas: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return clean_text(value, "name", MAX_NAME)

    @field_validator("canvas")
    @classmethod
    def _canvas_depth(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _canvas(value)


class DiagramUpdate(BaseModel):
    """A change: a new name, a new canvas, or both. Every update makes a new version."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=4 * MAX_NAME)
    canvas: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value, "name", MAX_NAME)

    @field_validator("canvas")
    @classmethod
    def _canvas_depth(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _canvas(value)

    @model_validator(mode="after")
    def _something(self) -> DiagramUpdate:
        if self.name is None and self.canvas is None:
            raise ValueError("give a name, a canvas, or both")
        return self


class DiagramPublic(BaseModel):
    """A diagram and its current version."""

    id: UUID
    name: str
    owner_id: int
    current_version: int
    sha256: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime


class DiagramDetail(DiagramPublic):
    """A diagram with its current canvas."""

    canvas: dict[str, Any]


class DiagramsPublic(BaseModel):
    """A page of the caller's diagrams, most recently updated first."""

    diagrams: list[DiagramPublic]
    count: int


class VersionPublic(BaseModel):
    """One version of a diagram."""

    diagram_id: UUID
    version: int
    name: str
    sha256: str
    size_bytes: int
    created_by: int | None
    created_at: datetime


class VersionDetail(VersionPublic):
    """One version of a diagram with its canvas."""

    canvas: dict[str, Any]


class VersionsPublic(BaseModel):
    """Every version of a diagram, oldest first."""

    versions: list[VersionPublic]
    count: int


class UploadPublic(BaseModel):
    """A file attached to a diagram, stored in the ``uploads`` bucket."""

    id: UUID
    diagram_id: UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


class UploadsPublic(BaseModel):
    """The uploads of a diagram, oldest first."""

    uploads: list[UploadPublic]
    count: int
