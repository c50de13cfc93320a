"""@context handling: core terms, user contexts, compaction, Link headers and the request rules of 6.3.5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citybrain.apps.context.errors import (
    BadRequestData,
    LdContextNotAvailable,
    NgsiError,
    NotAcceptable,
    ResourceNotFound,
    UnsupportedMediaType,
)
from citybrain.apps.context.jsonld import (
    CORE_CONTEXT_URL,
    CORE_TERMS,
    DEFAULT_VOCAB,
    Context,
    context_from_request,
    load_core_document,
    parse_link_header,
)

NGSI = "https://uri.etsi.org/ngsi-ld/"
SDM = "https://smartdatamodels.org/"
USER_URL = "https://contexts.citybrain.example/air-quality.jsonld"
OTHER_URL = "https://contexts.citybrain.example/other.jsonld"
STORE: dict[str, dict[str, Any]] = {
    USER_URL: {
        "@context": {
            "sdm": SDM,
            "AirQualityObserved": "sdm:dataModel.Environment/AirQualityObserved",
            "pm25": "sdm:pm25",
            "location": "https://example.org/not-the-core-location",
        }
    },
    OTHER_URL: {"@context": [USER_URL, {"pm25": "https://other.example/pm25", "no2": "sdm:no2"}]},
}
LINK = f'<{USER_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def resolver(url: str) -> Mapping[str, Any] | None:
    """The broker's store of user contexts, as a plain dict."""
    return STORE.get(url)


@pytest.mark.parametrize(
    ("term", "iri"),
    [
        ("location", NGSI + "location"),
        ("observationSpace", NGSI + "observationSpace"),
        ("Property", NGSI + "Property"),
        ("GeoProperty", NGSI + "GeoProperty"),
        ("Relationship", NGSI + "Relationship"),
        ("observedAt", NGSI + "observedAt"),
        ("unitCode", NGSI + "unitCode"),
        ("value", NGSI + "hasValue"),
        ("object", NGSI + "hasObject"),
        ("languageMap", NGSI + "hasLanguageMap"),
        ("json", NGSI + "hasJSON"),
        ("description", "http://purl.org/dc/terms/description"),
        ("Point", "https://purl.org/geojson/vocab#Point"),
        ("id", "@id"),
        ("type", "@type"),
    ],
)
def test_core_terms_expand(term: str, iri: str) -> None:
    assert Context().expand(term) == iri


def test_core_document_is_the_v18_context() -> None:
    document = load_core_document()["@context"]
    assert document["@vocab"] == DEFAULT_VOCAB
    assert document["@protected"] is True
    assert document["ngsi-ld"] == NGSI
    assert document["datasetId"] == {"@id": "ngsi-ld:datasetId", "@type": "@id"}
    assert CORE_TERMS["observedAt"].type == NGSI + "DateTime"
    assert CORE_TERMS["ngsi-ld"].prefix is True


def test_unknown_term_uses_default_context_and_compacts_back() -> None:
    ctx = Context()
    assert ctx.expand("temperature") == DEFAULT_VOCAB + "temperature"
    assert ctx.compact(DEFAULT_VOCAB + "temperature") == "temperature"
    assert ctx.compact_type(ctx.expand_type("Vehicle")) == "Vehicle"


def test_absolute_iris_pass_through_and_unknown_iris_stay_full() -> None:
    ctx = Context()
    assert ctx.expand("https://example.org/speed") == "https://example.org/speed"
    assert ctx.expand("urn:ngsi-ld:Thing:1") == "urn:ngsi-ld:Thing:1"
    assert ctx.compact("https://example.org/speed") == "https://example.org/speed"


def test_core_prefix_gives_compact_iris() -> None:
    ctx = Context()
    assert ctx.expand("ngsi-ld:custom") == NGSI + "custom"
    assert ctx.compact(NGSI + "custom") == "ngsi-ld:custom"
    assert ctx.compact(NGSI + "location") == "location"


def test_inline_user_context_overrides_default_vocabulary() -> None:
    ctx = Context([{"sdm": SDM, "pm25": "sdm:pm25", "AirQualityObserved": SDM + "AirQualityObserved"}])
    assert ctx.expand("pm25") == SDM + "pm25"
    assert ctx.compact(SDM + "pm25") == "pm25"
    assert ctx.expand_type("AirQualityObserved") == SDM + "AirQualityObserved"
    assert ctx.compact_type(SDM + "AirQualityObserved") == "AirQualityObserved"
    assert ctx.expand("temperature") == DEFAULT_VOCAB + "temperature"


def test_user_context_never_overrides_core_terms() -> None:
    ctx = Context([{"location": "https://example.org/loc", "Property": "https://example.org/P"}])
    assert ctx.expand("location") == NGSI + "location"
    assert ctx.expand("Property") == NGSI + "Property"
    assert ctx.compact(NGSI + "location") == "location"
    assert ctx.compact("https://example.org/loc") == "https://example.org/loc"


def test_stored_context_url_goes_through_the_resolver() -> None:
    ctx = Context([USER_URL], resolver)
    assert ctx.expand("pm25") == SDM + "pm25"
    assert ctx.expand("AirQualityObserved") == SDM + "dataModel.Environment/AirQualityObserved"
    assert ctx.expand("location") == NGSI + "location"
    assert ctx.urls == (USER_URL,)


def test_list_of_url_and_inline_later_entries_win() -> None:
    ctx = Context([USER_URL, {"pm25": "https://override.example/pm25", "o3": "sdm:o3"}], resolver)
    assert ctx.expand("pm25") == "https://override.example/pm25"
    assert ctx.expand("o3") == SDM + "o3"
    assert ctx.compact(SDM + "o3") == "o3"
    assert ctx.urls == (USER_URL,)


def test_stored_context_may_reference_other_stored_contexts() -> None:
    ctx = Context(OTHER_URL, resolver)
    assert ctx.expand("pm25") == "https://other.example/pm25"
    assert ctx.expand("no2") == SDM + "no2"
    assert ctx.expand("AirQualityObserved") == SDM + "dataModel.Environment/AirQualityObserved"


def test_resolver_may_return_bare_term_definitions() -> None:
    ctx = Context(["https://bare.example/ctx"], lambda url: {"speed": "https://bare.example/speed"})
    assert ctx.expand("speed") == "https://bare.example/speed"


def test_core_context_urls_need_no_resolver() -> None:
    for minor in range(3, 9):
        url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld"
        assert Context([url]).expand("location") == NGSI + "location"
    assert Context(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]).expand("Property")


def test_unknown_url_is_ld_context_not_available() -> None:
    with pytest.raises(LdContextNotAvailable) as error:
        Context(["https://unknown.example/ctx.jsonld"], resolver)
    assert "https://unknown.example/ctx.jsonld" in error.value.detail
    assert error.value.problem()["type"] == "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"
    with pytest.raises(LdContextNotAvailable):
        Context([USER_URL])


def test_prefixes_and_compact_iris() -> None:
    ctx = Context([{"sdm": SDM, "env": SDM + "dataModel.Environment/", "pm25": "sdm:pm25"}])
    assert ctx.expand("sdm:pm10") == SDM + "pm10"
    assert ctx.compact(SDM + "pm10") == "sdm:pm10"
    assert ctx.compact(SDM + "dataModel.Environment/NoiseLevel") == "env:NoiseLevel"
    assert ctx.compact(SDM + "pm25") == "pm25"
    assert ctx.expand("sdm://host/path") == "sdm://host/path"


def test_expanded_term_definitions_and_prefix_flag() -> None:
    ctx = Context(
        [
            {
                "ex": {"@id": "https://ex.example/", "@prefix": True},
                "speed": {"@id": "ex:speed", "@type": "https://www.w3.org/2001/XMLSchema#double"},
                "owner": {"@id": "https://ex.example/owner", "@type": "@id"},
                "noPrefix": {"@id": "https://np.example/"},
            }
        ]
    )
    assert ctx.expand("speed") == "https://ex.example/speed"
    owner = ctx.term("owner")
    assert owner is not None and owner.type == "@id"
    assert ctx.compact("https://ex.example/other") == "ex:other"
    assert ctx.compact("https://np.example/thing") == "https://np.example/thing"


def test_user_vocab_replaces_default_context() -> None:
    ctx = Context([{"@vocab": "https://vocab.example/"}])
    assert ctx.expand("speed") == "https://vocab.example/speed"
    assert ctx.compact("https://vocab.example/speed") == "speed"
    assert ctx.expand("location") == NGSI + "location"
    assert ctx.compact(DEFAULT_VOCAB + "speed") == "ngsi-ld:default-context/speed"
    assert ctx.expand(ctx.compact(DEFAULT_VOCAB + "speed")) == DEFAULT_VOCAB + "speed"


def test_shortest_term_wins_compaction() -> None:
    ctx = Context([{"temperatureCelsius": SDM + "temperature", "temp": SDM + "temperature"}])
    assert ctx.compact(SDM + "temperature") == "temp"
    assert ctx.expand("temperatureCelsius") == ctx.expand("temp")


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ([{"a": {"@id": "https://a.example/", "@context": {"b": "https://b/"}}}], "scoped"),
        ([{"a": "b", "b": "a"}], "cycle"),
        ([{"a": 5}], "'a'"),
        (["relative/context.jsonld"], "not an absolute URL"),
        ([5], "@context entry"),
        ([{"@import": "https://x/"}], "@import"),
        ([{"@vocab": "not an iri"}], "@vocab"),
    ],
)
def test_invalid_contexts_are_bad_request_data(entries: Any, fragment: str) -> None:
    with pytest.raises(BadRequestData) as error:
        Context(entries, resolver)
    assert fragment in error.value.detail


def test_self_referencing_stored_context_is_rejected() -> None:
    loop = {"https://loop.example/a": {"@context": ["https://loop.example/a"]}}
    with pytest.raises(BadRequestData):
        Context(["https://loop.example/a"], loop.get)


def test_as_json_echoes_the_request_context() -> None:
    assert Context().as_json() == CORE_CONTEXT_URL
    assert Context([USER_URL], resolver).as_json() == [USER_URL, CORE_CONTEXT_URL]
    assert Context([USER_URL, CORE_CONTEXT_URL], resolver).as_json() == [USER_URL, CORE_CONTEXT_URL]


_term = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)


@given(_term)
def test_compact_expand_round_trip_with_core_context(term: str) -> None:
    ctx = Context()
    if ctx.expand(term).startswith("@"):
        return
    assert ctx.compact(ctx.expand(term)) == term


@given(st.dictionaries(_term, st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), max_size=6), _term)
def test_compact_expand_round_trip_with_user_context(definitions: dict[str, str], term: str) -> None:
    ctx = Context([{"ex": "https://ex.example/", **{k: f"ex:{v}" for k, v in definitions.items()}}])
    iri = ctx.expand(term)
    if iri.startswith("@"):
        return
    shortest = ctx.compact(iri)
    assert ctx.expand(shortest) == iri
    if term not in definitions or list(definitions.values()).count(definitions[term]) == 1:
        assert len(shortest) <= len(term) or shortest == term


def test_link_header_valid() -> None:
    assert parse_link_header(LINK) == USER_URL
    assert parse_link_header(f"<{USER_URL}>;rel=http://www.w3.org/ns/json-ld#context") == USER_URL
    both = f'<https://example.org/next>; rel="next", {LINK}'
    assert parse_link_header(both) == USER_URL
    spaced = f'<{USER_URL}> ; rel="alternate http://www.w3.org/ns/json-ld#context"'
    assert parse_link_header(spaced) == USER_URL


def test_link_header_without_context_rel() -> None:
    assert parse_link_header(f"<{USER_URL}>") is None
    assert parse_link_header(f'<{USER_URL}>; rel="describedby"') is None
    assert parse_link_header("") is None


@pytest.mark.parametrize(
    "header",
    [
        f'{USER_URL}; rel="http://www.w3.org/ns/json-ld#context"',
        f'<{USER_URL}; rel="http://www.w3.org/ns/json-ld#context"',
        f'<{USER_URL}> rel="http://www.w3.org/ns/json-ld#context"',
        f'<{USER_URL}>; rel="http://www.w3.org/ns/json-ld#context',
        f"<{USER_URL}>; =x",
        f"{LINK}, {LINK}",
        '<relative.jsonld>; rel="http://www.w3.org/ns/json-ld#context"',
    ],
)
def test_malformed_link_header_is_bad_request_data(header: str) -> None:
    with pytest.raises(BadRequestData) as error:
        parse_link_header(header)
    assert "Link" in error.value.detail or "link" in error.value.detail


def test_request_json_takes_the_link_header() -> None:
    ctx = context_from_request("application/json; charset=utf-8", LINK, None, resolver)
    assert ctx.expand("pm25") == SDM + "pm25"
    assert context_from_request("application/merge-patch+json", LINK, None, resolver).urls == (USER_URL,)


def test_request_without_body_takes_the_link_header_or_core() -> None:
    assert context_from_request(None, LINK, None, resolver).expand("pm25") == SDM + "pm25"
    assert context_from_request(None, None, None, resolver).expand("pm25") == DEFAULT_VOCAB + "pm25"
    assert context_from_request("application/json", None, None, resolver).urls == ()


def test_request_json_with_body_context_is_an_error() -> None:
    with pytest.raises(BadRequestData) as error:
        context_from_request("application/json", None, USER_URL, resolver)
    assert "@context" in error.value.detail


def test_request_ld_json_takes_the_body_context() -> None:
    ctx = context_from_request("application/ld+json", None, [USER_URL, {"o3": "sdm:o3"}], resolver)
    assert ctx.expand("o3") == SDM + "o3"
    assert (
        context_from_request("application/ld+json", None, {"x": "https://x/"}, None).expand("x")
        == "https://x/"
    )


def test_request_ld_json_with_link_header_is_an_error() -> None:
    with pytest.raises(BadRequestData) as error:
        context_from_request("application/ld+json", LINK, USER_URL, resolver)
    assert "Link" in error.value.detail


def test_request_ld_json_without_body_context_is_an_error() -> None:
    with pytest.raises(BadRequestData):
        context_from_request("application/ld+json", None, None, resolver)


def test_request_with_other_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType) as error:
        context_from_request("text/plain", None, None, resolver)
    assert error.value.status == 415


def test_request_with_unknown_link_target_is_ld_context_not_available() -> None:
    link = '<https://nowhere.example/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
    with pytest.raises(LdContextNotAvailable):
        context_from_request("application/json", link, None, resolver)


def test_problem_details() -> None:
    assert BadRequestData("id is missing").problem() == {
        "type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
        "title": "Bad request data",
        "status": 400,
        "detail": "id is missing",
    }
    assert ResourceNotFound("x").status == 404
    assert NotAcceptable("x").problem()["status"] == 406
    assert isinstance(UnsupportedMediaType("x"), NgsiError)
