"""WSGI entry point (gunicorn tradeops.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
application = get_wsgi_application()
