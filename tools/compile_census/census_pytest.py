"""pytest plugin (`PYTEST_PLUGINS=census_pytest`): writes the census at the end of each session, since
pytest-xdist's workers exit without running atexit handlers."""

import sitecustomize


def pytest_sessionfinish(session, exitstatus):
    sitecustomize.write()
