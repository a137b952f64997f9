"""Fixtures of the integration tests: a dev cluster per test module (or per
test), always torn down (`pstore-dev down`, lazy unmount, data removed) even
when the test fails."""

import os

import pytest

from pstorelib import DevCluster


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        skip = pytest.mark.skip(reason="needs root and /dev/fuse for FUSE mounts")
        for it in items:
            it.add_marker(skip)


@pytest.fixture
def make_cluster():
    """Factory: make_cluster(vendors=4, copies=2, lease_ms=..., ...) -> started
    DevCluster; every cluster made is destroyed at the end of the test."""
    made = []

    def make(**kw):
        c = DevCluster(**kw)
        made.append(c)
        c.up()
        return c

    yield make
    for c in made:
        c.destroy()


def module_cluster(**kw):
    """A module-scoped cluster fixture: `cluster = module_cluster(copies=2)`."""
    @pytest.fixture(scope="module")
    def fixture():
        c = DevCluster(**kw)
        try:
            c.up()
            yield c
        finally:
            c.destroy()
    return fixture
