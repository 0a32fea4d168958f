import pytest
import time_machine

from tests.mailboxes.router_import.routers import NOW, Contoso, build_contoso


@pytest.fixture
def contoso(db) -> Contoso:
    return build_contoso()


@pytest.fixture
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield NOW
