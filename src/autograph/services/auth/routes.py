"""Routes of the auth service: /api/auth (register, login, logout) and /api/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from autograph.services.auth import accounts
from autograph.services.auth.models import (
    LoginRequest,
    TokenPublic,
    UserPublic,
    UserRegister,
    UsersPublic,
)
from autograph.services.auth.throttle import client_address
from autograph.services.common.deps import (
    AdminDep,
    CurrentUser,
    DbDep,
    ResourcesDep,
    SettingsDep,
    TokenDep,
)
from autograph.services.common.security import Principal, create_session, delete_session

auth_router = APIRouter(prefix="/api/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/users", tags=["users"])


def _public(user: accounts.User) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, full_name=user.full_name,
                      role=user.role,  # type: ignore[arg-type]
                      created_at=user.created_at)


@auth_router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: UserRegister, pool: DbDep) -> UserPublic:
    """Create an account (role ``user``); 409 if the e-mail is taken."""
    user = await accounts.create_user(pool, str(body.email), body.password, body.full_name)
    return _public(user)


@auth_router.post("/login")
async def login(body: LoginRequest, resources: ResourcesDep, settings: SettingsDep,
                request: Request) -> TokenPublic:
    """Exchange e-mail and password for a session token; 401 on a mismatch, 429 (with
    Retry-After) while failed attempts make this one wait."""
    user = await accounts.authenticate(resources, body.email, body.password,
                                       client_address(request))
    principal = Principal(user_id=user.id, email=user.email,
                          role=user.role)  # type: ignore[arg-type]
    token = await create_session(resources.redis, principal, settings.session_ttl_seconds)
    return TokenPublic(access_token=token, expires_in=settings.session_ttl_seconds)


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: CurrentUser, token: TokenDep, resources: ResourcesDep) -> None:
    """End the session of the token sent."""
    await delete_session(resources.redis, token)


@users_router.get("/me")
async def me(user: CurrentUser, pool: DbDep) -> UserPublic:
    """The logged-in user."""
    assert user.user_id is not None
    return _public(await accounts.get_user(pool, user.user_id))


@users_router.get("")
async def list_users(
    _admin: AdminDep, pool: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UsersPublic:
    """Every user, by id (admins only)."""
    users, count = await accounts.list_users(pool, limit, offset)
    return UsersPublic(users=[_public(u) for u in users], count=count)
