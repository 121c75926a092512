from django.apps import AppConfig


class PaperBrokerConfig(AppConfig):
    name = "paperbroker"
    verbose_name = "Paper broker"
