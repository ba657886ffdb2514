"""Fixtures of the fault tier: a Cluster of real processes (always killed at the end) and a deployed approval."""

from __future__ import annotations

import pytest

from engine.definitions import Bundle
from tests.engine import bpmn_samples as samples
from tests.reliability.harness import Cluster

# Reminder after 1 working day, escalations at the deadline and 2 working days after it.
LADDER = {"due": "2wd", "remind_before": "1wd",
          "escalate": [{"after": "0wd", "notify": "supervisor"}, {"after": "2wd", "notify": "supervisor"}]}


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: fault-injection tier (real processes; slow, still in make test)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def cluster(tmp_path, db_url, clock, request):
    """Real `dieuphoi` processes on this test's database; every one is SIGKILLed at teardown."""
    c = Cluster(tmp_path, db_url)
    c.set_clock(clock.now())
    yield c
    failed = getattr(request.node, "rep_call", None)
    c.close()
    if failed is not None and failed.failed:
        print(c.tails())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def deploy_approval(engine, *, boundary: str | None = None, ladder: dict | None = LADDER) -> None:
    descriptor = {"key": "duyet", "tasks": {"submit": ladder}} if ladder else None
    b = Bundle(key="duyet", descriptor=descriptor) if descriptor else Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary=boundary)}
    engine.deploy_bundle(b)
