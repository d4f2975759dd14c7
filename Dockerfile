# The gateway's image: `docker build -t integrity-gateway .`
# Production settings only (no dev mode, no demo seeding); every setting comes from the
# environment (README, Configuration). Runs `serve` by default; `watch` for the watcher.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY resolvers ./resolvers
COPY loaders ./loaders
RUN python -m pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/integrity-gateway --create-home gateway
COPY --from=build /install /usr/local
USER gateway
WORKDIR /var/lib/integrity-gateway
ENV GATEWAY_DEV_MODE=false \
    GATEWAY_SEED_ENTERPRISES=0 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATA_DIR=/var/lib/integrity-gateway \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["integrity-gateway"]
CMD ["serve"]
