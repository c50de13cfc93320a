#!/usr/bin/env bash
# Translation catalogues of CityBrain: extract with pybabel, update the .po files, check them.
#
# Workflow (zh_CN first; an English msgid is the English text itself, so English needs no catalogue):
#   1. Write every user-facing text in English in the code:
#        templates       {{ _("Sign in") }}, with str.format parameters: _("Welcome, {name}.", name=...)
#        Python          N_("...") marks a text translated where it is shown; ctx.i18n.gettext(locale, "...");
#                        the detail of a problem: Forbidden("You lack the permission {permission}.", ...)
#        manifests       NavItem("Users", ...) and AppSpec(title="...", description="...")
#        schemas.py      raise ValueError("...") in an app's pydantic validators
#   2. scripts/i18n.sh          extracts each package part into <part>/locale/messages.pot and merges it
#                               into <part>/locale/zh_CN/LC_MESSAGES/messages.po (`pybabel update`;
#                               a part without a .po gets one; obsolete entries are dropped).
#   3. Translate the new entries (empty msgstr) and review the "fuzzy" guesses, removing the flag:
#      fuzzy entries are not used. Chinese reads as a Chinese government system does (登录, 部门, 角色).
#   4. scripts/i18n.sh check    changes nothing; fails listing each msgid that is untranslated or fuzzy
#                               and each translation whose {placeholders} differ from the msgid's (a
#                               missing placeholder would break str.format). The test suite runs it.
# Package parts: the kernel (src/citybrain/core → src/citybrain/core/ui/locale) and every app
# (src/citybrain/apps/<label> → src/citybrain/apps/<label>/locale). The .po files are compiled in memory
# when the platform starts (citybrain.core.i18n); no .mo file is kept in the tree.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
MODE="${1:-update}"
VERSION="$("$PY" -c "import citybrain; print(citybrain.__version__)")"
case "$MODE" in update|check) ;; *) echo "usage: scripts/i18n.sh [update|check]" >&2; exit 2 ;; esac
LOCALES=(zh_CN)
# Calls whose first argument is a msgid (the problem classes take their English detail first).
KEYWORDS=(_ N_ gettext:2 NavItem ProblemError BadRequest ValidationFailed Unauthorized Forbidden NotFound
          Conflict Locked TooManyRequests)
KEYWORD_ARGS=()
for k in "${KEYWORDS[@]}"; do KEYWORD_ARGS+=(-k "$k"); done

pybabel() { "$PY" -c 'import sys; from babel.messages.frontend import main; sys.argv[0] = "pybabel"; main()' -q "$@"; }

# Each part: "<source dir>:<locale dir>".
PARTS=("src/citybrain/core:src/citybrain/core/ui/locale")
for app in src/citybrain/apps/*/; do
  app="${app%/}"
  [[ -f "$app/__init__.py" ]] && PARTS+=("$app:$app/locale")
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
status=0
for part in "${PARTS[@]}"; do
  src="${part%%:*}"
  locale_dir="${part#*:}"
  if [[ "$MODE" == check ]]; then pot="$WORK/$(echo "$src" | tr / _).pot"; else pot="$locale_dir/messages.pot"; fi
  mkdir -p "$(dirname "$pot")"
  pybabel extract -F babel.cfg --no-default-keywords "${KEYWORD_ARGS[@]}" --sort-by-file \
    --project CityBrain --version "$VERSION" --copyright-holder "CityBrain contributors" \
    --ignore-dirs "migrations .* _*" -o "$pot" "$src" 2>"$WORK/extract.log" \
    || { cat "$WORK/extract.log" >&2; exit 1; }
  # What the keywords cannot mark: AppSpec(title=..., description=...), the class-level `title` of the
  # problem classes, the status titles the kernel looks up (a dict named `...titles` and the fallback
  # in `i18n.gettext(locale, titles.get(key, "..."))`) and the ValueError messages of an app's schemas.py
  # (pydantic validators; the pages translate them when a form fails).
  "$PY" - "$src" "$pot" <<'PYEOF'
import ast
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

src, pot = Path(sys.argv[1]), Path(sys.argv[2])
with pot.open("rb") as fh:
    catalog = read_po(fh)
found: list[tuple[str, str, int]] = []
for path in sorted(src.rglob("*.py")):
    if "migrations" in path.parts:
        continue
    rel = path.as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "AppSpec":
                found += [(kw.value.value, rel, node.lineno) for kw in node.keywords
                          if kw.arg in ("title", "description") and isinstance(kw.value, ast.Constant)
                          and isinstance(kw.value.value, str)]
            elif name == "ValueError" and path.name == "schemas.py" and node.args:
                # an app's API shapes: their validation messages reach the user
                found += [(a.value, rel, a.lineno) for a in node.args[:1]
                          if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            elif name == "gettext" and len(node.args) >= 2 and isinstance(node.args[1], ast.Call):
                # i18n.gettext(locale, titles.get(status, "Error")): the fallback is a msgid too
                inner = node.args[1]
                if (isinstance(inner.func, ast.Attribute) and inner.func.attr == "get" and len(inner.args) == 2
                        and isinstance(inner.args[1], ast.Constant) and isinstance(inner.args[1].value, str)):
                    found.append((inner.args[1].value, rel, inner.lineno))
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "title"
                                                         for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                    found.append((stmt.value.value, rel, stmt.lineno))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id.endswith("titles") for t in node.targets):
                found += [(v.value, rel, v.lineno) for v in node.value.values
                          if isinstance(v, ast.Constant) and isinstance(v.value, str)]
for message, rel, line in found:
    if message in catalog:
        catalog[message].locations.append((rel, line))
    else:
        catalog.add(message, locations=[(rel, line)])
with pot.open("wb") as fh:
    write_po(fh, catalog, sort_by_file=True)
PYEOF
  for lang in "${LOCALES[@]}"; do
    po="$locale_dir/$lang/LC_MESSAGES/messages.po"
    if [[ "$MODE" == update ]]; then
      if [[ -f "$po" ]]; then
        pybabel update -i "$pot" -d "$locale_dir" -l "$lang" --ignore-obsolete
      else
        pybabel init -i "$pot" -d "$locale_dir" -l "$lang"
      fi
    fi
    "$PY" - "$pot" "$po" "$MODE" <<'PYEOF' || status=1
import re
import sys
from pathlib import Path

from babel.messages.pofile import read_po

pot, po, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
FIELDS = re.compile(r"\{([^{}]*)\}")
with pot.open("rb") as fh:
    wanted = [m.id for m in read_po(fh) if m.id]
have = {}
if po.is_file():
    with po.open("rb") as fh:
        have = {m.id: m for m in read_po(fh) if m.id}
problems = []
for msgid in wanted:
    entry = have.get(msgid)
    if entry is None or not entry.string:
        problems.append(f"untranslated: {msgid!r}")
    elif entry.fuzzy:
        problems.append(f"fuzzy: {msgid!r}")
    elif sorted(FIELDS.findall(str(entry.string))) != sorted(FIELDS.findall(str(msgid))):
        problems.append(f"placeholders differ: {msgid!r} -> {entry.string!r}")
if problems:
    print(f"{po}: {len(problems)} of {len(wanted)} messages need work", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    sys.exit(1)
print(f"{po}: {len(wanted)} messages translated")
PYEOF
  done
done
if [[ "$MODE" == update && "$status" -ne 0 ]]; then
  echo "catalogues updated; translate the entries listed above" >&2
fi
exit "$status"
