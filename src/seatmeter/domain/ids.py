"""Identifiers and secrets. Ids carry a short prefix that says what they name; keys are random and shown once."""

from __future__ import annotations

import hashlib
import os
import secrets

__all__ = ["hash_key", "new_id", "new_key"]


def new_id(prefix: str) -> str:
    # secrets.token_hex(10), without its two Python frames: three ids on every authorize + settle.
    return f"{prefix}_{os.urandom(10).hex()}"


def new_key() -> str:
    return f"sm_{secrets.token_urlsafe(30)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
