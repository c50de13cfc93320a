"""Demo seed: Mianyang's municipal departments, its 9 districts and counties, and demo users."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.models import Department, RoleAssignment, User
from citybrain.sdk import SYSTEM, AppContext

ROOT = ("510700", "绵阳市人民政府", "Mianyang Municipal People's Government", "municipal")
# (code, name_zh, name_en, kind, parent code); district codes are the GB/T 2260 division codes.
DEPARTMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("zwfw", "市政务服务监督管理局", "Government Services Administration", "department", "510700"),
    ("dsj", "市大数据中心", "Big Data Centre", "department", "510700"),
    ("gaj", "市公安局", "Public Security Bureau", "department", "510700"),
    ("gaj-jj", "市公安局交通警察支队", "Traffic Police Detachment", "office", "gaj"),
    ("sthj", "市生态环境局", "Ecology and Environment Bureau", "department", "510700"),
    ("cgzf", "市城市管理行政执法局", "Urban Management and Law Enforcement Bureau", "department", "510700"),
    ("wjw", "市卫生健康委员会", "Health Commission", "department", "510700"),
    ("rsj", "市人力资源和社会保障局", "Human Resources and Social Security Bureau", "department", "510700"),
    ("yjj", "市应急管理局", "Emergency Management Bureau", "department", "510700"),
    ("slj", "市水利局", "Water Resources Bureau", "department", "510700"),
    ("jxj", "市经济和信息化局", "Economy and Information Technology Bureau", "department", "510700"),
    ("510703", "涪城区", "Fucheng District", "district", "510700"),
    ("510704", "游仙区", "Youxian District", "district", "510700"),
    ("510705", "安州区", "Anzhou District", "district", "510700"),
    ("510781", "江油市", "Jiangyou City", "district", "510700"),
    ("510722", "三台县", "Santai County", "district", "510700"),
    ("510723", "盐亭县", "Yanting County", "district", "510700"),
    ("510725", "梓潼县", "Zitong County", "district", "510700"),
    ("510726", "北川羌族自治县", "Beichuan Qiang Autonomous County", "district", "510700"),
    ("510727", "平武县", "Pingwu County", "district", "510700"),
)
# (username, display name, department code, role, role in the department or city-wide)
USERS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("admin", "平台管理员", "dsj", "platform_admin", True),
    ("dsj_admin", "大数据中心管理员", "dsj", "department_admin", False),
    ("fucheng_admin", "涪城区管理员", "510703", "department_admin", False),
    ("sthj_staff", "生态环境局工作人员", "sthj", "staff", False),
)
CREDENTIALS_FILE = "demo-credentials.txt"


def seed(ctx: AppContext) -> list[str]:
    """Create what is missing (running it twice adds nothing) and return lines to show the user."""
    role_ids = services.ensure_builtin_roles(ctx, SYSTEM)
    with ctx.read() as session:
        codes = {code: dept_id for code, dept_id in session.execute(select(Department.code, Department.id))}
    for code, name_zh, name_en, kind, parent in ((*ROOT, ""), *DEPARTMENTS):
        if code not in codes:
            created = services.create_department(
                ctx,
                SYSTEM,
                schemas.DepartmentCreate(
                    code=code,
                    name_zh=name_zh,
                    name_en=name_en,
                    kind=kind,
                    parent_id=codes.get(parent),
                    sort=len(codes),
                ),
            )
            codes[code] = created.id
    password = _demo_password(ctx)
    for username, display_name, dept_code, role, city_wide in USERS:
        with ctx.read() as session:
            user = session.scalar(select(User).where(User.username == username))
            held = (
                user is not None
                and session.scalar(select(RoleAssignment.id).where(RoleAssignment.user_id == user.id))
                is not None
            )
        if user is None:
            created_user = services.create_user(
                ctx,
                SYSTEM,
                schemas.UserCreate(
                    username=username,
                    display_name=display_name,
                    department_id=codes[dept_code],
                    password=password,
                ),
            )
            user_id = created_user.id
        else:
            user_id = user.id
            services.set_password(ctx, SYSTEM, user_id, password)
        if not held:
            services.assign_role(
                ctx,
                SYSTEM,
                user_id,
                schemas.AssignmentCreate(
                    role_id=role_ids[role], department_id=None if city_wide else codes[dept_code]
                ),
            )
    others = ", ".join(u[0] for u in USERS[1:])
    return [
        f"Demo admin: username admin, password {password}",
        f"Other demo users ({others}) have the same password.",
    ]


def _demo_password(ctx: AppContext) -> str:
    """The demo password, kept in the data directory so every run shows the same one."""
    path = ctx.settings.data_dir / CREDENTIALS_FILE
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        if len(stored) >= 10:
            return stored
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return password
