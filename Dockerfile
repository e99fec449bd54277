# Backoffice: Django + gunicorn + whitenoise in one image.
# Build:   docker build -t backoffice .
# Migrate: docker run --rm --env-file backoffice.env backoffice python manage.py migrate
# Run:     docker run -d -p 8000:8000 --env-file backoffice.env backoffice
# Worker:  docker run -d --restart unless-stopped --env-file backoffice.env backoffice \
#            python manage.py run_worker
#          (background tasks, e.g. order_paid after a payment, and the periodic jobs:
#          run at least one beside the web containers, on the same database; it exits
#          when the database goes away, hence the restart policy; see the README's
#          "Scaling out")
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A fixed numeric id, so volume permissions and `USER` resolve the same everywhere.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are collected (hashed, compressed) into the image. Settings need a
# secret key and an encryption key to load: throwaway values used for this step only.
RUN DJANGO_DEBUG=0 \
    DJANGO_SECRET_KEY=collectstatic-build-step-only \
    BACKOFFICE_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var \
    && chown 10001:10001 /app/var

USER 10001:10001

EXPOSE 8000

# /healthz answers 200 when the database does; urlopen raises (exit 1) on 503 or no answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py"]
