"""The permission evaluator: roles in scopes, token scopes, what team-scoped roles see of team-less things,
and model grants of the inference role."""

from __future__ import annotations

import pytest

from aidc.security.rbac import (
    Action,
    Binding,
    Principal,
    Role,
    is_allowed,
    may_infer,
    parse_scopes,
    teams_allowed,
)


def who(*bindings: Binding, scopes: frozenset[Action] | None = None) -> Principal:
    return Principal("u", tuple(bindings), scopes=scopes, teams=frozenset(b.team for b in bindings if b.team))


def test_cluster_roles() -> None:
    admin, operator, viewer = who(Binding(Role.ADMIN)), who(Binding(Role.OPERATOR)), who(Binding(Role.VIEWER))
    assert all(is_allowed(admin, a, t) for a in Action for t in (None, "ml"))
    assert is_allowed(operator, Action.NODE_WRITE)
    assert is_allowed(operator, Action.JOB_CANCEL, "ml")
    assert not is_allowed(operator, Action.USER_WRITE)
    assert not is_allowed(operator, Action.BACKUP)
    assert is_allowed(viewer, Action.JOB_READ, "ml")
    assert not is_allowed(viewer, Action.JOB_SUBMIT, "ml")
    assert teams_allowed(admin, Action.JOB_READ) is None  # every team


def test_team_roles_stay_in_their_team() -> None:
    member = who(Binding(Role.MEMBER, "ml"))
    assert is_allowed(member, Action.JOB_SUBMIT, "ml")
    assert not is_allowed(member, Action.JOB_SUBMIT, "vision")
    assert not is_allowed(member, Action.JOB_SUBMIT, None)  # not the cluster's own things
    assert is_allowed(member, Action.NODE_READ, None)  # but it may look at the cluster (like sinfo)
    assert is_allowed(member, Action.QUEUE_READ, None)
    assert not is_allowed(member, Action.QUEUE_WRITE, "ml")
    assert teams_allowed(member, Action.JOB_CANCEL) == frozenset({"ml"})
    assert teams_allowed(member, Action.AUDIT_READ) == frozenset()


def test_token_scopes_narrow_what_the_user_may_do() -> None:
    scoped = who(Binding(Role.ADMIN), scopes=frozenset({Action.JOB_READ}))
    assert is_allowed(scoped, Action.JOB_READ, "ml")
    assert not is_allowed(scoped, Action.JOB_SUBMIT, "ml")
    assert teams_allowed(scoped, Action.JOB_SUBMIT) == frozenset()
    assert not may_infer(scoped, "llama")


def test_inference_role_calls_only_its_models() -> None:
    bot = who(Binding(Role.INFERENCE, models=("llama", "qwen")))
    assert may_infer(bot, "llama")
    assert not may_infer(bot, "mistral")
    assert may_infer(who(Binding(Role.INFERENCE)), "anything")  # no list: every model
    assert not is_allowed(bot, Action.JOB_READ, None)
    assert not may_infer(who(Binding(Role.VIEWER)), "llama")
    assert may_infer(who(Binding(Role.MEMBER, "ml")), "llama")


def test_parse_scopes() -> None:
    assert parse_scopes(["job.read", "job.submit"]) == {Action.JOB_READ, Action.JOB_SUBMIT}
    with pytest.raises(ValueError, match=r"unknown scope 'job\.delete'"):
        parse_scopes(["job.delete"])
