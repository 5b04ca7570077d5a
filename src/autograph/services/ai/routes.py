"""Routes of the AI service: ``POST /api/ai/generate`` (text in, diagram canvas out)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autograph.services.ai.parser import MAX_PROMPT, generate_canvas
from autograph.services.common.deps import CurrentUser, SettingsDep, TokenDep
from autograph.services.common.validation import clean_text
from autograph.services.export.diagram_api import DiagramAPI

router = APIRouter(prefix="/api/ai", tags=["ai"])


class GenerateRequest(BaseModel):
    """A description of a diagram; ``save`` stores it as a new diagram named ``name``."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    direction: Literal["LR", "TB"] = "LR"
    save: bool = False
    name: str | None = Field(default=None, max_length=800)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value, "name", 200)


class GeneratePublic(BaseModel):
    """The generated canvas, its size, and the saved diagram when ``save`` was asked."""

    canvas: dict[str, Any]
    node_count: int
    edge_count: int
    diagram: dict[str, Any] | None = None


@router.post("/generate")
async def generate(body: GenerateRequest, _user: CurrentUser, token: TokenDep,
                   settings: SettingsDep) -> GeneratePublic:
    """Turn a text description into a laid-out diagram (deterministic rules, no model);
    400 when the prompt names no components."""
    canvas = await asyncio.to_thread(generate_canvas, body.prompt, body.direction)
    diagram = None
    if body.save:
        first = canvas["nodes"][0]["label"]
        name = body.name or f"Generated: {first}"[:200]
        diagram = await DiagramAPI(settings, token).create(name, canvas)
    return GeneratePublic(canvas=canvas, node_count=len(canvas["nodes"]),
                          edge_count=len(canvas["edges"]), diagram=diagram)
