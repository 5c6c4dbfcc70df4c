"""gunicorn settings for tacro-cds: ``gunicorn -c gunicorn.conf.py`` (or plain ``gunicorn``, which reads
this file from the working folder). The settings live in the package, ``service/ops/gunicorn.conf.py``,
so that an installed service (the image, ``pip install .``) has them too; this file runs that one.
It locates the package without importing it (see that file's note on prometheus-client)."""

import importlib.util
import os
import runpy

_spec = importlib.util.find_spec("service")
if _spec is None or _spec.origin is None:
    raise SystemExit("tacro-cds: the service package is not installed (pip install .)")
globals().update(runpy.run_path(os.path.join(os.path.dirname(_spec.origin), "ops", "gunicorn.conf.py")))
