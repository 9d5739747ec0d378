"""Failures as data: every way a step can fail maps to one ``error.type`` of a closed set.

The set is ``store.schema.ERROR_TYPES`` (k6-style families). Messages are for people and never
carry a raw URL, a response body, a token or a patient identifier: steps are named by their URL
template. They are built from our own words only, never from an exception's text: the HTTP
library quotes what it could not parse (a status line, a header, a chunk header), and those are
bytes the EPR sent, which may name a patient.
"""

from __future__ import annotations

import enum
import os
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from collector.timing import DnsTimeoutError
from store import schema

__all__ = ["ErrorType", "ResponseTooLargeError", "StepFailure", "classify_status", "classify_transport_error"]


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
    BROWSER_SCRIPT = "browser_script"
    BROWSER_NAVIGATION = "browser_navigation"
    BROWSER_CRASH = "browser_crash"


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
    if 500 <= status_code < 600:
        return StepFailure(ErrorType.HTTP_5XX, message)
    # 1xx (other than those the HTTP library consumes), 3xx and codes outside 100-599 (HTTP
    # allows 3 digits; 999 is no server error): the answer itself is not what was asked for.
    return StepFailure(ErrorType.INVALID_RESPONSE, message)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (explicit or implicit), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type ``kind`` in ``exc``'s chain of causes, or None."""
    return next((cause for cause in _chain(exc) if isinstance(cause, kind)), None)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """An exception of type ``kind`` is in ``exc``'s chain of causes."""
    return _find_cause(exc, kind) is not None


class ResponseTooLargeError(Exception):
    """The response's body (after decompression) is larger than the target allows."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"more than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


def classify_transport_error(exc: BaseException, failed_phase: str | None, what: str) -> StepFailure:
    """The failure a transport error (or another request error httpx raises) means.

    The message is made of our own words, the request's template and, for a failed connection,
    the operating system's name for the error: never the exception's text, which may quote the
    response (a malformed status line or header, a chunk header: bytes the EPR sent).

    Args:
        exc: what httpx raised (or what the probe's transport raised under it).
        failed_phase: the phase :class:`collector.timing.PhaseTimer` saw fail, if any.
        what: the request, as ``METHOD /url/{template}``.
    """
    too_large = _find_cause(exc, ResponseTooLargeError)
    if isinstance(too_large, ResponseTooLargeError):
        return StepFailure(
            ErrorType.INVALID_RESPONSE,
            f"{what}: the response is larger than the limit of {too_large.limit_bytes:,} bytes (max_response_bytes)",
        )
    if isinstance(exc, httpx.DecodingError) or _caused_by(exc, zlib.error):
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
    ssl_error = _find_cause(exc, ssl.SSLError)
    if failed_phase == "tls" or ssl_error is not None:
        return StepFailure(ErrorType.TLS, f"{what}: TLS handshake failed{_ssl_reason(ssl_error)}")
    if isinstance(exc, httpx.ConnectError) or failed_phase == "connect":
        return StepFailure(ErrorType.CONNECT, f"{what}: could not connect{_os_reason(exc)}")
    if _raised_by_the_parser(exc):
        # httpcore's HTTP/1.1 parser (h11, pinned with httpcore) could not read what the server
        # sent: the response itself is bad, not the network.
        return StepFailure(ErrorType.INVALID_RESPONSE, f"{what}: the response is not valid HTTP/1.1")
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.CloseError)):
        return StepFailure(ErrorType.CONNECT, f"{what}: the connection was closed or reset{_os_reason(exc)}")
    return StepFailure(ErrorType.INVALID_RESPONSE, f"{what}: the request failed ({type(exc).__name__})")


def _raised_by_the_parser(exc: BaseException) -> bool:
    return any(type(cause).__module__.split(".")[0] == "h11" for cause in _chain(exc))


def _os_reason(exc: BaseException) -> str:
    """`` (Connection refused)``: the operating system's words for the errno in the chain, if any."""
    found = _find_cause(exc, OSError)
    if isinstance(found, OSError) and isinstance(found.errno, int) and found.errno > 0:
        return f" ({os.strerror(found.errno)})"
    return ""


def _ssl_reason(exc: BaseException | None) -> str:
    """`` (CERTIFICATE_VERIFY_FAILED)``: OpenSSL's reason code, never its text (which can name
    what the server presented)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason.replace("_", "").isalnum() and reason.isupper():
        return f" ({reason})"
    return ""
