"""Privacy: erasing a person (`DELETE /v1/people`) with the suppression of their identifiers,
and the retention of events (a background loop)."""
