"""Speed to lead's rollup: per-site, per-UTC-day (of `became_hot_at`), per-owner counts of
the hot leads by outcome and of the contacted ones by the bucket of their wait
(`speed_counts`), how far each site is counted (`funnel_rollups.speed_rolled_until`), and the
changes since (`speed_deltas`), written by triggers on `leads` in the writing transaction
(see app/leads/models.py and app/leads/waits.py). Nothing to backfill here: the rollup loop
counts each site's past days on its first pass, and until then speed to lead reads the leads.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of app.leads.waits (TIERS, bucket_sql) as of this revision: the triggers keep
# what they were created with (tests compare them with the app's buckets).
MICRO = 1_000_000
TIERS: tuple[tuple[int | None, int], ...] = (
    (600, 1),
    (3600, 10),
    (4 * 3600, 60),
    (86400, 300),
    (7 * 86400, 1800),
    (60 * 86400, 3 * 3600),
    (365 * 86400, 86400),
    (None, 7 * 86400),
)


def _bucket_sql(dialect: str, became_hot_at: str, first_contacted_at: str) -> str:
    if dialect == "postgresql":
        wait = f"EXTRACT(EPOCH FROM ({first_contacted_at} - {became_hot_at}))"
        branches = [
            f"WHEN {wait} <= {last} THEN CAST(ceil({wait} / {width}) * {width} AS integer)"
            for last, width in TIERS[:-1]
            if last is not None
        ]
        final = f"CAST(ceil({wait} / {TIERS[-1][1]}) * {TIERS[-1][1]} AS integer)"
    else:

        def micros(column: str) -> str:
            return (
                f"(CAST(strftime('%s', {column}) AS INTEGER) * {MICRO}"
                f" + CAST(substr({column}, 21, 6) AS INTEGER))"
            )

        wait = f"({micros(first_contacted_at)} - {micros(became_hot_at)})"

        def ceil(width: int) -> str:
            return f"(({wait} + {width * MICRO - 1}) / {width * MICRO}) * {width}"

        branches = [
            f"WHEN {wait} <= {last * MICRO} THEN {ceil(width)}"
            for last, width in TIERS[:-1]
            if last is not None
        ]
        final = ceil(TIERS[-1][1])
    return f"(CASE WHEN {wait} <= 0 THEN 0 {' '.join(branches)} ELSE {final} END)"


def _outcome(row: str) -> str:
    return f"(CASE WHEN {row}status IN ('won', 'lost') THEN {row}status END)"


def _reason(row: str) -> str:
    return f"(CASE WHEN {row}status = 'lost' THEN {row}lost_reason END)"


# An update writes deltas only when it changes what speed to lead counts; ingestion's usual
# update (a new event) and most status moves (new -> contacted -> qualified) fire nothing.
SPEED_CHANGED = f"""
    OLD.became_hot_at IS DISTINCT FROM NEW.became_hot_at
    OR OLD.first_contacted_at IS DISTINCT FROM NEW.first_contacted_at
    OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    OR {_outcome("OLD.")} IS DISTINCT FROM {_outcome("NEW.")}
    OR {_reason("OLD.")} IS DISTINCT FROM {_reason("NEW.")}
    OR OLD.merged_into_id IS DISTINCT FROM NEW.merged_into_id
    OR OLD.site_id IS DISTINCT FROM NEW.site_id
"""
COUNTS = "merged_into_id IS NULL AND {}became_hot_at IS NOT NULL"
COLUMNS = "site_id, day, owner_id, wait_bucket, outcome, lost_reason, hot_leads, contacted"
PG_DAY = "date_trunc('day', {}, 'UTC')"
SQLITE_DAY = "strftime('%Y-%m-%d 00:00:00.000000', {})"


def _pg_delta(row: str, sign: str) -> str:
    bucket = _bucket_sql("postgresql", f"{row}.became_hot_at", f"{row}.first_contacted_at")
    return f"""
    IF {row}.merged_into_id IS NULL AND {row}.became_hot_at IS NOT NULL THEN
        INSERT INTO speed_deltas ({COLUMNS}) VALUES (
            {row}.site_id, {PG_DAY.format(row + ".became_hot_at")}, {row}.owner_id, {bucket},
            {_outcome(row + ".")}, {_reason(row + ".")}, {sign}1,
            CASE WHEN {row}.first_contacted_at IS NULL THEN 0 ELSE {sign}1 END);
    END IF;"""


_PG_BUCKET = _bucket_sql("postgresql", "became_hot_at", "first_contacted_at")
PG_FUNCTIONS = [
    f"""
CREATE FUNCTION speed_leads_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO speed_deltas ({COLUMNS})
    SELECT site_id, {PG_DAY.format("became_hot_at")}, owner_id, {_PG_BUCKET}, {_outcome("")},
        {_reason("")}, count(*), count(first_contacted_at)
    FROM new_leads WHERE merged_into_id IS NULL AND became_hot_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION speed_leads_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_pg_delta("OLD", "-")}{_pg_delta("NEW", "+")}
    RETURN NULL;
END $$
""",
]

PG_TRIGGERS = [
    """
CREATE TRIGGER speed_leads_inserted AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION speed_leads_inserted()
""",
    f"""
CREATE TRIGGER speed_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN ({SPEED_CHANGED})
    EXECUTE FUNCTION speed_leads_updated()
""",
]


def _sqlite_delta(row: str, sign: str) -> str:
    bucket = _bucket_sql("sqlite", f"{row}.became_hot_at", f"{row}.first_contacted_at")
    return f"""
    INSERT INTO speed_deltas ({COLUMNS})
    SELECT {row}.site_id, {SQLITE_DAY.format(row + ".became_hot_at")}, {row}.owner_id,
        {bucket}, {_outcome(row + ".")}, {_reason(row + ".")}, {sign}1,
        CASE WHEN {row}.first_contacted_at IS NULL THEN 0 ELSE {sign}1 END
    WHERE {row}.merged_into_id IS NULL AND {row}.became_hot_at IS NOT NULL;"""


SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER speed_leads_inserted AFTER INSERT ON leads FOR EACH ROW
BEGIN{_sqlite_delta("NEW", "+")}
END
""",
    f"""
CREATE TRIGGER speed_leads_updated AFTER UPDATE ON leads
    FOR EACH ROW WHEN {SPEED_CHANGED.replace("IS DISTINCT FROM", "IS NOT")}
BEGIN{_sqlite_delta("OLD", "-")}{_sqlite_delta("NEW", "+")}
END
""",
]


def _columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("wait_bucket", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("lost_reason", sa.String(length=32), nullable=True),
        sa.Column("hot_leads", sa.Integer(), nullable=False),
        sa.Column("contacted", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("funnel_rollups") as batch:
        batch.add_column(sa.Column("speed_rolled_until", sa.DateTime(timezone=True)))
    op.create_table(
        "speed_counts",
        *_columns(),
        sa.Column("waits", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_speed_counts_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speed_counts")),
    )
    op.create_index("ix_speed_counts_site_id_day", "speed_counts", ["site_id", "day"])
    op.create_table(
        "speed_deltas", *_columns(), sa.PrimaryKeyConstraint("id", name=op.f("pk_speed_deltas"))
    )
    op.create_index("ix_speed_deltas_site_id_day", "speed_deltas", ["site_id", "day"])
    on_postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in [*PG_FUNCTIONS, *PG_TRIGGERS] if on_postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS speed_leads_inserted ON leads")
        op.execute("DROP TRIGGER IF EXISTS speed_leads_updated ON leads")
        op.execute("DROP FUNCTION IF EXISTS speed_leads_inserted()")
        op.execute("DROP FUNCTION IF EXISTS speed_leads_updated()")
    else:
        op.execute("DROP TRIGGER IF EXISTS speed_leads_inserted")
        op.execute("DROP TRIGGER IF EXISTS speed_leads_updated")
    op.drop_index("ix_speed_deltas_site_id_day", table_name="speed_deltas")
    op.drop_table("speed_deltas")
    op.drop_index("ix_speed_counts_site_id_day", table_name="speed_counts")
    op.drop_table("speed_counts")
    with op.batch_alter_table("funnel_rollups") as batch:
        batch.drop_column("speed_rolled_until")
