"""Permissions the context app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission("context.entity.read", "查询实体及其历史", "Query entities and their history"),
    Permission("context.entity.write", "创建、更新和删除实体", "Create, update and delete entities"),
    Permission("context.subscription.read", "查看订阅", "View subscriptions"),
    Permission("context.subscription.write", "管理订阅", "Manage subscriptions"),
    Permission("context.jsonld.write", "管理 @context", "Manage @context documents"),
)
