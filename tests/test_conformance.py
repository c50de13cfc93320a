"""Every installed app keeps the platform's rules: one label everywhere, declared data, synced migrations."""

from __future__ import annotations

import ast
import importlib

import grimp
import pytest
from alembic.script import ScriptDirectory

from citybrain.core.apps import AppSpec, discover
from citybrain.core.context import AppContext
from citybrain.core.db import Base
from citybrain.core.migrate import alembic_config, pending_changes
from citybrain.core.permissions import Permission

APPS = discover()
IDS = [spec.label for spec in APPS]


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_label_names_the_package_and_the_urls(spec: AppSpec) -> None:
    assert spec.package.rsplit(".", 1)[-1] == spec.label
    assert spec.layer in ("base", "brain", "application", "entrance")
    assert spec.title and spec.description
    for item in spec.nav:
        assert item.path.startswith(f"/{spec.label}/") or item.path == f"/{spec.label}"
        assert item.permission is None or item.permission.startswith(f"{spec.label}.")


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_permissions_are_declared_under_the_label(spec: AppSpec) -> None:
    module = spec.module("permissions")
    declared = getattr(module, "PERMISSIONS", ()) if module else ()
    assert all(isinstance(p, Permission) and p.label == spec.label for p in declared)
    assert all(p.name_zh and p.name_en for p in declared)


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_tables_templates_and_static_carry_the_label(spec: AppSpec) -> None:
    spec.module("models")
    owned = [name for name in Base.metadata.tables if _table_module(name) == spec.package]
    assert owned or spec.module("models") is None
    assert all(name.startswith(f"{spec.label}_") for name in owned), owned
    templates = spec.path / "templates"
    if templates.is_dir():
        assert [p.name for p in templates.iterdir()] == [spec.label]


def _table_module(name: str) -> str | None:
    for mapper in Base.registry.mappers:
        if mapper.local_table.name == name:
            return mapper.class_.__module__.rsplit(".", 1)[0]
    return None


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_migration_branch_is_the_label(spec: AppSpec, ctx: AppContext) -> None:
    if not (spec.path / "migrations").is_dir():
        spec.module("models")
        assert not any(t.startswith(f"{spec.label}_") for t in Base.metadata.tables)
        return
    script = ScriptDirectory.from_config(alembic_config(ctx))
    labels = {label for rev in script.walk_revisions() for label in (rev.branch_labels or ())}
    assert spec.label in labels


def test_migrations_match_the_models(ctx: AppContext) -> None:
    assert pending_changes(ctx) == []


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_apps_import_only_the_sdk_and_what_they_require(spec: AppSpec) -> None:
    graph = grimp.build_graph("citybrain")
    allowed = {spec.package, "citybrain.sdk", *(f"citybrain.apps.{dep}" for dep in spec.requires)}
    for module in graph.find_children(spec.package) | graph.find_descendants(spec.package):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("citybrain."):
                assert any(imported == a or imported.startswith(a + ".") for a in allowed), (
                    f"{module} imports {imported}; an app may import only citybrain.sdk and {spec.requires}"
                )


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_public_functions_have_one_line_docstrings(spec: AppSpec) -> None:
    for path in spec.path.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                assert doc, f"{path.name}:{node.lineno} {node.name} has no docstring"
                assert "\n" not in doc.strip(), f"{path.name}:{node.lineno} {node.name}: one line, please"


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_the_app_has_a_chinese_catalogue(spec: AppSpec) -> None:
    if spec.module("views") is None and not spec.nav:
        return
    assert (spec.path / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po").is_file()


def test_apps_never_translate_a_shared_message_differently() -> None:
    # The shell merges every catalogue, so a message two apps translate differently would show either.
    from babel.messages.pofile import read_po

    from citybrain.core.web import UI_DIR

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    owners = [("kernel", UI_DIR / "locale"), *((spec.label, spec.path / "locale") for spec in discover())]
    for owner, locale in owners:
        path = locale / "zh_CN" / "LC_MESSAGES" / "messages.po"
        if not path.exists():
            continue
        with path.open("rb") as handle:
            catalog = read_po(handle)
        for message in catalog:
            if not message.id or not message.string or isinstance(message.id, tuple):
                continue
            first = seen.setdefault(message.id, (owner, str(message.string)))
            if first[1] != message.string:
                clashes.append(f"{message.id!r}: {first[0]} {first[1]!r}, {owner} {message.string!r}")
    assert not clashes, "; ".join(clashes)


def test_the_kernel_never_imports_an_app() -> None:
    graph = grimp.build_graph("citybrain")
    for module in graph.find_descendants("citybrain.core") | {"citybrain.sdk"}:
        assert not any(
            m.startswith("citybrain.apps") for m in graph.find_modules_directly_imported_by(module)
        )


@pytest.mark.parametrize("spec", APPS, ids=IDS)
def test_every_module_of_the_app_imports(spec: AppSpec) -> None:
    for path in spec.path.glob("*.py"):
        importlib.import_module(f"{spec.package}.{path.stem}")
