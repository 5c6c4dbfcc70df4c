"""The pilot's review side: the rulebook a committee signs, and the reviewers' pages (adjudication,
analytics). The rulebook is built from the knowledge base and the rules' own descriptions, never
written by hand."""
