"""Production settings of the shop (the parts that matter here)."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "change-me"
DEBUG = False
INSTALLED_APPS = ["django.contrib.contenttypes", "orders"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "shop.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# The receipt goes out through the company's mail relay.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp.shop.example"
EMAIL_PORT = 587
DEFAULT_FROM_EMAIL = "orders@shop.example"

STRIPE_API_KEY = "sk_live_replace_me"
# The warehouse partner is told of every paid order.
PARTNER_ORDERS_URL = "https://api.warehouse.example/v2/orders"

CELERY_BROKER_URL = "redis://localhost:6379/0"
CELERY_TASK_ACKS_LATE = True
