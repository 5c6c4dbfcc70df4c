"""Operations: metrics, logs, the gunicorn worker and its settings file."""
