"""Scoring: rule-set schemas, the pure scoring engine, versions and preview."""
