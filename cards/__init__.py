"""Clinical rules of tacro-cds: patient facts and today's date in, cards out.

This package is pure. It imports neither Flask, requests, ``service``, the clock nor ``uuid``:
everything it needs arrives as arguments (facts, ``today``, the knowledge base), and everything it
returns is plain data (``cards.model``). ``tests/test_architecture.py`` keeps it that way.
"""
