"""Development tools for tacro-cds: the demo, the fixture loader and the development EHR.

They are not part of the installed service (``pip install .`` carries ``service`` and ``cards``
only) and nothing in ``service`` or ``cards`` imports them. Run them from a checkout::

    python -m tacro_dev demo
    python -m tacro_dev fixtures load --fhir-server URL
    python -m tacro_dev dev-ehr
"""
