"""The one API error shape, for domain errors, lost databases and unknown URLs."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from tourapp.exceptions import api_exception_handler


def test_a_lost_database_connection_is_a_503_with_retry_after_not_a_500():
    # given the database connection dropped under a view
    error = OperationalError("terminating connection due to administrator command")
    # when the API handles it
    response = api_exception_handler(error, {})
    # then the client is told to retry, in the usual error shape
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["error"]["code"] == "service_unavailable"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/bookings/null,null/", "/api/no-such-thing/", "/api/bookings/1/cancel/x/"])
def test_unknown_api_urls_get_the_json_error_shape(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


@pytest.mark.django_db
def test_unknown_urls_outside_the_api_keep_djangos_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
