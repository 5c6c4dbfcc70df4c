"""The ``tacro-cds`` command line."""
