# Leadheat in one image: `leadheat serve` (default), `leadheat worker` or `leadheat migrate`
# against LEADHEAT_DATABASE_URL. Two stages: the first builds the wheel and its dependencies'
# wheels; the second installs them from those files only (not editable: no source tree, no
# build tools) and runs as an unprivileged user. RUN --mount needs BuildKit (Docker 23+).

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEADHEAT_HOST=0.0.0.0 \
    LEADHEAT_PORT=8000 \
    LEADHEAT_DATABASE_URL=sqlite+aiosqlite:////data/leadheat.db
# The wheels are mounted from the build stage, not copied: they stay out of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels leadheat \
    && useradd --system --uid 10001 --no-create-home leadheat \
    && mkdir -p /data && chown leadheat /data

USER leadheat
WORKDIR /data
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['LEADHEAT_PORT'])"
CMD ["leadheat", "serve"]
