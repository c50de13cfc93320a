"""Translation catalogues (Babel .po files, zh-CN first) merged from the kernel and every app."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = ("zh_CN", "en")
LOCALE_NAMES = {"zh_CN": "中文", "en": "English"}
DOMAIN = "messages"


class I18n:
    """The merged catalogue of every locale; msgids are English source strings."""

    def __init__(self, locale_dirs: Iterable[Path]) -> None:
        """Compile each directory's `<locale>/LC_MESSAGES/messages.po` in memory and merge them."""
        self._translations: dict[str, NullTranslations] = {}
        dirs = [d for d in locale_dirs if d.is_dir()]
        for locale in LOCALES:
            merged: Translations | None = None
            for directory in dirs:
                po = directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
                if not po.is_file():
                    continue
                with po.open("rb") as fh:
                    catalog = read_po(fh, locale=locale)
                buffer = io.BytesIO()
                write_mo(buffer, catalog)
                buffer.seek(0)
                part = Translations(buffer, domain=DOMAIN)
                merged = part if merged is None else merged.merge(part)
            self._translations[locale] = merged or NullTranslations()

    def get(self, locale: str) -> NullTranslations:
        """The translations of a locale (English falls through to the source strings)."""
        return self._translations.get(locale) or NullTranslations()

    def gettext(self, locale: str, message: str, **params: Any) -> str:
        """Translate and format a message."""
        text = self.get(locale).gettext(message)
        return text.format(**params) if params else text


def negotiate(requested: str | None, default: str) -> str:
    """Pick a supported locale from a cookie or query value."""
    if requested:
        normalized = requested.replace("-", "_")
        for locale in LOCALES:
            if normalized.lower() == locale.lower() or normalized.lower().startswith(locale.lower()[:2]):
                return locale
    return default
