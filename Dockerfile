FROM python:3.11-slim
WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY service ./service
COPY cards ./cards
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --uid 10001 tacro
USER tacro
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)" || exit 1
CMD ["tacro-cds", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
