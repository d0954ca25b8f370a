"""Records a buggy or hostile producer may write to a job topic, for the tests and the chaos
suite: bad bytes, wrong types, huge numbers, unicode digits, zero and negative attempts,
oversize values and headers, non-UTF-8 headers and header injection attempts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.schemas import JobName

OTP = JobName.OTP_EMAIL_VERIFICATION.encode()
GOOD_VALUE = b'{"email": "bad@example.com", "customer_name": "Bad", "otp": "000000"}'


@dataclass(frozen=True)
class Hostile:
    """One record that must end on the dead-letter topic, never run and never stop a worker."""

    name: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _header(name: str, value: bytes, kind: str) -> Hostile:
    return Hostile(kind, OTP, GOOD_VALUE, [(name, value)])


def hostile_records() -> Iterator[Hostile]:
    """36 kinds of record, each one that no producer of ours writes."""
    yield _header("attempt", "²".encode(), "attempt: superscript digit")
    yield _header("attempt", "\u0661".encode(), "attempt: Arabic-Indic digit")
    yield _header("attempt", b"1" + b"0" * 30, "attempt: 10**30")
    yield _header("attempt", b"0", "attempt: zero")
    yield _header("attempt", b"-1", "attempt: negative")
    yield _header("attempt", b"two", "attempt: a word")
    yield _header("attempt", b"1.5", "attempt: a fraction")
    yield _header("max-attempts", b"0", "max-attempts: zero")
    yield _header("max-attempts", b"-3", "max-attempts: negative")
    yield _header("max-attempts", b"1" + b"0" * 30, "max-attempts: 10**30")
    yield _header("max-attempts", b"\xff", "max-attempts: not UTF-8")
    yield _header("job-id", b"\xff\xfe-1", "job-id: not UTF-8")
    yield _header("job-id", b"\xfe\xff-1", "job-id: not UTF-8, the same after replacement")
    yield _header("job-id", b"a\r\njob_event forged=1", "job-id: CRLF log injection")
    yield _header("job-id", b"nul\x00id", "job-id: NUL")
    yield _header("job-id", b"j" * 300, "job-id: 300 characters")
    yield _header("enqueued-at", b"9" * 40, "enqueued-at: 40 digits")
    yield _header("due-at", b"2" + b"0" * 15, "due-at: past the year 60000")
    yield _header("redrive", b"-", "redrive: not a number")
    yield Hostile("job-id twice", OTP, GOOD_VALUE, [("job-id", b"a"), ("job-id", b"b")])
    yield Hostile("attempt twice", OTP, GOOD_VALUE, [("attempt", b"1"), ("attempt", b"3")])
    yield Hostile("value: 1 MB", OTP, b"x" * 1_000_000, [])
    yield Hostile("headers: 300 KB", OTP, GOOD_VALUE, [("junk", b"h" * 300_000)])
    yield Hostile("value: not JSON", OTP, b"\xff\xfe not json", [])
    yield Hostile("value: empty", OTP, b"", [])
    yield Hostile("value: JSON array", OTP, b"[]", [])
    yield Hostile("value: JSON null", OTP, b"null", [])
    yield Hostile("value: a number", OTP, b"5", [])
    yield Hostile("value: wrong types", OTP, b'{"email": 5, "customer_name": [], "otp": {}}', [])
    yield Hostile(
        "value: an extra field", OTP, GOOD_VALUE[:-1] + b', "bcc": "all@example.com"}', []
    )
    yield Hostile("value: nested 100,000 deep", OTP, b"[" * 100_000 + b"]" * 100_000, [])
    yield Hostile(
        "value: invalid UTF-8 in a string",
        OTP,
        b'{"email": "\xff@example.com", "customer_name": "X", "otp": "1"}',
        [],
    )
    yield Hostile("key: none", None, GOOD_VALUE, [])
    yield Hostile("key: unknown job", b"send-a-fax", GOOD_VALUE, [])
    yield Hostile("key: not UTF-8", b"\xff\xfe", GOOD_VALUE, [])
    yield Hostile("key: CRLF log injection", OTP + b"\r\nERROR forged", GOOD_VALUE, [])
