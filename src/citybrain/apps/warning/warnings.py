"""Rules the warning app declares itself (other apps declare theirs in their own warnings.py)."""

from citybrain.apps.warning.schemas import RuleSpec

WARNING_RULES: list[RuleSpec] = []
