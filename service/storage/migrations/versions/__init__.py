"""Alembic revisions, oldest first: each one's ``down_revision`` names the one it builds on."""
