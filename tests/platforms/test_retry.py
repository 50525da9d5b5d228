"""The inbound loops' retry streak: the delay function it is handed, Retry-After as a floor."""

from __future__ import annotations

from platforms.retry import STEADY_RETRY_SECONDS, RetryStreak


def test_the_streak_numbers_retries_from_one_and_honours_retry_after() -> None:
    streak = RetryStreak(lambda n: 2.0 ** n)
    assert [streak.next_delay(), streak.next_delay()] == [2.0, 4.0]
    assert streak.next_delay(retry_after=30.0) == 30.0
    assert streak.next_delay(retry_after=1.0) == 16.0
    streak.reset()
    assert streak.next_delay() == 2.0


def test_without_a_formula_it_retries_steadily() -> None:
    streak = RetryStreak()
    assert {streak.next_delay() for _ in range(5)} == {STEADY_RETRY_SECONDS}
