"""postgis geometry

Revision ID: 6c8f3d2e0b51
Revises: 5b7e2c1d9a40
Create Date: 2026-11-25 00:30:00.000000

On PostgreSQL with PostGIS, context_entity gets `location_geometry`: the default instance of the `location`
GeoProperty as a geometry (SRID 4326, 2D), generated from the stored JSONB so no write path maintains it,
with a GiST index that replaces the box index. Without PostGIS, and on SQLite, nothing changes.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

revision: str = "6c8f3d2e0b51"
down_revision: str | Sequence[str] | None = "5b7e2c1d9a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "location_geometry"
BOX_INDEX = (
    "CREATE INDEX ix_context_entity_geo ON context_entity "
    "USING gist (box(point(min_lon, min_lat), point(max_lon, max_lat)))"
)
# The value of the instance without a datasetId (an absent or null one) of a GeoProperty `location`.
LOCATION_PATH = (
    '$.attrs."https://uri.etsi.org/ngsi-ld/location"[*]'
    ' ? (@.type == "GeoProperty" && !exists(@.datasetId ? (@ != null))).value'
)
# Immutable and never raising, as a generated column must be: a "crs" member is dropped (PostGIS would look
# it up), altitudes are dropped as the geo-queries do, an invalid geometry (the broker accepts self-
# intersecting rings, on which GEOS predicates raise) is repaired, and any error gives NULL. PostGIS names
# are qualified with its schema, so the body does not depend on the caller's search_path (a SET clause
# would cost more per row than the rest). PARALLEL UNSAFE: the error trap is a subtransaction.
FUNCTION = """
CREATE FUNCTION context_location_geometry(data jsonb) RETURNS {schema}.geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE
AS $$
DECLARE
    value jsonb := jsonb_path_query_first(data, '{path}');
    shape {schema}.geometry;
BEGIN
    IF jsonb_typeof(value) IS DISTINCT FROM 'object' THEN
        RETURN NULL;
    END IF;
    BEGIN
        shape := {schema}.ST_SetSRID({schema}.ST_Force2D({schema}.ST_GeomFromGeoJSON((value - 'crs')::text)), 4326);
        IF {schema}.ST_Dimension(shape) > 0 AND NOT {schema}.ST_IsValid(shape, 0) THEN
            shape := {schema}.ST_MakeValid(shape);
        END IF;
        RETURN shape;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
END
$$
"""


def _postgis_schema(conn: Connection) -> str | None:
    """The schema of the postgis extension, creating it when available and allowed; None without PostGIS."""
    find = text(
        "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'postgis'"
    )
    schema = conn.scalar(find)
    if schema is not None:
        return str(schema)
    if not conn.scalar(text("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'postgis')")):
        return None
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError:  # e.g. a role that may not create extensions: keep the box index
        savepoint.rollback()
        return None
    savepoint.commit()
    return str(conn.scalar(find))


def _has_column(conn: Connection) -> bool:
    return bool(
        conn.scalar(
            text(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'context_entity'::regclass "
                "AND attname = :name AND NOT attisdropped)"
            ),
            {"name": COLUMN},
        )
    )


def upgrade() -> None:
    """Apply this revision."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or _has_column(conn):
        return
    schema = _postgis_schema(conn)
    if schema is None:
        return
    op.execute(FUNCTION.format(schema=schema, path=LOCATION_PATH))
    op.execute(
        f"ALTER TABLE context_entity ADD COLUMN {COLUMN} geometry(Geometry, 4326) "
        "GENERATED ALWAYS AS (context_location_geometry(data)) STORED"
    )
    op.execute(f"CREATE INDEX ix_context_entity_{COLUMN} ON context_entity USING gist ({COLUMN})")
    op.execute("DROP INDEX IF EXISTS ix_context_entity_geo")


def downgrade() -> None:
    """Revert this revision."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or not _has_column(conn):
        return
    op.execute(f"ALTER TABLE context_entity DROP COLUMN {COLUMN}")
    op.execute("DROP FUNCTION context_location_geometry(jsonb)")
    op.execute(BOX_INDEX)
