"""Error answers routes declare in the OpenAPI document, all with the ErrorOut body."""

from __future__ import annotations

from aidc.api.schemas import ErrorOut

Responses = dict[int | str, dict[str, object]]


def errors(*statuses: int) -> Responses:
    """The errors a route may answer besides those every route may (401, 403, 413, 422, 429), which
    create_app adds to every operation of the document itself."""
    return {status: {"model": ErrorOut} for status in statuses}
