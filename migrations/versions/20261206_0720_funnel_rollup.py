"""The funnel's rollup: per-site, per-UTC-day counts of the leads first seen that day
(`funnel_counts`), how far each site is rolled up (`funnel_rollups`), and the days changed
since (`funnel_dirty_days`), marked by triggers on `leads` in the writing transaction (see
app/leads/models.py). New tables only: nothing to backfill here, the rollup loop counts the
past days of each site on its first pass, and until then the funnel reads leads as before.

Also an index for the leads list filtered by status (a status few leads have, such as won,
would otherwise walk the sort's index through every lead), built CONCURRENTLY on PostgreSQL
as in migration 0008.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-06 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An update marks days only when it changes what the funnel counts (most updates of a lead
# are new events: visits, pages, last seen), so ingestion's usual update costs no trigger call.
FUNNEL_CHANGED = """
    OLD.first_seen_at IS DISTINCT FROM NEW.first_seen_at
    OR OLD.merged_into_id IS DISTINCT FROM NEW.merged_into_id
    OR OLD.temperature IS DISTINCT FROM NEW.temperature
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.lost_reason IS DISTINCT FROM NEW.lost_reason
    OR OLD.identified IS DISTINCT FROM NEW.identified
    OR (OLD.first_contacted_at IS NULL) <> (NEW.first_contacted_at IS NULL)
"""

PG_FUNCTIONS = [
    """
CREATE FUNCTION funnel_mark_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO funnel_dirty_days (site_id, day)
    SELECT DISTINCT site_id, date_trunc('day', first_seen_at, 'UTC')
    FROM new_leads WHERE first_seen_at IS NOT NULL;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION funnel_mark_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_day timestamptz := date_trunc('day', OLD.first_seen_at, 'UTC');
    new_day timestamptz := date_trunc('day', NEW.first_seen_at, 'UTC');
BEGIN
    IF old_day IS NOT NULL THEN
        INSERT INTO funnel_dirty_days (site_id, day) VALUES (OLD.site_id, old_day);
    END IF;
    IF new_day IS NOT NULL AND new_day IS DISTINCT FROM old_day THEN
        INSERT INTO funnel_dirty_days (site_id, day) VALUES (NEW.site_id, new_day);
    END IF;
    RETURN NULL;
END $$
""",
]

# Inserts: once per statement (ingestion inserts a group's new leads in one statement or one
# COPY), with the statement's rows as a transition table.
PG_TRIGGERS = [
    """
CREATE TRIGGER funnel_leads_inserted AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION funnel_mark_inserted()
""",
    f"""
CREATE TRIGGER funnel_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN ({FUNNEL_CHANGED})
    EXECUTE FUNCTION funnel_mark_updated()
""",
]

# SQLite stores timestamps as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (app.db.UTCDateTime).
SQLITE_DAY = "strftime('%Y-%m-%d 00:00:00.000000', {})"
SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER funnel_leads_inserted AFTER INSERT ON leads
    FOR EACH ROW WHEN NEW.first_seen_at IS NOT NULL
BEGIN
    INSERT INTO funnel_dirty_days (site_id, day)
    VALUES (NEW.site_id, {SQLITE_DAY.format("NEW.first_seen_at")});
END
""",
    f"""
CREATE TRIGGER funnel_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN {FUNNEL_CHANGED.replace("IS DISTINCT FROM", "IS NOT")}
BEGIN
    INSERT INTO funnel_dirty_days (site_id, day)
    SELECT OLD.site_id, {SQLITE_DAY.format("OLD.first_seen_at")}
    WHERE OLD.first_seen_at IS NOT NULL;
    INSERT INTO funnel_dirty_days (site_id, day)
    SELECT NEW.site_id, {SQLITE_DAY.format("NEW.first_seen_at")}
    WHERE NEW.first_seen_at IS NOT NULL
      AND {SQLITE_DAY.format("NEW.first_seen_at")}
          IS NOT {SQLITE_DAY.format("OLD.first_seen_at")};
END
""",
]


def upgrade() -> None:
    op.create_table(
        "funnel_rollups",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("rolled_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_funnel_rollups_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_funnel_rollups")),
    )
    op.create_table(
        "funnel_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("temperature", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lost_reason", sa.String(length=32), nullable=True),
        sa.Column("identified", sa.Boolean(), nullable=False),
        sa.Column("contacted", sa.Boolean(), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_funnel_counts_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funnel_counts")),
    )
    op.create_index("ix_funnel_counts_site_id_day", "funnel_counts", ["site_id", "day"])
    op.create_table(
        "funnel_dirty_days",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funnel_dirty_days")),
    )
    op.create_index("ix_funnel_dirty_days_site_id_day", "funnel_dirty_days", ["site_id", "day"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in [*PG_FUNCTIONS, *PG_TRIGGERS] if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)
    _status_index()


STATUS_INDEX = "ix_leads_site_id_status"


def _status_index() -> None:
    columns = ["site_id", "status"]
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            STATUS_INDEX, "leads", columns, sqlite_where=sa.text("merged_into_id IS NULL")
        )
        return
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
            {"name": STATUS_INDEX},
        )
        if invalid:  # a failed concurrent build left it behind
            op.drop_index(STATUS_INDEX, table_name="leads", postgresql_concurrently=True)
        op.create_index(
            STATUS_INDEX,
            "leads",
            columns,
            postgresql_where=sa.text("merged_into_id IS NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(
                STATUS_INDEX, table_name="leads", postgresql_concurrently=True, if_exists=True
            )
    else:
        op.drop_index(STATUS_INDEX, table_name="leads")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_inserted ON leads")
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_updated ON leads")
        op.execute("DROP FUNCTION IF EXISTS funnel_mark_inserted()")
        op.execute("DROP FUNCTION IF EXISTS funnel_mark_updated()")
    else:
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_inserted")
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_updated")
    op.drop_index("ix_funnel_dirty_days_site_id_day", table_name="funnel_dirty_days")
    op.drop_table("funnel_dirty_days")
    op.drop_index("ix_funnel_counts_site_id_day", table_name="funnel_counts")
    op.drop_table("funnel_counts")
    op.drop_table("funnel_rollups")
