"""Error codes the gateway puts in ``extensions.code`` and the errors that carry them."""

from __future__ import annotations

import enum

from graphql import GraphQLError

__all__ = [
    "ErrorCode",
    "bad_user_input",
    "is_expected_error",
    "rate_limited",
    "refused",
    "service_suspended",
    "unauthenticated",
]


class ErrorCode(enum.StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"
    SERVICE_SUSPENDED = "SERVICE_SUSPENDED"
    RATE_LIMITED = "RATE_LIMITED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    #: The request's deadline passed before the field's source answered.
    TIMEOUT = "TIMEOUT"
    # Operation limits (resolvers/limits/), each refused before execution.
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    DEPTH_LIMIT_EXCEEDED = "DEPTH_LIMIT_EXCEEDED"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_ROOT_FIELDS = "TOO_MANY_ROOT_FIELDS"
    TOO_MANY_DIRECTIVES = "TOO_MANY_DIRECTIVES"
    TOO_MANY_FIELDS = "TOO_MANY_FIELDS"
    TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"
    COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"
    # Writes (resolvers/mutations.py), each refused before anything is written.
    NOT_FOUND = "NOT_FOUND"
    FIELD_NOT_CORRECTABLE = "FIELD_NOT_CORRECTABLE"
    NO_CHANGE = "NO_CHANGE"
    ALREADY_RESOLVED = "ALREADY_RESOLVED"
    TRANSITION_NOT_ALLOWED = "TRANSITION_NOT_ALLOWED"
    #: Another write changed the same thing first; read it again and retry.
    CONFLICT = "CONFLICT"
    #: A client mutation id already used for a different input.
    CLIENT_MUTATION_ID_REUSED = "CLIENT_MUTATION_ID_REUSED"
    #: A client mutation id whose first write is still running.
    MUTATION_IN_PROGRESS = "MUTATION_IN_PROGRESS"
    #: A sensitive value withheld: the audit trail could not record its read.
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"


def bad_user_input(message: str, **extensions: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value, **extensions})


def refused(code: ErrorCode, message: str, **extensions: object) -> GraphQLError:
    """A write refused with its own code; nothing was written."""
    return GraphQLError(message, extensions={"code": code.value, **extensions})


def unauthenticated(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.UNAUTHENTICATED.value})


def rate_limited(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.RATE_LIMITED.value})


def service_suspended(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.SERVICE_SUSPENDED.value})


def is_expected_error(error: GraphQLError) -> bool:
    """An error the client is meant to read: a protocol error or one that carries a code.

    Anything else is a bug whose text could leak internals; MaskErrors hides it.
    """
    original = error.original_error
    if original is None:
        return True
    extensions = getattr(original, "extensions", None)
    return isinstance(extensions, dict) and "code" in extensions
