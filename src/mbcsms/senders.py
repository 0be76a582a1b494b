"""Who wrote, as a keyed hash: phone numbers are health data and are never stored or logged."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

_CHANNEL = re.compile(r"^[a-z]+:", re.IGNORECASE)
_NOT_DIGIT = re.compile(r"[^0-9]")


def normalise_address(address: str) -> str:
    """``whatsapp:+1 (555) 010-0000`` -> ``+15550100000``.

    The channel prefix is dropped on purpose: an opt-out sent by SMS also holds on WhatsApp.
    """
    number = _CHANNEL.sub("", address.strip())
    digits = _NOT_DIGIT.sub("", number)
    return ("+" + digits) if digits else number.casefold()


def keyed_hash(secret: str, value: str, purpose: str) -> str:
    """HMAC-SHA256 of ``value``; ``purpose`` keeps a sender key from equalling a message key."""
    return hmac.digest(secret.encode(), f"{purpose}:{value}".encode(), "sha256").hex()


def sender_key(secret: str, address: str) -> str:
    return keyed_hash(secret, normalise_address(address), "sender")


def message_key(secret: str, message_sid: str, sender: str, body: str) -> str:
    """What makes a message a retry of one already answered: Twilio retries with the same
    MessageSid, sender and body. A reused or made-up sid with another sender or another body
    is a new message, never a replay of someone else's reply (nor a STOP lost as a "retry")."""
    return keyed_hash(secret, f"{message_sid}\0{sender}\0{body}", "message")


@lru_cache(maxsize=8)
def key_id(secret: str) -> str:
    """Which secret a stored sender key was made with, without the secret: 8 hex characters of
    an HMAC of a constant. ``mbcsms keys`` counts rows per key id, so an operator can tell when
    no row is left under an old secret."""
    return hmac.new(secret.encode(), b"key-id", hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True)
class SenderKeys:
    """One sender under the current secret, and under each previous one (newest first), for a
    rotation of MBCSMS_SECRET: a row found under an older key is re-keyed to ``current``."""

    current: str
    key_id: str
    previous: tuple[str, ...] = ()

    @classmethod
    def of(cls, address: str, secret: str, previous_secrets: tuple[str, ...] = ()) -> SenderKeys:
        return cls(
            sender_key(secret, address), key_id(secret),
            tuple(sender_key(old, address) for old in previous_secrets),
        )

    @property
    def all(self) -> tuple[str, ...]:
        return (self.current, *self.previous)
