"""Masking personal data (phone and ID numbers) wherever it leaves its owner."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str | None:
    """Keep the first 3 and last 4 digits of a phone number: 138****5678."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_id_number(number: str | None) -> str | None:
    """Keep the first 6 (region) and last 4 characters of a resident ID number."""
    if not number:
        return number
    text = number.strip()
    if len(text) <= 10:
        return "*" * len(text)
    return f"{text[:6]}{'*' * (len(text) - 10)}{text[-4:]}"


def mask_email(email: str | None) -> str | None:
    """Keep the first character of the local part and the domain: z***@example.cn."""
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"
