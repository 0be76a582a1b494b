"""Reading TwiML responses in tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from werkzeug.test import TestResponse


def messages(response: TestResponse) -> list[str]:
    """The <Message> bodies of a TwiML response (an empty list for an empty <Response/>)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return [element.text or "" for element in root.iter("Message")]


def one_message(response: TestResponse) -> str:
    bodies = messages(response)
    assert len(bodies) == 1, bodies
    return bodies[0]
