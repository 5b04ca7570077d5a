"""Routes of the integration hub: ``/api/integrations`` webhooks, their delivery log, events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autograph.errors import InvalidInput
from autograph.services.common.deps import CurrentUser, DbDep, SettingsDep
from autograph.services.common.security import Principal
from autograph.services.common.validation import clean_text
from autograph.services.integrations import webhooks
from autograph.services.integrations.destinations import check_destination, check_url

router = APIRouter(prefix="/api/integrations", tags=["integrations"])


def _as_value_error(check: Callable[[str], str], value: str) -> str:
    """Run a check inside a validator: its InvalidInput becomes a 422 validation error."""
    try:
        return check(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


class WebhookCreate(BaseModel):
    """An http(s) URL, the event types to send (empty: all), an optional description."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, max_length=32)
    description: str | None = Field(default=None, max_length=800)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _as_value_error(check_url, value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return [_as_value_error(webhooks.check_event_type, v) for v in value]

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value, "description", 200)


class WebhookPublic(BaseModel):
    """A registered webhook (the secret is shown once, when it is created)."""

    id: UUID
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: datetime
    secret: str | None = None


class WebhooksPublic(BaseModel):
    """The caller's webhooks."""

    webhooks: list[WebhookPublic]
    count: int


class DeliveryPublic(BaseModel):
    """One delivery of an event and every attempt made."""

    id: UUID
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[dict[str, Any]]
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesPublic(BaseModel):
    """A webhook's deliveries, newest first."""

    deliveries: list[DeliveryPublic]
    count: int


class EventCreate(BaseModel):
    """An event to send to the caller's webhooks subscribed to its type."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=160)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _as_value_error(webhooks.check_event_type, value)


class EventQueued(BaseModel):
    """The event's id and the deliveries queued for it."""

    event_id: str
    delivery_ids: list[UUID]


def _uid(user: Principal) -> int:
    assert user.user_id is not None  # CurrentUser is always a session user
    return user.user_id


def _delivery(row: dict[str, Any]) -> DeliveryPublic:
    pending = row["status"] == "pending"
    return DeliveryPublic(**{k: v for k, v in row.items()
                             if k in DeliveryPublic.model_fields and k != "next_attempt_at"},
                          next_attempt_at=row["next_attempt_at"] if pending else None)


def _wake(request: Request) -> None:
    request.app.state.worker.wake()


@router.post("/webhooks", status_code=status.HTTP_201_CREATED)
async def create_webhook(body: WebhookCreate, user: CurrentUser, pool: DbDep,
                         settings: SettingsDep) -> WebhookPublic:
    """Register a webhook; the answer carries its signing secret (shown only here). 400 for
    a URL that is not http(s) or points where the destination policy forbids."""
    await check_destination(body.url, settings.webhook_destinations)
    row = await webhooks.create_webhook(pool, _uid(user), body.url, body.events,
                                        body.description)
    return WebhookPublic(**row)


@router.get("/webhooks")
async def list_webhooks(user: CurrentUser, pool: DbDep) -> WebhooksPublic:
    """Your webhooks."""
    rows = await webhooks.list_webhooks(pool, _uid(user))
    return WebhooksPublic(webhooks=[WebhookPublic(**r) for r in rows], count=len(rows))


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: UUID, user: CurrentUser, pool: DbDep) -> WebhookPublic:
    """One of your webhooks."""
    return WebhookPublic(**await webhooks.get_webhook(pool, _uid(user), webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: UUID, user: CurrentUser, pool: DbDep) -> None:
    """Delete a webhook and its delivery log."""
    await webhooks.delete_webhook(pool, _uid(user), webhook_id)


@router.post("/webhooks/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED)
async def test_webhook(webhook_id: UUID, user: CurrentUser, pool: DbDep,
                       request: Request) -> EventQueued:
    """Queue a ``ping`` event to this webhook."""
    await webhooks.get_webhook(pool, _uid(user), webhook_id)
    event_id, ids = await webhooks.enqueue_event(pool, _uid(user), "ping",
                                                 {"webhook_id": str(webhook_id)}, webhook_id)
    _wake(request)
    return EventQueued(event_id=event_id, delivery_ids=ids)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(webhook_id: UUID, user: CurrentUser, pool: DbDep,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> DeliveriesPublic:
    """The delivery log of one of your webhooks, newest first."""
    rows = await webhooks.list_deliveries(pool, _uid(user), webhook_id, limit)
    return DeliveriesPublic(deliveries=[_delivery(r) for r in rows], count=len(rows))


@router.post("/events", status_code=status.HTTP_202_ACCEPTED)
async def publish_event(body: EventCreate, user: CurrentUser, pool: DbDep,
                        request: Request) -> EventQueued:
    """Send an event of your own to your webhooks subscribed to its type (diagram.created
    and diagram.updated are sent by the hub itself when diagrams change)."""
    event_id, ids = await webhooks.enqueue_event(pool, _uid(user), body.type, body.data)
    _wake(request)
    return EventQueued(event_id=event_id, delivery_ids=ids)
