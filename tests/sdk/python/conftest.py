"""Fixtures for the Azure SDK suite: a running confab's connection string and its CA.

Nothing here configures the SDKs around their checks: the connection string is the one the
banner prints, and the dev CA reaches every client through REQUESTS_CA_BUNDLE, as a user
would set it.
"""
import os

import pytest
from azure.communication.identity import CommunicationIdentityClient


@pytest.fixture(scope="session")
def connection_string():
    cs = os.environ.get("CONFAB_CONNECTION_STRING")
    if not cs:
        pytest.fail("set CONFAB_CONNECTION_STRING to the connection string confab's banner prints")
    assert cs.startswith("endpoint=https://"), cs
    assert os.environ.get("REQUESTS_CA_BUNDLE"), "set REQUESTS_CA_BUNDLE to confab's dev CA (ca.pem)"
    return cs


@pytest.fixture(scope="session")
def endpoint(connection_string):
    return connection_string.split(";")[0].split("=", 1)[1]


@pytest.fixture(scope="session")
def identity(connection_string):
    return CommunicationIdentityClient.from_connection_string(connection_string)
