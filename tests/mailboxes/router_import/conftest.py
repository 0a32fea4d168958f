import pytest
import time_machine
from django.test import Client

from tests import factories
from tests.mailboxes.router_import.routers import NOW, Contoso, build_contoso


@pytest.fixture
def contoso(db) -> Contoso:
    return build_contoso()


@pytest.fixture
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def admin_client(contoso: Contoso) -> Client:
    """An administrator signed in to the pages, in Contoso's organization."""
    client = Client()
    client.force_login(factories.login_user("root", administrator=True))
    return client
