"""Reading job headers as a hostile producer may write them (no broker)."""

from __future__ import annotations

import pytest

from pipeline.envelope import JobEnvelope, check_job_id, job_name_of
from pipeline.errors import InvalidEnvelope


def read(*headers: tuple[str, bytes], key: bytes | None = b"otp") -> JobEnvelope:
    return JobEnvelope.from_record(key, list(headers), fallback_id="t:0:7", timestamp_ms=5)


def test_plain_records_get_stable_defaults() -> None:
    envelope = read()
    assert (envelope.job_id, envelope.attempt, envelope.enqueued_at_ms) == ("t:0:7", 1, 5)
    assert envelope.max_attempts is None
    assert read(("job-id", b""), ("attempt", b"")).job_id == "t:0:7"


def test_what_a_producer_of_ours_writes_reads_back() -> None:
    written = JobEnvelope("j-1", "otp", 2, 99, max_attempts=4, due_at_ms=120, redrive=1)
    assert JobEnvelope.from_record(b"otp", written.headers(), fallback_id="x", timestamp_ms=0) == (
        JobEnvelope("j-1", "otp", 2, 99, max_attempts=4, due_at_ms=120, redrive=1)
    )


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("attempt", "²".encode(), "not a whole number"),
        ("attempt", "\u0661".encode(), "not a whole number"),
        ("attempt", b"-1", "not a whole number"),
        ("attempt", b"0", "outside 1..1000"),
        ("attempt", b"1" + b"0" * 30, "not a whole number"),
        ("attempt", b"1e3", "not a whole number"),
        ("attempt", b" 2", "not a whole number"),
        ("max-attempts", b"0", "outside 1..1000"),
        ("max-attempts", b"100000", "outside 1..1000"),
        ("max-attempts", b"\xff", "not valid UTF-8"),
        ("enqueued-at", b"99999999999999999", "not a whole number"),
        ("due-at", b"1000000000000001", "outside"),
        ("redrive", b"x", "not a whole number"),
        ("job-id", b"\xff\xfe", "not valid UTF-8"),
        ("job-id", b"a\nfake log line", "control"),
        ("job-id", b"x" * 201, "over the limit of 200"),
    ],
)
def test_headers_no_producer_of_ours_writes_are_refused(
    header: str, value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEnvelope, match=reason):
        read((header, value))


def test_a_repeated_envelope_header_is_refused_and_others_may_repeat() -> None:
    with pytest.raises(InvalidEnvelope, match="more than once"):
        read(("job-id", b"a"), ("job-id", b"b"))
    assert read(("trace", b"1"), ("trace", b"2")).job_id == "t:0:7"


def test_two_undecodable_ids_can_never_be_taken_for_one() -> None:
    # Decoded with replacement both would read "\ufffd\ufffd-1"; strict decoding refuses both.
    for raw in (b"\xff\xfe-1", b"\xfe\xff-1"):
        with pytest.raises(InvalidEnvelope):
            read(("job-id", raw))


def test_job_ids_and_names_are_safe_to_log() -> None:
    assert check_job_id("signup-1") == "signup-1"
    with pytest.raises(ValueError, match="empty"):
        check_job_id("")
    assert job_name_of(b"otp\r\nINFO forged") == "otp\\r\\nINFO forged"
    assert job_name_of(b"\xff") == "\\xff"
    assert job_name_of(None) == ""
    envelope = JobEnvelope.unreadable(b"otp", fallback_id="t:1:2", timestamp_ms=3)
    assert (envelope.job_id, envelope.job_name, envelope.attempt) == ("t:1:2", "otp", 1)
