# OmniHub's own processes (api, projector, worker); docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
# Bytecode written at build time: PYTHONDONTWRITEBYTECODE stops it at run time, and the
# worker's sandbox imports the workflow module again for every run (apps/worker.py).
RUN pip install --no-deps . \
    && python -m compileall -q /app \
    && useradd --system --uid 10001 --home-dir /app omnihub \
    && mkdir -p /app/.omnihub && chown omnihub /app/.omnihub

# The schemas ship inside the package; the state folder is the working directory's.
ENV OMNIHUB_STATE_DIR=/app/.omnihub

USER omnihub
EXPOSE 8000
CMD ["omnihub", "api", "run", "--host", "0.0.0.0", "--port", "8000"]
