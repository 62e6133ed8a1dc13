"""Every domain's tables, imported once so that metadata (and alembic) sees them all."""

from app import leases as lease_models
from app.audiences import models as audience_models
from app.channels import models as channels_models
from app.db import Base
from app.domain import privacy as privacy_models
from app.domain import tables as domain_tables
from app.ingestion import repairs as ingestion_models
from app.leads import models as leads_models
from app.scoring import models as scoring_models
from app.sites import models as sites_models
from app.team import models as team_models
from app.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "audience_models",
    "channels_models",
    "domain_tables",
    "ingestion_models",
    "lease_models",
    "leads_models",
    "metadata",
    "privacy_models",
    "scoring_models",
    "sites_models",
    "team_models",
    "webhooks_models",
]
