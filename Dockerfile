# The fake services, and the example shop's worker, in one image.
#
#   docker build -t retry-harness .
#   docker run --rm -p 127.0.0.1:8000:8000 retry-harness          # the fake services on localhost:8000
#
# compose.yaml builds it for its fake-services and shop-worker services; see docs/containers.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package with RQ (the shop's worker) and psycopg (a DATABASE_URL on PostgreSQL); the shop's
# database layer needs SQLAlchemy, which no extra of the package carries.
COPY pyproject.toml README.md ./
COPY harness/ harness/
COPY fake_services/ fake_services/
RUN pip install ".[rq,postgres]" "sqlalchemy>=2"

# The example shop is no part of the package: it runs from the working directory
# (python -m scenarios.shop.worker).
COPY scenarios/ scenarios/

# Never root; /data holds the shop's SQLite file when a volume is mounted there.
RUN useradd --create-home --uid 10001 harness && mkdir /data && chown harness /data
USER harness

EXPOSE 8000
# The control API's list of behaviours: answered by the running app, and never written to the journal.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/behaviors', timeout=2)"]

# Every interface inside the container, so the other containers reach it as http://fake-services:8000.
# The container's published port is the boundary (compose.yaml and the docker run line above publish it
# on the host's loopback only), so the control API is opened deliberately: no token, and the compose
# network's name served. To publish it wider, drop --no-token and set HARNESS_SERVE_TOKEN instead.
CMD ["harness", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-token", "--allow-host", "fake-services"]
