# Leadheat API (and webhook delivery) in one image: `leadheat serve` against LEADHEAT_DATABASE_URL.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LEADHEAT_HOST=0.0.0.0 \
    LEADHEAT_PORT=8000 \
    LEADHEAT_DATABASE_URL=sqlite+aiosqlite:////data/leadheat.db

WORKDIR /srv/leadheat
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# Editable install: the migrations stay beside the code, where `leadheat migrate` finds them.
RUN pip install -e . \
    && useradd --system --uid 10001 leadheat \
    && mkdir -p /data && chown leadheat /data

USER leadheat
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['LEADHEAT_PORT'])"
CMD ["leadheat", "serve"]
