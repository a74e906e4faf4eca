"""Users, teams, tokens and who am I."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from aidc.api.deps import PrincipalDep, ServicesDep, TokenId
from aidc.api.identity_schemas import (
    BindingOut,
    MemberAdd,
    MemberOut,
    TeamCreate,
    TeamOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserPatch,
    WhoAmIOut,
)
from aidc.api.responses import errors
from aidc.domain.identity import RoleBindingRecord, TokenRecord
from aidc.services.identity import UserDetail

router = APIRouter(prefix="/v1", tags=["identity"])
_ERRORS = errors(404, 409)


def binding_out(b: RoleBindingRecord) -> BindingOut:
    return BindingOut(id=b.id, role=b.role, team=b.team, models=list(b.models))


def user_out(d: UserDetail) -> UserOut:
    u = d.user
    return UserOut(
        name=u.name,
        created_at=u.created_at,
        disabled=u.disabled,
        disabled_at=u.disabled_at,
        bindings=[binding_out(b) for b in d.bindings],
    )


def token_out(t: TokenRecord) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        user=t.user,
        prefix=t.prefix,
        scopes=None if t.scopes is None else list(t.scopes),
        created_at=t.created_at,
        expires_at=t.expires_at,
        last_used_at=t.last_used_at,
        revoked=t.revoked,
    )


@router.post("/users", status_code=201, response_model=UserOut, responses=_ERRORS, summary="Create a user")
def create_user(body: UserCreate, services: ServicesDep, principal: PrincipalDep) -> UserOut:
    return user_out(services.identity.create_user(principal, body.name, body.team, body.role))


@router.get("/users", response_model=list[UserOut], responses=_ERRORS, summary="List users")
def list_users(services: ServicesDep, principal: PrincipalDep) -> list[UserOut]:
    return [user_out(d) for d in services.identity.list_users(principal)]


@router.patch("/users/{name}", response_model=UserOut, responses=_ERRORS, summary="Disable or enable a user")
def patch_user(name: str, body: UserPatch, services: ServicesDep, principal: PrincipalDep) -> UserOut:
    user = services.identity.set_disabled(principal, name, body.disabled)
    return next(user_out(d) for d in services.identity.list_users(principal) if d.user.name == user.name)


@router.post("/teams", status_code=201, response_model=TeamOut, responses=_ERRORS, summary="Create a team")
def create_team(body: TeamCreate, services: ServicesDep, principal: PrincipalDep) -> TeamOut:
    team = services.identity.create_team(principal, body.name)
    return TeamOut(name=team.name, created_at=team.created_at, members=[])


@router.get("/teams", response_model=list[TeamOut], responses=_ERRORS, summary="List teams and their members")
def list_teams(services: ServicesDep, principal: PrincipalDep) -> list[TeamOut]:
    return [
        TeamOut(
            name=t.name,
            created_at=t.created_at,
            members=[MemberOut(user=b.user, role=b.role, models=list(b.models)) for b in members],
        )
        for t, members in services.identity.list_teams(principal)
    ]


@router.post(
    "/teams/{team}/members", status_code=201, response_model=BindingOut, responses=_ERRORS, summary="Add a member"
)
def add_member(team: str, body: MemberAdd, services: ServicesDep, principal: PrincipalDep) -> BindingOut:
    return binding_out(services.identity.add_member(principal, team, body.user, body.role, body.models))


@router.post("/tokens", status_code=201, response_model=TokenCreated, responses=_ERRORS, summary="Create a token")
def create_token(body: TokenCreate, services: ServicesDep, principal: PrincipalDep) -> TokenCreated:
    """The answer holds the secret, this once: it is stored only as a salted hash."""
    issued = services.identity.create_token(
        principal,
        user=body.user,
        name=body.name,
        expires_in=timedelta(seconds=body.expires_in) if body.expires_in is not None else None,
        scopes=body.scopes,
    )
    return TokenCreated(**token_out(issued.record).model_dump(), token=issued.token)


@router.get("/tokens", response_model=list[TokenOut], responses=_ERRORS, summary="List tokens (never their secrets)")
def list_tokens(
    services: ServicesDep,
    principal: PrincipalDep,
    user: Annotated[str | None, Query(max_length=63, description="Default: yours")] = None,
    all_users: Annotated[bool, Query(alias="all")] = False,
) -> list[TokenOut]:
    return [token_out(t) for t in services.identity.list_tokens(principal, user, all_users)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=_ERRORS, summary="Revoke a token")
def revoke_token(token_id: TokenId, services: ServicesDep, principal: PrincipalDep) -> TokenOut:
    return token_out(services.identity.revoke_token(principal, token_id))


@router.get("/whoami", response_model=WhoAmIOut, responses=_ERRORS, summary="The caller: user, roles, token")
def whoami(services: ServicesDep, principal: PrincipalDep) -> WhoAmIOut:
    me, token = services.identity.whoami(principal)
    return WhoAmIOut(
        user=me.name,
        bindings=[BindingOut(id=0, role=b.role, team=b.team, models=list(b.models)) for b in me.bindings],
        teams=sorted(me.teams),
        token=token_out(token) if token is not None else None,
        scopes=None if me.scopes is None else sorted(me.scopes),
    )
