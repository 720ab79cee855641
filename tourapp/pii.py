"""Masking of personal data, the one masker every app uses: email addresses and phone numbers never
appear in clear in logs, the admin or stored summaries.

Total functions: any string (empty, no ``@``, an empty local part) gives a masked string, never an
exception, so a malformed address cannot break a log line or an admin page.
"""

from __future__ import annotations


def mask_email(address: str) -> str:
    """``user@example.com`` -> ``u***@example.com``; without ``@`` -> ``***``."""
    local, sep, domain = address.strip().partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """``+33612345678`` -> ``+33*******78`` (country prefix and last two digits kept)."""
    digits = number.strip()
    if len(digits) <= 5:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]
