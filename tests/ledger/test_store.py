"""The ledger's value types: rows name their fields, and counts add field by field."""

from app.ledger.store import Counts, DayRow, Row, by_day


def test_counts_add_field_by_field() -> None:
    assert Counts(1, 2, 3, 4).plus(Counts(requests=1, units=6)) == Counts(2, 2, 3, 10)
    assert Counts(1, 2, 3, 4).tokens == 5
    assert Counts() == (0, 0, 0, 0)


def test_hour_rows_sum_into_day_rows_with_their_last_hour() -> None:
    first = Row(24, "alice", "openai.responses", "gpt-4.1", 1, 10, 20, 0)
    rows = [first, first._replace(hour=30, requests=2), first._replace(hour=48, key="bob")]
    assert first.counts == Counts(1, 10, 20, 0)
    assert by_day(rows) == [
        DayRow(1, "alice", "openai.responses", "gpt-4.1", 3, 20, 40, 0, 30),
        DayRow(2, "bob", "openai.responses", "gpt-4.1", 1, 10, 20, 0, 48),
    ]
