from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("email", models.EmailField(max_length=254)),
                ("amount_cents", models.PositiveIntegerField()),
                ("customer", models.CharField(max_length=50)),
                ("status", models.CharField(default="pending", max_length=20)),
                ("payment_intent", models.CharField(blank=True, default="", max_length=50)),
                ("receipt_sent", models.BooleanField(default=False)),
                ("partner_notified", models.BooleanField(default=False)),
            ],
        ),
    ]
