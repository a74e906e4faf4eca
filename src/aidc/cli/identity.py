"""Identity verbs: user, team, token, whoami."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from aidc.api.identity_schemas import BindingOut, MemberAdd, TokenCreate, TokenOut, UserCreate
from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.domain.units import parse_duration

user_app = typer.Typer(help="Manage users (admins).", no_args_is_help=True)
team_app = typer.Typer(help="Manage teams and their members.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)

M = TypeVar("M", bound=BaseModel)
ROLES = "admin, operator, member, viewer or inference"


def _bindings(bindings: list[BindingOut]) -> str:
    parts = []
    for b in bindings:
        where = "cluster" if b.team is None else f"team {b.team}"
        models = f" ({', '.join(b.models)})" if b.models else ""
        parts.append(f"{b.role} in {where}{models}")
    return ", ".join(parts) or "-"


def _valid(build: type[M], **values: Any) -> M:
    """The request body, or exit 2 naming the field that is wrong."""
    try:
        return build.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"{where}: {err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)


@user_app.command("create")
def user_create(
    name: str,
    team: Annotated[str | None, typer.Option(help="Bind the role in this team (default: in the whole cluster)")] = None,
    role: Annotated[str, typer.Option(help=ROLES)] = "member",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a user. Then give them a token: `aidc token create --user NAME`."""
    body = _valid(UserCreate, name=name, team=team, role=role)
    with api_errors("user create"), config.client() as client:
        user = client.create_user(body)
    if json_out:
        render.print_json(user.model_dump(mode="json"))
        return
    print(f"user {user.name} created: {_bindings(user.bindings)}")


@user_app.command("list")
def user_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users and their roles."""
    with api_errors(), config.client() as client:
        users = client.users()
    if json_out:
        render.print_json([u.model_dump(mode="json") for u in users])
        return
    t = render.table("USER", "ROLES", "STATE", "CREATED")
    for u in users:
        t.add_row(u.name, _bindings(u.bindings), "disabled" if u.disabled else "active", render.when(u.created_at))
    render.console.print(t)


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable a user: their tokens stop working at once."""
    with api_errors("user disable"), config.client() as client:
        client.set_user_disabled(name, True)
    print(f"user {name} disabled")


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Enable a disabled user again."""
    with api_errors("user enable"), config.client() as client:
        client.set_user_disabled(name, False)
    print(f"user {name} enabled")


@team_app.command("create")
def team_create(name: str) -> None:
    """Create a team. Queues can then belong to it (`aidc queue create --team`)."""
    with api_errors("team create"), config.client() as client:
        team = client.create_team(name)
    print(f"team {team.name} created")


@team_app.command("list")
def team_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List teams and their members."""
    with api_errors(), config.client() as client:
        teams = client.teams()
    if json_out:
        render.print_json([t.model_dump(mode="json") for t in teams])
        return
    t = render.table("TEAM", "MEMBERS", "CREATED")
    for team in teams:
        members = ", ".join(f"{m.user} ({m.role})" for m in team.members) or "-"
        t.add_row(team.name, members, render.when(team.created_at))
    render.console.print(t)


@team_app.command("add-member")
def team_add_member(
    team: str,
    user: str,
    role: Annotated[str, typer.Option(help=ROLES)] = "member",
    model: Annotated[list[str] | None, typer.Option(help="Inference role: a model it may call (repeat)")] = None,
) -> None:
    """Give USER a role in TEAM."""
    body = _valid(MemberAdd, user=user, role=role, models=model or [])
    with api_errors("team add-member"), config.client() as client:
        client.add_member(team, body)
    print(f"{user} is now {role} in team {team}")


@token_app.command("create")
def token_create(
    user: Annotated[str | None, typer.Option(help="Whose token (admins); default: yours")] = None,
    name: Annotated[str, typer.Option(help="A label, e.g. laptop or ci")] = "",
    expires: Annotated[str | None, typer.Option(help='Lifetime, e.g. "30d" or "12h"; default: until revoked')] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Limit it to an action, e.g. job.read (repeat)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help='{"id": ..., "token": ...} and the rest')] = False,
) -> None:
    """Create an API token. The secret is printed this once; only its hash is stored."""
    lifetime: float | None = None
    if expires is not None:
        try:
            lifetime = parse_duration(expires)
        except ValueError as exc:
            fail(f"--expires: {exc}", EXIT_USAGE)
    body = _valid(TokenCreate, user=user, name=name, expires_in=lifetime, scopes=scope)
    with api_errors("token create"), config.client() as client:
        created = client.create_token(body)
    if json_out:
        render.print_json(created.model_dump(mode="json"))
        return
    print(created.token)
    expiry = f", expires {render.when(created.expires_at)}" if created.expires_at else ""
    typer.echo(f"token {created.id} for {created.user}{expiry}: keep it secret, it is not shown again", err=True)


def _token_row(t: TokenOut) -> list[str]:
    state = "revoked" if t.revoked else "active"
    return [
        str(t.id), t.user, t.name, f"aidc_{t.prefix}_…", ",".join(t.scopes) if t.scopes is not None else "all",
        render.when(t.created_at), render.when(t.expires_at) if t.expires_at else "never",
        render.ago(t.last_used_at) if t.last_used_at else "never", state,
    ]  # fmt: skip


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Another user's tokens (admins)")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Every user's tokens (admins)")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List tokens (never their secrets): yours unless --user or --all."""
    with api_errors(), config.client() as client:
        tokens = client.tokens(user, all_users)
    if json_out:
        render.print_json([t.model_dump(mode="json") for t in tokens])
        return
    t = render.table("ID", "USER", "NAME", "PREFIX", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "STATE")
    for token in tokens:
        t.add_row(*_token_row(token))
    render.console.print(t)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token: yours, or anyone's (admins). It stops working at once."""
    with api_errors("token revoke"), config.client() as client:
        client.revoke_token(token_id)
    print(f"token {token_id} revoked")


def whoami(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Who the token in use belongs to, and what it may do."""
    with api_errors(), config.client() as client:
        me = client.whoami()
    if json_out:
        render.print_json(me.model_dump(mode="json"))
        return
    print(f"user:   {me.user}")
    print(f"roles:  {_bindings(me.bindings)}")
    if me.token is not None:
        expiry = render.when(me.token.expires_at) if me.token.expires_at else "never"
        print(f"token:  {me.token.id} ({me.token.name}, aidc_{me.token.prefix}_…, expires {expiry})")
    print(f"scopes: {', '.join(me.scopes) if me.scopes is not None else 'all the roles allow'}")
