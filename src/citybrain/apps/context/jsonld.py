"""JSON-LD @context handling for NGSI-LD: fast term expansion and compaction (not a full JSON-LD processor).

The ETSI core @context (GS CIM 009 v1.8, Annex B) is embedded and always applies last, so its terms can
never be redefined by a user @context (clause 5.5.7). Unknown terms expand with the default vocabulary
https://uri.etsi.org/ngsi-ld/default-context/ unless a user @context sets its own @vocab.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from citybrain.apps.context.errors import BadRequestData, LdContextNotAvailable, UnsupportedMediaType

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = NGSI_LD + "default-context/"
CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE_CONTEXT_ALIASES = frozenset(
    {
        CORE_CONTEXT_URL,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        *(f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld" for minor in range(3, 8)),
    }
)
JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
CORE_CONTEXT_FILE = "ngsi-ld-core-context-v1.8.jsonld"

# A user context may reference other stored contexts; this bounds how deep that nesting may go.
MAX_CONTEXT_DEPTH = 8
# Compaction results are memoised per Context; the memo is dropped when it grows past this size.
COMPACT_CACHE_LIMIT = 4096
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")
_IGNORED_KEYWORDS = frozenset({"@version", "@protected", "@language", "@direction", "@base", "@propagate"})
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNQUOTED_PARAM = re.compile(r"[^\s;,\"]+")

ContextEntry = str | Mapping[str, Any] | Sequence[Any]
Resolver = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Term:
    """One resolved term definition: its IRI, optional @type coercion and whether it may act as a prefix."""

    iri: str
    type: str | None = None
    prefix: bool = False


def load_core_document() -> dict[str, Any]:
    """The embedded ETSI core @context document, freshly parsed (safe to modify or serve)."""
    text = (resources.files("citybrain.apps.context") / "data" / CORE_CONTEXT_FILE).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def is_absolute_uri(value: object) -> bool:
    """Whether the value is a string holding an absolute URI (RFC 3986 scheme ':' rest, no spaces)."""
    return isinstance(value, str) and _ABSOLUTE_URI.match(value) is not None


def _is_keyword(value: str) -> bool:
    return value.startswith("@")


class _TermBuilder:
    """Resolves raw term definitions to IRIs, following references between terms and prefixes."""

    def __init__(self, raw: Mapping[str, Any], vocab: str, base: Mapping[str, Term]) -> None:
        self.raw = raw
        self.vocab = vocab
        self.base = base
        self.done: dict[str, Term] = {}
        self.active: set[str] = set()

    def build(self) -> dict[str, Term]:
        """Resolve every raw definition."""
        for term in self.raw:
            self.resolve(term)
        return self.done

    def resolve(self, term: str) -> Term | None:
        """The definition of one term (raw first, then the base terms), None when it has none."""
        if term in self.done:
            return self.done[term]
        if term not in self.raw:
            return self.base.get(term)
        definition = self.raw[term]
        if definition is None:
            return None
        if term in self.active:
            raise BadRequestData(f"The @context term '{term}' is defined in a cycle")
        self.active.add(term)
        try:
            result = self._define(term, definition)
        finally:
            self.active.discard(term)
        self.done[term] = result
        return result

    def _define(self, term: str, definition: Any) -> Term:
        coerce: str | None = None
        if isinstance(definition, str):
            iri = self.expand_value(definition, term)
            return Term(iri, None, ":" not in term and iri.endswith(_GEN_DELIMS))
        if not isinstance(definition, Mapping):
            raise BadRequestData(f"The @context term '{term}' has an invalid definition")
        if "@context" in definition:
            raise BadRequestData(f"The @context term '{term}' has a scoped context, which NGSI-LD forbids")
        raw_id = definition.get("@id", term)
        raw_type = definition.get("@type")
        if not isinstance(raw_id, str) or (raw_type is not None and not isinstance(raw_type, str)):
            raise BadRequestData(f"The @context term '{term}' has an invalid @id or @type")
        if raw_type is not None:
            coerce = raw_type if _is_keyword(raw_type) else self.expand_value(raw_type, "")
        return Term(self.expand_value(raw_id, term), coerce, definition.get("@prefix") is True)

    def expand_value(self, value: str, term: str) -> str:
        """Expand the @id (or @type) value of the definition of term to an IRI."""
        if _is_keyword(value):
            return value
        if value != term:
            referenced = self.resolve(value)
            if referenced is not None:
                return referenced.iri
        if ":" in value:
            prefix, suffix = value.split(":", 1)
            if prefix != "_" and not suffix.startswith("//") and prefix != term:
                prefix_term = self.resolve(prefix)
                if prefix_term is not None and not _is_keyword(prefix_term.iri):
                    return prefix_term.iri + suffix
            return value
        return self.vocab + value


def _inverse(terms: Mapping[str, Term], start: Mapping[str, str] | None = None) -> dict[str, str]:
    """IRI -> the shortest (then alphabetically first) term that expands to it."""
    best: dict[str, str] = dict(start or {})
    for name, term in terms.items():
        if _is_keyword(term.iri) or ":" in name:
            continue
        current = best.get(term.iri)
        if current is None or (len(name), name) < (len(current), current):
            best[term.iri] = name
    return best


def _prefixes(terms: Mapping[str, Term]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, t.iri) for name, t in terms.items() if t.prefix and not _is_keyword(t.iri)))


def _load_core_terms() -> Mapping[str, Term]:
    definitions = dict(load_core_document()["@context"])
    vocab = definitions.pop("@vocab")
    for keyword in _IGNORED_KEYWORDS:
        definitions.pop(keyword, None)
    return MappingProxyType(_TermBuilder(definitions, vocab, {}).build())


CORE_TERMS: Mapping[str, Term] = _load_core_terms()
_CORE_INVERSE: Mapping[str, str] = MappingProxyType(_inverse(CORE_TERMS))
_CORE_PREFIXES = _prefixes(CORE_TERMS)


class Context:
    """An active @context: user term definitions with the core @context applied last."""

    __slots__ = ("_compacted", "_entries", "_inverse", "_prefixes", "_terms", "_urls", "_vocab")

    def __init__(self, entries: ContextEntry | None = None, resolver: Resolver | None = None) -> None:
        """Build from context entries (URLs, term-definition objects or lists); URLs go through resolver."""
        flat: list[Any] = []
        if entries is not None:
            _flatten(entries, flat)
        self._entries: tuple[Any, ...] = tuple(flat)
        self._urls = tuple(entry for entry in flat if isinstance(entry, str))
        raw: dict[str, Any] = {}
        vocab: list[str] = []
        for entry in flat:
            _collect(entry, resolver, raw, vocab, ())
        self._vocab = vocab[-1] if vocab else DEFAULT_VOCAB
        self._compacted: dict[str, str] = {}
        for name in CORE_TERMS:
            raw.pop(name, None)
        if not raw and self._vocab == DEFAULT_VOCAB:
            self._terms: Mapping[str, Term] = CORE_TERMS
            self._inverse: Mapping[str, str] = _CORE_INVERSE
            self._prefixes = _CORE_PREFIXES
            return
        user_terms = _TermBuilder(raw, self._vocab, CORE_TERMS).build()
        self._terms = {**user_terms, **CORE_TERMS}
        self._inverse = _inverse(user_terms, _CORE_INVERSE)
        self._prefixes = tuple(sorted(_CORE_PREFIXES + _prefixes(user_terms)))

    @property
    def urls(self) -> tuple[str, ...]:
        """The @context URLs this context was built from, in order (empty: the core @context only)."""
        return self._urls

    @property
    def vocab(self) -> str:
        """The vocabulary IRI unknown terms expand with."""
        return self._vocab

    def as_json(self) -> Any:
        """The value to send as "@context" in an application/ld+json response body."""
        if not self._entries:
            return CORE_CONTEXT_URL
        if any(isinstance(e, str) and e in CORE_CONTEXT_ALIASES for e in self._entries):
            return list(self._entries)
        return [*self._entries, CORE_CONTEXT_URL]

    def term(self, name: str) -> Term | None:
        """The definition of a term, or None when the term is not defined."""
        return self._terms.get(name)

    def expand(self, term: str) -> str:
        """The IRI of a term, compact IRI or absolute IRI (absolute IRIs pass through unchanged)."""
        defined = self._terms.get(term)
        if defined is not None:
            return defined.iri
        if ":" in term:
            prefix, suffix = term.split(":", 1)
            if prefix != "_" and not suffix.startswith("//"):
                prefix_term = self._terms.get(prefix)
                if prefix_term is not None and not _is_keyword(prefix_term.iri):
                    return prefix_term.iri + suffix
            return term
        return self._vocab + term

    def compact(self, iri: str) -> str:
        """The shortest term or compact IRI this context offers for an IRI, else the IRI itself."""
        cached = self._compacted.get(iri)
        if cached is None:
            cached = self._compact(iri)
            if len(self._compacted) >= COMPACT_CACHE_LIMIT:
                self._compacted.clear()
            self._compacted[iri] = cached
        return cached

    def expand_type(self, name: str) -> str:
        """The IRI of an entity or attribute type name (types follow the same rules as terms)."""
        return self.expand(name)

    def compact_type(self, iri: str) -> str:
        """The short name of a type IRI."""
        return self.compact(iri)

    def _compact(self, iri: str) -> str:
        term = self._inverse.get(iri)
        if term is not None:
            return term
        if iri.startswith(self._vocab):
            suffix = iri[len(self._vocab) :]
            if suffix and ":" not in suffix and self.expand(suffix) == iri:
                return suffix
        best: str | None = None
        for name, prefix_iri in self._prefixes:
            if iri.startswith(prefix_iri) and len(iri) > len(prefix_iri):
                candidate = f"{name}:{iri[len(prefix_iri) :]}"
                if candidate in self._terms or self.expand(candidate) != iri:
                    continue
                if best is None or (len(candidate), candidate) < (len(best), best):
                    best = candidate
        return best if best is not None else iri


def _flatten(entries: ContextEntry, out: list[Any]) -> None:
    if isinstance(entries, str | Mapping):
        out.append(entries)
    elif isinstance(entries, Sequence):
        for entry in entries:
            _flatten(entry, out)
    else:
        raise BadRequestData("A @context entry must be a URL, an object or an array of those")


def _collect(
    entry: Any, resolver: Resolver | None, raw: dict[str, Any], vocab: list[str], trail: tuple[str, ...]
) -> None:
    """Merge one context entry's definitions into raw (later definitions win) and note its @vocab."""
    if isinstance(entry, str):
        if entry in CORE_CONTEXT_ALIASES:
            return
        if not is_absolute_uri(entry):
            raise BadRequestData(f"The @context entry {entry!r} is not an absolute URL")
        if entry in trail or len(trail) >= MAX_CONTEXT_DEPTH:
            raise BadRequestData(f"The @context {entry} references itself or is nested too deeply")
        document = resolver(entry) if resolver is not None else None
        if document is None:
            raise LdContextNotAvailable(f"The @context {entry} is not available to this broker")
        if not isinstance(document, Mapping):
            raise BadRequestData(f"The @context {entry} is not a JSON object")
        inner = document.get("@context", document)
        nested: list[Any] = []
        _flatten(inner, nested)
        for item in nested:
            _collect(item, resolver, raw, vocab, (*trail, entry))
        return
    if not isinstance(entry, Mapping):
        raise BadRequestData("A @context entry must be a URL, an object or an array of those")
    for key, definition in entry.items():
        if not isinstance(key, str) or not key:
            raise BadRequestData("A @context term must be a non-empty string")
        if key == "@vocab":
            if definition is not None and not is_absolute_uri(definition):
                raise BadRequestData("@vocab must be an absolute IRI")
            if definition is not None:
                vocab.append(definition)
        elif key in _IGNORED_KEYWORDS:
            continue
        elif _is_keyword(key):
            raise BadRequestData(f"The @context keyword {key} is not supported")
        elif definition is not None and not isinstance(definition, str | Mapping):
            raise BadRequestData(f"The @context term '{key}' has an invalid definition")
        else:
            raw.pop(key, None)
            raw[key] = definition


def parse_link_header(value: str) -> str | None:
    """The URL of the JSON-LD @context Link (rel="http://www.w3.org/ns/json-ld#context"), if any."""
    found = [
        url for url, params in _parse_links(value) if JSONLD_CONTEXT_REL in params.get("rel", "").split()
    ]
    if not found:
        return None
    if len(found) > 1:
        raise BadRequestData("The Link header holds more than one JSON-LD @context link")
    if not is_absolute_uri(found[0]):
        raise BadRequestData(f"The JSON-LD @context link {found[0]!r} is not an absolute URL")
    return found[0]


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _parse_links(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse an RFC 8288 Link header into (target, parameters) pairs; a syntax error is BadRequestData."""
    links: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while True:
        pos = _skip_spaces(value, pos)
        if pos >= len(value):
            return links
        if value[pos] == ",":
            pos += 1
            continue
        end = value.find(">", pos)
        if value[pos] != "<" or end < 0:
            raise BadRequestData(f"Malformed Link header: expected <URL> at position {pos}")
        url = value[pos + 1 : end].strip()
        params: dict[str, str] = {}
        pos = _skip_spaces(value, end + 1)
        while pos < len(value) and value[pos] != ",":
            if value[pos] != ";":
                raise BadRequestData(f"Malformed Link header: expected ';' at position {pos}")
            name = _TOKEN.match(value, _skip_spaces(value, pos + 1))
            if name is None:
                raise BadRequestData(f"Malformed Link header: expected a parameter name after position {pos}")
            pos = _skip_spaces(value, name.end())
            param = ""
            if pos < len(value) and value[pos] == "=":
                param, pos = _parse_param_value(value, _skip_spaces(value, pos + 1))
            params.setdefault(name.group().lower(), param)
            pos = _skip_spaces(value, pos)
        links.append((url, params))


def _parse_param_value(value: str, pos: int) -> tuple[str, int]:
    if pos < len(value) and value[pos] == '"':
        chars: list[str] = []
        pos += 1
        while pos < len(value):
            char = value[pos]
            if char == "\\" and pos + 1 < len(value):
                chars.append(value[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(chars), pos + 1
            else:
                chars.append(char)
                pos += 1
        raise BadRequestData("Malformed Link header: unterminated quoted string")
    match = _UNQUOTED_PARAM.match(value, pos)
    if match is None:
        raise BadRequestData(f"Malformed Link header: expected a parameter value at position {pos}")
    return match.group(), match.end()


def media_type(content_type: str | None) -> str | None:
    """The bare, lower-cased media type of a Content-Type header value (parameters dropped)."""
    if content_type is None or not content_type.strip():
        return None
    return content_type.split(";", 1)[0].strip().lower()


def context_from_request(
    content_type: str | None, link_header: str | None, body_context: Any, resolver: Resolver | None
) -> Context:
    """The @context of a request (clause 6.3.5): from the Link header for JSON, from the body for JSON-LD."""
    # content_type is None for requests without a body (GET, DELETE); body_context is the value of the
    # body's "@context" member, or None when the body has none.
    kind = media_type(content_type)
    link = parse_link_header(link_header) if link_header else None
    if kind in (None, "application/json", "application/merge-patch+json"):
        if body_context is not None:
            raise BadRequestData(
                "A request body sent as application/json must not contain @context; "
                "send the @context in a Link header or use application/ld+json"
            )
        return Context([link] if link else None, resolver)
    if kind == "application/ld+json":
        if link is not None:
            raise BadRequestData(
                "A request sent as application/ld+json must carry its @context in the body, "
                "not in a Link header"
            )
        if body_context is None:
            raise BadRequestData("A request body sent as application/ld+json must contain @context")
        return Context(body_context, resolver)
    raise UnsupportedMediaType(f"Content-Type {content_type} is not application/json nor application/ld+json")
