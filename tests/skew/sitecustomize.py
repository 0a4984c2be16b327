"""A machine whose wall clock is off (``WPFLEET_TEST_SKEW`` seconds): loaded by a test agent's Python
through ``PYTHONPATH``. Only the wall clock the agent reads (``SystemClock.now``) moves: monotonic time
and sleeps stay true, as on a real machine with a wrong clock. (libfaketime cannot do this for Python
here: with monotonic time faked every timed wait hangs, without it every sleep fails with EINVAL.)"""

import os
from datetime import timedelta

SKEW = float(os.environ.get("WPFLEET_TEST_SKEW", "0"))
if SKEW:
    from agent import clock

    _true_now = clock.SystemClock.now
    clock.SystemClock.now = lambda self: _true_now(self) + timedelta(seconds=SKEW)  # type: ignore[method-assign]
