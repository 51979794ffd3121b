# One image for every service; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 JT_VAR_DIR=/var/lib/justtrades
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/justtrades justtrades
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY libs ./libs
COPY services ./services
COPY migrations ./migrations
RUN pip install .
USER justtrades
ENTRYPOINT ["justtrades"]
