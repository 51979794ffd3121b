# One image for every service; docker-compose.yml picks the command.
# The pages' browser libraries come from the npm registry, pinned by package-lock.json.
FROM node:20-slim AS vendor
WORKDIR /ui
COPY services/ui/package.json services/ui/package-lock.json services/ui/copy-vendor.mjs ./
RUN npm ci --no-audit --no-fund && npm run vendor

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 JT_VAR_DIR=/var/lib/justtrades
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/justtrades justtrades
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY libs ./libs
COPY services ./services
COPY tools ./tools
COPY --from=vendor /ui/static/vendor ./services/ui/static/vendor
COPY migrations ./migrations
COPY simulators ./simulators
RUN pip install .
USER justtrades
ENTRYPOINT ["justtrades"]
