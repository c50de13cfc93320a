"""Permissions the context app declares."""

from citybrain.sdk import Actor, AllDepartments, Forbidden, Permission

PERMISSIONS = (
    Permission("context.entity.read", "查询实体及其历史", "Query entities and their history"),
    Permission("context.entity.write", "创建、更新和删除实体", "Create, update and delete entities"),
    Permission("context.subscription.read", "查看订阅", "View subscriptions"),
    Permission("context.subscription.write", "管理订阅", "Manage subscriptions"),
    Permission("context.jsonld.write", "管理 @context", "Manage @context documents"),
)

WRITE = "context.entity.write"


def may_write(actor: Actor, department_id: int | None) -> bool:
    """Whether the actor may change an entity the department owns (None: only city-wide writers may)."""
    scope = actor.scope(WRITE)
    return isinstance(scope, AllDepartments) or (department_id is not None and department_id in scope)


def require_write(actor: Actor, department_id: int | None) -> None:
    """Raise 401/403 unless the actor may change an entity the department owns."""
    actor.require(WRITE)
    if not may_write(actor, department_id):
        raise Forbidden("This entity belongs to another department; you may not change it.")
