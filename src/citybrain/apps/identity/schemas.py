"""API shapes of the identity app (separate from the tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")
USERNAME = r"^[A-Za-z0-9_.\-]{3,64}$"
PHONE = r"^\+?[0-9\-]{5,20}$"
DepartmentKind = Literal["municipal", "district", "department", "office"]
# Row ids and sort keys are 32-bit integer columns: a larger number is refused here, not by the database.
MAX_INT = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_INT)]
SortKey = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]
# Passwords that meet the length rule but are among the first any attacker tries.
COMMON_PASSWORDS = frozenset(
    {
        "0123456789",
        "1234567890",
        "12345678910",
        "0987654321",
        "9876543210",
        "1qaz2wsx3edc",
        "1q2w3e4r5t",
        "qwertyuiop",
        "qwerty123456",
        "asdfghjkl;",
        "password123",
        "password1234",
        "password12",
        "passw0rd123",
        "p@ssw0rd123",
        "iloveyou123",
        "abcdefghij",
        "abc1234567",
        "a123456789",
        "admin12345",
        "admin123456",
        "administrator",
        "changeme123",
        "welcome123",
        "woaini1314",
        "aa123456789",
    }
)


def _strong_password(value: str) -> str:
    """Refuse a password that is easy to guess: few distinct characters, or a well-known one."""
    if len(set(value)) < 5:
        raise ValueError("the password is too easy to guess: use at least 5 different characters")
    if value.lower() in COMMON_PASSWORDS:
        raise ValueError("the password is too easy to guess: it is one of the most common passwords")
    return value


Password = Annotated[str, Field(min_length=10, max_length=256), AfterValidator(_strong_password)]


class Strict(BaseModel):
    """Input models refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    """A page of results."""

    items: list[T]
    total: int
    limit: int
    offset: int


class LoginIn(Strict):
    """Credentials for signing in."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class DepartmentCreate(Strict):
    """A new department."""

    code: str = Field(pattern=r"^[A-Za-z0-9_\-]{2,64}$")
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field(default="", max_length=200)
    kind: DepartmentKind = "department"
    parent_id: RowId | None = None
    sort: SortKey = 0


class DepartmentUpdate(Strict):
    """Changes to a department."""

    name_zh: str | None = Field(default=None, min_length=1, max_length=120)
    name_en: str | None = Field(default=None, max_length=200)
    kind: DepartmentKind | None = None
    parent_id: RowId | None = None
    sort: SortKey | None = None


class DepartmentRead(BaseModel):
    """A department as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name_zh: str
    name_en: str
    kind: str
    parent_id: int | None
    sort: int


class UserCreate(Strict):
    """A new user."""

    username: str = Field(pattern=USERNAME)
    display_name: str = Field(min_length=1, max_length=120)
    department_id: RowId
    password: Password
    phone: str | None = Field(default=None, pattern=PHONE)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    @model_validator(mode="after")
    def _password_is_not_the_username(self) -> Self:
        """Refuse the username (in any case) as the password."""
        if self.password.lower() == self.username.lower():
            raise ValueError("the password must not be the username")
        return self


class UserUpdate(Strict):
    """Changes to a user."""

    display_name: str | None = Field(default=None, min_length=1, max_length=120)
    department_id: RowId | None = None
    phone: str | None = Field(default=None, pattern=PHONE)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    is_active: bool | None = None


class PasswordSet(Strict):
    """A new password."""

    password: Password


class UserRead(BaseModel):
    """A user as the API shows it: phone and e-mail masked, no password hash."""

    id: int
    username: str
    display_name: str
    department_id: int
    phone: str | None
    email: str | None
    is_active: bool
    locked_until: datetime | None
    last_login_at: datetime | None


class RoleCreate(Strict):
    """A new role."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=500)
    permissions: list[str] = Field(default_factory=list, max_length=500)


class RoleUpdate(Strict):
    """Changes to a role."""

    name_zh: str | None = Field(default=None, min_length=1, max_length=120)
    name_en: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] | None = Field(default=None, max_length=500)


class RoleRead(BaseModel):
    """A role as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name_zh: str
    name_en: str
    description: str
    permissions: list[str]
    builtin: bool


class AssignmentCreate(Strict):
    """Grant a role to a user in a department (with its sub-departments), or city-wide."""

    role_id: RowId
    department_id: RowId | None = None
    include_subtree: bool = True


class AssignmentRead(BaseModel):
    """A role grant."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    role_id: int
    department_id: int | None
    include_subtree: bool


class TokenCreate(Strict):
    """A new API token; its scopes must be permissions its owner holds."""

    name: str = Field(min_length=1, max_length=120)
    scopes: list[str] = Field(min_length=1, max_length=200)
    expires_in_days: int = Field(default=90, ge=1, le=366)
    user_id: RowId | None = None


class TokenRead(BaseModel):
    """An API token without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    scopes: list[str]
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TokenCreated(TokenRead):
    """A freshly created token: the secret is shown this once and never again."""

    token: str


class PermissionRead(BaseModel):
    """A permission an app declares."""

    code: str
    name_zh: str
    name_en: str


class MeRead(BaseModel):
    """The signed-in actor."""

    kind: str
    user: UserRead | None
    permissions: dict[str, list[int] | Literal["ALL"]]


class PasswordChange(Strict):
    """One's own new password, with the current one."""

    current: str = Field(min_length=1, max_length=256)
    password: Password
