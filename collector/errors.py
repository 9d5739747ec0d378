"""Failures as data: every way a step can fail maps to one ``error.type`` of a closed set.

The set is ``store.schema.ERROR_TYPES`` (k6-style families). Messages are for people and never
carry a raw URL, a response body, a token or a patient identifier: steps are named by their URL
template.
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

import httpx

from collector.timing import DnsTimeoutError
from store import schema

__all__ = ["ErrorType", "StepFailure", "classify_status", "classify_transport_error"]


class ErrorType(enum.StrEnum):
    """The closed set of ``error.type`` values (the same strings as ``schema.ERROR_TYPES``)."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    AUTH = "auth"
    ASSERTION = "assertion"
    INVALID_RESPONSE = "invalid_response"


if tuple(member.value for member in ErrorType) != schema.ERROR_TYPES:  # pragma: no cover
    raise ImportError("collector.errors.ErrorType has drifted from store.schema.ERROR_TYPES")


@dataclass(frozen=True, slots=True)
class StepFailure:
    """Why a step failed.

    Attributes:
        error_type: one of the closed set.
        message: a human sentence without patient data or secrets.
    """

    error_type: ErrorType
    message: str


def classify_status(status_code: int, expected: tuple[int, ...] | None, what: str) -> StepFailure | None:
    """The failure an unexpected status means, or None when the status is acceptable.

    Args:
        status_code: the response's status.
        expected: acceptable codes; None means any 2xx.
        what: the request, as ``METHOD /url/{template}``.
    """
    if (expected is None and 200 <= status_code < 300) or (expected is not None and status_code in expected):
        return None
    reason = httpx.codes.get_reason_phrase(status_code) or "unknown status"
    message = f"{what} returned {status_code} {reason}"
    if expected is not None:
        message += f" (expected {', '.join(str(code) for code in expected)})"
    if status_code in (401, 403):
        return StepFailure(ErrorType.AUTH, message)
    if 400 <= status_code < 500:
        return StepFailure(ErrorType.HTTP_4XX, message)
    if status_code >= 500:
        return StepFailure(ErrorType.HTTP_5XX, message)
    return StepFailure(ErrorType.INVALID_RESPONSE, message)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """An exception of type ``kind`` is in ``exc``'s chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _caused_by_ssl(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def classify_transport_error(exc: httpx.RequestError, failed_phase: str | None, what: str) -> StepFailure:
    """The failure a transport error (or another request error httpx raises) means.

    Args:
        exc: what httpx raised.
        failed_phase: the phase :class:`collector.timing.PhaseTimer` saw fail, if any.
        what: the request, as ``METHOD /url/{template}``.
    """
    if isinstance(exc, httpx.DecodingError):
        return StepFailure(ErrorType.INVALID_RESPONSE, f"{what}: the response body could not be decoded")
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return StepFailure(ErrorType.TIMEOUT, f"{what} timed out while {phase}")
    if failed_phase == "dns":
        if _caused_by(exc, DnsTimeoutError):
            return StepFailure(ErrorType.DNS, f"{what}: the server's name could not be resolved in time")
        return StepFailure(ErrorType.DNS, f"{what}: the server's name could not be resolved")
    if failed_phase == "tls" or _caused_by_ssl(exc):
        return StepFailure(ErrorType.TLS, f"{what}: TLS handshake failed ({_reason(exc)})")
    if isinstance(exc, httpx.ConnectError) or failed_phase == "connect":
        return StepFailure(ErrorType.CONNECT, f"{what}: could not connect ({_reason(exc)})")
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.CloseError)):
        return StepFailure(ErrorType.CONNECT, f"{what}: the connection was closed or reset ({_reason(exc)})")
    return StepFailure(ErrorType.INVALID_RESPONSE, f"{what}: {type(exc).__name__} ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    """A short reason from an exception: its class name and errno text, never a URL."""
    text = str(exc).strip()
    if "://" in text or not text:
        return type(exc).__name__
    return text[:200]
