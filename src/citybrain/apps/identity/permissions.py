"""Permissions the identity app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission("identity.department.read", "查看部门", "View departments"),
    Permission("identity.department.create", "新建部门", "Create departments"),
    Permission("identity.department.update", "修改部门", "Edit departments"),
    Permission("identity.department.delete", "删除部门", "Delete departments"),
    Permission("identity.user.read", "查看用户", "View users"),
    Permission("identity.user.create", "新建用户", "Create users"),
    Permission("identity.user.update", "修改用户、重置密码、解锁", "Edit users, reset passwords, unlock"),
    Permission("identity.user.delete", "停用用户", "Deactivate users"),
    Permission("identity.role.read", "查看角色", "View roles"),
    Permission("identity.role.create", "新建角色", "Create roles"),
    Permission("identity.role.update", "修改角色", "Edit roles"),
    Permission("identity.role.delete", "删除角色", "Delete roles"),
    Permission("identity.role.assign", "授予和收回角色", "Grant and revoke roles"),
    Permission("identity.token.create", "申请本人的 API 令牌", "Create one's own API tokens"),
    Permission("identity.token.manage", "管理他人的 API 令牌", "Manage other users' API tokens"),
)
