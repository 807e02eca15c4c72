"""The daily report (volume, sentiment, entities, data quality, model versions) and drift."""
