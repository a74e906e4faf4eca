"""Domain errors: what went wrong, named so that every layer can turn it into the right answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of some input, e.g. ("resources.gpus", "must be >= 0")."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem


class AidcError(Exception):
    """Base of every error aidc raises on purpose."""


class InvalidInput(AidcError):
    """Input that is well-formed but not acceptable; carries the problems field by field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFound(AidcError):
    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!s} not found")


class Conflict(AidcError):
    """The request is valid but clashes with the current state (e.g. queue exists)."""


class InvalidTransition(Conflict):
    def __init__(self, job_id: int, from_state: str, to_state: str) -> None:
        super().__init__(f"job {job_id} cannot go from {from_state} to {to_state}")


class PermissionDenied(AidcError):
    pass


class Unauthenticated(AidcError):
    pass


class TooManyRequests(AidcError):
    """The caller must wait `retry_after` seconds (e.g. too many failed sign-ins from its address)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
