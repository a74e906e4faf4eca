"""Silences and acknowledgements over the API (`aidc alerts silence|silences|expire|ack`).

Functions of an AidcClient rather than methods of it, so that this feature's calls live beside each other; they
go through the client's own request plumbing (auth header, errors as ApiError, ConnectionFailed)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from pydantic import TypeAdapter

from aidc.api.telemetry_schemas import AckIn, AckOut, MatcherIn, SilenceCreate, SilenceOut
from aidc.client.http import AidcClient
from aidc.domain.silences import Matcher

_SILENCES: TypeAdapter[list[SilenceOut]] = TypeAdapter(list[SilenceOut])


def silences(client: AidcClient, state: str | None = None) -> list[SilenceOut]:
    params = {"state": state} if state else {}
    return _SILENCES.validate_json(client.request("GET", "/v1/silences", params=params).content)


def create_silence(client: AidcClient, matchers: Sequence[Matcher], comment: str, duration: str) -> SilenceOut:
    """A silence from now for `duration` ("2h")."""
    body = SilenceCreate(
        matchers=[MatcherIn(name=m.name, value=m.value, is_regex=m.is_regex, is_equal=m.is_equal) for m in matchers],
        duration=duration,
        comment=comment,
    )
    content = client.request("POST", "/v1/silences", json=body.model_dump(mode="json", exclude_none=True)).content
    return SilenceOut.model_validate_json(content)


def expire_silence(client: AidcClient, silence_id: str) -> SilenceOut:
    content = client.request("DELETE", f"/v1/silences/{quote(silence_id, safe='')}").content
    return SilenceOut.model_validate_json(content)


def acknowledge(client: AidcClient, fingerprint: str, comment: str | None = None) -> AckOut:
    body = AckIn(comment=comment).model_dump(mode="json", exclude_none=True)
    content = client.request("POST", f"/v1/alerts/{quote(fingerprint, safe='')}/ack", json=body).content
    return AckOut.model_validate_json(content)
