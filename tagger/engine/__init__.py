"""The engine: one decode pass, the analysis cache, decisions, evidence."""
