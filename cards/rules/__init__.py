"""The clinical rules, one module per card family: facts, today and the knowledge base in, cards out."""
