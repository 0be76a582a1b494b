"""Fixtures: a real app on a real SQLite file, and requests signed exactly the way Twilio signs
(the helpers themselves are in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from mbcsms import create_app
from mbcsms.catalog import Catalog
from mbcsms.conversation import Conversation
from tests.helpers import SendSms, app_env, post_signed

# The whole-suite scan for phone numbers in everything logged.
pytest_plugins = ["tests.log_scan"]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def conversation(catalog: Catalog) -> Conversation:
    return Conversation(catalog)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(app_env(tmp_path))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def send(client: FlaskClient) -> Iterator[SendSms]:
    def _send(body: str | None = "hello", **kwargs: object) -> TestResponse:
        return post_signed(client, body, **kwargs)  # type: ignore[arg-type]

    yield _send
