# sealscope services image: `sealscope ingest | api | sim ...` (see docker-compose.yml).
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml, so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && sealscope --help > /dev/null


FROM python:3.11-slim

# Fixed ids so volume ownership is stable across image rebuilds.
RUN groupadd --system --gid 10001 sealscope \
    && useradd --system --uid 10001 --gid sealscope --home-dir /var/lib/sealscope \
        --shell /usr/sbin/nologin sealscope \
    && install -d -o sealscope -g sealscope -m 0750 /var/lib/sealscope

COPY --from=build /opt/venv /opt/venv

# The API listens on every interface of the container but answers only to the Host names
# listed here (400 otherwise): the loopback names reached through a published port. Set
# SEALSCOPE_API_ALLOWED_HOSTS to the names clients really use (compose passes it).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEALSCOPE_DATA_DIR=/var/lib/sealscope \
    SEALSCOPE_API_HOST=0.0.0.0 \
    SEALSCOPE_API_ALLOWED_HOSTS=localhost,127.0.0.1,[::1]

# A named volume mounted here starts as a copy of this directory, owned by sealscope.
VOLUME ["/var/lib/sealscope"]
WORKDIR /var/lib/sealscope
USER sealscope:sealscope
EXPOSE 8000

ENTRYPOINT ["sealscope"]
CMD ["--help"]
