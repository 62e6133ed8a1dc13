"""The funnel's rollup: per-site, per-UTC-day counts of the leads first seen that day
(`funnel_counts`), how far each site is rolled up (`funnel_rollups`), and the changes since
(`funnel_deltas`), written by triggers on `leads` in the writing transaction (see
app/leads/models.py). New tables only: nothing to backfill here, the rollup loop counts the
past days of each site on its first pass, and until then the funnel reads leads as before.

Also indexes, built CONCURRENTLY on PostgreSQL as in migration 0008: for the leads list
filtered by status (a status few leads have, such as won, would otherwise walk the sort's
index through every lead), and for speed to lead two that replace 0008's so that its reads are
index-only scans: turned hot with the first contact, and awaiting contact with status new.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An update writes deltas only when it changes what the funnel counts (most updates of a lead
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

COLUMNS = "site_id, day, temperature, status, lost_reason, identified, contacted, leads"
PG_DAY = "date_trunc('day', {}, 'UTC')"


def _pg_delta(row: str, sign: str) -> str:
    return f"""
    IF {row}.merged_into_id IS NULL AND {row}.first_seen_at IS NOT NULL THEN
        INSERT INTO funnel_deltas ({COLUMNS}) VALUES (
            {row}.site_id, {PG_DAY.format(row + ".first_seen_at")}, {row}.temperature,
            {row}.status, {row}.lost_reason, {row}.identified,
            {row}.first_contacted_at IS NOT NULL, {sign}1);
    END IF;"""


PG_FUNCTIONS = [
    f"""
CREATE FUNCTION funnel_leads_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO funnel_deltas ({COLUMNS})
    SELECT site_id, {PG_DAY.format("first_seen_at")}, temperature, status, lost_reason,
        identified, first_contacted_at IS NOT NULL, count(*)
    FROM new_leads WHERE merged_into_id IS NULL AND first_seen_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION funnel_leads_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_pg_delta("OLD", "-")}{_pg_delta("NEW", "+")}
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
    FOR EACH STATEMENT EXECUTE FUNCTION funnel_leads_inserted()
""",
    f"""
CREATE TRIGGER funnel_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN ({FUNNEL_CHANGED})
    EXECUTE FUNCTION funnel_leads_updated()
""",
]

# SQLite stores timestamps as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (app.db.UTCDateTime).
SQLITE_DAY = "strftime('%Y-%m-%d 00:00:00.000000', {})"


def _sqlite_delta(row: str, sign: str) -> str:
    return f"""
    INSERT INTO funnel_deltas ({COLUMNS})
    SELECT {row}.site_id, {SQLITE_DAY.format(row + ".first_seen_at")}, {row}.temperature,
        {row}.status, {row}.lost_reason, {row}.identified,
        {row}.first_contacted_at IS NOT NULL, {sign}1
    WHERE {row}.merged_into_id IS NULL AND {row}.first_seen_at IS NOT NULL;"""


SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER funnel_leads_inserted AFTER INSERT ON leads FOR EACH ROW
BEGIN{_sqlite_delta("NEW", "+")}
END
""",
    f"""
CREATE TRIGGER funnel_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN {FUNNEL_CHANGED.replace("IS DISTINCT FROM", "IS NOT")}
BEGIN{_sqlite_delta("OLD", "-")}{_sqlite_delta("NEW", "+")}
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
        "funnel_deltas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("temperature", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lost_reason", sa.String(length=32), nullable=True),
        sa.Column("identified", sa.Boolean(), nullable=False),
        sa.Column("contacted", sa.Boolean(), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funnel_deltas")),
    )
    op.create_index("ix_funnel_deltas_site_id_day", "funnel_deltas", ["site_id", "day"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in [*PG_FUNCTIONS, *PG_TRIGGERS] if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)
    _build(NEW_INDEXES, [name for name, _, _ in OLD_INDEXES])


LIVE = "merged_into_id IS NULL"
HOT_LIVE = "became_hot_at IS NOT NULL AND merged_into_id IS NULL"
AWAITING = "contact_by IS NOT NULL AND first_contacted_at IS NULL AND merged_into_id IS NULL"
NEW_INDEXES = [
    ("ix_leads_site_id_status", ["site_id", "status"], LIVE),
    (
        "ix_leads_site_id_became_hot_at_contacted",
        ["site_id", "became_hot_at", "first_contacted_at"],
        HOT_LIVE,
    ),
    (
        "ix_leads_site_id_contact_by_new",
        ["site_id", "contact_by"],
        f"{AWAITING} AND status = 'new'",
    ),
]
OLD_INDEXES = [
    ("ix_leads_site_id_became_hot_at", ["site_id", "became_hot_at"], HOT_LIVE),
    ("ix_leads_site_id_contact_by", ["site_id", "contact_by"], AWAITING),
]


def _build(indexes: list[tuple[str, list[str], str]], drop: list[str]) -> None:
    """Create `indexes` (partial), then drop the indexes named in `drop`."""
    if op.get_bind().dialect.name != "postgresql":
        for name, columns, where in indexes:
            op.create_index(name, "leads", columns, sqlite_where=sa.text(where))
        for name in drop:
            op.drop_index(name, table_name="leads")
        return
    with op.get_context().autocommit_block():
        for name, columns, where in indexes:
            invalid = op.get_bind().scalar(
                sa.text(
                    "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                ),
                {"name": name},
            )
            if invalid:  # a failed concurrent build left it behind
                op.drop_index(name, table_name="leads", postgresql_concurrently=True)
            op.create_index(
                name,
                "leads",
                columns,
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        for name in drop:
            op.drop_index(name, table_name="leads", postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    _build(OLD_INDEXES, [name for name, _, _ in NEW_INDEXES])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_inserted ON leads")
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_updated ON leads")
        op.execute("DROP FUNCTION IF EXISTS funnel_leads_inserted()")
        op.execute("DROP FUNCTION IF EXISTS funnel_leads_updated()")
    else:
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_inserted")
        op.execute("DROP TRIGGER IF EXISTS funnel_leads_updated")
    op.drop_index("ix_funnel_deltas_site_id_day", table_name="funnel_deltas")
    op.drop_table("funnel_deltas")
    op.drop_index("ix_funnel_counts_site_id_day", table_name="funnel_counts")
    op.drop_table("funnel_counts")
    op.drop_table("funnel_rollups")
