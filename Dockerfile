# serversync's image: the web app (gunicorn), the Celery worker and beat all run from it;
# docker-compose.yml picks the command. Settings come from the environment (README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 serversync
WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install .

COPY --chown=serversync:serversync . .
# Static files are collected into the image (whitenoise serves them); DEBUG only
# lends this one build step the development keys the settings insist on.
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var /data/media \
    && chown -R serversync:serversync /app/var /data

USER serversync
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
