"""The admin keeps the appointment rules the API keeps."""

from __future__ import annotations

import pytest
from django.test import Client

from crm.models import Appointment
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/admin/crm/appointment/add/"


def _form(**parties: str) -> dict[str, str]:
    data = {
        "subject": "Board meeting",
        "status": "open",
        "show_as": "busy",
        "start_0": "2026-06-01",
        "start_1": "10:00:00",
        "start_time_zone": "Europe/Berlin",
        "end_0": "2026-06-01",
        "end_1": "11:00:00",
        "end_time_zone": "Europe/Berlin",
        "parties-TOTAL_FORMS": "1" if parties else "0",
        "parties-INITIAL_FORMS": "0",
        "exceptions-TOTAL_FORMS": "0",
        "exceptions-INITIAL_FORMS": "0",
    }
    data.update({f"parties-0-{name}": value for name, value in parties.items()})
    return data


@pytest.fixture
def admin_client(world) -> Client:
    client = Client()
    client.force_login(world["admin"].login)
    return client


def test_the_admin_refuses_an_appointment_without_an_organizer(admin_client):
    response = admin_client.post(URL, _form())

    assert response.status_code == 200
    assert "An appointment needs an organizer." in response.content.decode()
    assert not Appointment.objects.filter(subject="Board meeting").exists()


def test_the_admin_saves_an_appointment_with_its_organizer_resolved_to_a_contact(admin_client):
    chair = factories.contact(last_name="Chair", email="chair@board.test")

    response = admin_client.post(URL, _form(role="organizer", contact=str(chair.pk)))

    assert response.status_code == 302, response.content.decode()[:3000]
    saved = Appointment.objects.get(subject="Board meeting")
    organizer = saved.parties.get()
    assert (organizer.address, organizer.record) == ("chair@board.test", chair)
