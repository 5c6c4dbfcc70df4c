FROM python:3.11-slim
WORKDIR /app
# Exact, hash-checked versions first (requirements.lock, see docs/development.md "Dependencies"), then the
# service itself without resolving anything again.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY setup.cfg pyproject.toml README.md LICENSE gunicorn.conf.py ./
COPY service ./service
COPY cards ./cards
RUN pip install --no-cache-dir --no-deps '.[postgres]' && pip check && useradd --system --uid 10001 tacro \
    && install -d -o tacro -g tacro -m 0700 /var/lib/tacro-cds
USER tacro
# The service's folder (SQLite when FEEDBACK_DB is unset, the generated SECRET_KEY, SMART sessions).
ENV PORT=8080 TACRO_CDS_DATA_DIR=/var/lib/tacro-cds
VOLUME /var/lib/tacro-cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)" || exit 1
# gunicorn the conventional way: its settings come from gunicorn.conf.py (the package's; each from an
# environment variable with a default: GUNICORN_BIND / PORT, WEB_CONCURRENCY, GUNICORN_THREADS,
# GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE, FORWARDED_ALLOW_IPS), then
# GUNICORN_CMD_ARGS. exec form: SIGTERM (docker stop) reaches gunicorn, which lets calls in flight
# finish within graceful_timeout; give `docker stop` / stop_grace_period more than that.
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
