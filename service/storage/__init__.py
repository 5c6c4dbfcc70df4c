"""Storage: the database engine, the replay cache, issued cards, feedback, and schema migrations.

It knows no Flask."""
