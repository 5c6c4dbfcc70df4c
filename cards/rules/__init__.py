"""The clinical rules, one module per concern; each exposes ``evaluate_<concern>(facts, today, kb) -> list[Card]``."""
