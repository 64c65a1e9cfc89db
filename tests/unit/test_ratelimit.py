from pipeline.delivery.ratelimit import RateLimiter


def test_turns_are_spaced_by_the_rate_per_key() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.reserve("ep", rate=4) for _ in range(3)] == [0.0, 0.25, 0.5]
    assert limiter.reserve("other", rate=4) == 0.0
    now[0] += 10  # idle: no credit piles up, the next turn is now
    assert limiter.reserve("ep", rate=4) == 0.0
    assert limiter.reserve("ep", rate=4) == 0.25
