"""The ceiling for this stack: Flask under the same gunicorn settings, answering every POST with
one static TwiML and doing nothing else (no signature check, no understanding, no state).

``bench/load.py`` runs it as ``bare_app:app`` in place of ``mbcsms:create_app()``.
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    "Thank you for your message. Reply with a number for a topic.</Message></Response>"
)

app = Flask(__name__)


# Any path, so the readiness probe and wrk can both use POST /sms as against the real app.
@app.post("/", defaults={"path": ""})
@app.post("/<path:path>")
def answer(path: str) -> Response:
    return Response(TWIML, status=200, content_type="text/xml; charset=utf-8")
