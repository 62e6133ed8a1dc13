"""Audiences for nurturing: saved filters over the lead profile, their members kept current
as leads change, `audience.entered` / `audience.left` webhooks, counts, pages and CSV."""
