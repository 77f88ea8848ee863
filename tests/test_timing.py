"""funcnn.timing against functions whose cost is known: sleeping (wall time, no CPU time) and counted calls."""

import time

import jax
import jax.numpy as jnp
import pytest

from funcnn import timing


def counting(seconds: float = 0.0):
    """fn() sleeping `seconds` and counting its calls in fn.calls."""

    out = jnp.zeros(())

    def fn():
        fn.calls += 1
        if seconds:
            time.sleep(seconds)
        return out

    fn.calls = 0
    return fn


def test_summarize_is_the_median_of_the_clean_runs_else_of_all():
    runs = [timing.Run(1.0, 0.95), timing.Run(5.0, 0.2), timing.Run(2.0, 0.91), timing.Run(4.0, 1.0)]
    assert timing.summarize(runs, 3, 0.9) == timing.Timing(2.0, tuple(runs), 3, False)
    assert timing.summarize(runs, 4, 0.9) == timing.Timing(3.0, tuple(runs), 3, True)  # 1, 2, 4, 5
    assert timing.summarize(runs, 4, 0.0).seconds == 3.0 and not timing.summarize(runs, 4, 0.0).noisy


def test_a_sleeping_function_takes_its_wall_time_and_no_cpu():
    fn = counting(0.002)
    t0 = time.perf_counter()
    r = timing.timed_run(fn, 5)
    wall = time.perf_counter() - t0
    assert fn.calls == 5 and 0.002 <= r.seconds <= wall / 5 and r.cpu_share < 0.5  # seconds per call


def test_calibrate_finds_a_run_of_at_least_min_seconds():
    fn = counting(0.001)
    n, per_call = timing.calibrate(fn, 0.006)
    assert n >= 2 and n * per_call >= 0.006 and per_call >= 0.001
    assert fn.calls >= 1 + n  # the first (compiling) call, then the run found
    assert timing.calibrate(counting(), 0.0)[0] == 1


def test_min_share_0_times_exactly_repeats_runs_and_unreachable_shares_give_noisy_timings():
    fns = [counting(), counting()]
    ts = timing.interleaved(fns, [3, 1], 4)
    assert [len(t.runs) for t in ts] == [4, 4] and [fn.calls for fn in fns] == [12, 4]
    assert all(t.clean == 4 and not t.noisy for t in ts)
    # a sleeping function never has the core: every try is spent, then the median of all runs
    t = timing.interleaved([counting(0.001)], [1], 2, min_share=0.9, max_rounds=3)[0]
    assert len(t.runs) == 6 and t.clean == 0 and t.noisy and t.seconds >= 0.001


def test_time_calls_and_seconds_per_call():
    fn = counting()
    t = timing.time_calls(fn, repeats=3, min_seconds=0)
    assert fn.calls == 1 + 3 and len(t.runs) == 3  # a warm-up call, then one call per run
    fn = counting(0.002)
    t0 = time.perf_counter()
    s = timing.seconds_per_call(fn, repeats=3, min_seconds=0.005)
    assert 0.002 <= s and 2 * s <= time.perf_counter() - t0  # two of the 3 runs took >= s per call
    # a pytree result is blocked on too
    assert timing.seconds_per_call(lambda: {"a": jnp.ones(2)}, 2, 0) > 0


def test_clean_share_and_device_name():
    assert timing.clean_share("cpu") == timing.CLEAN == 0.9 and timing.clean_share("tpu") == 0.0
    assert timing.clean_share() == timing.clean_share(jax.default_backend())
    assert timing.device_name()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: timing.timed_run(counting(), 0), "calls must be an integer >= 1"),
        (lambda: timing.calibrate(counting(), -1.0), "min_seconds must be a number >= 0"),
        (lambda: timing.time_calls(counting(), 3, float("nan")), "min_seconds must be a number >= 0"),
        (lambda: timing.interleaved([counting()], [1, 2], 3), "one count per function"),
        (lambda: timing.interleaved([counting()], [1], 0), "repeats must be an integer >= 1"),
        (lambda: timing.summarize([], 3, 0.9), "at least one Run"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
