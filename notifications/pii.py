"""Masking of personal data: email addresses and phone numbers never appear in clear in logs or the admin."""

from __future__ import annotations


def mask_email(address: str) -> str:
    """``user@example.com`` -> ``u***@example.com``."""
    local, sep, domain = address.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """``+33612345678`` -> ``+33*******78`` (country prefix and last two digits kept)."""
    digits = number.strip()
    if len(digits) <= 5:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]
