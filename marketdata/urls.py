from django.urls import path

from marketdata import api

urlpatterns = [
    path("quotes/<str:symbol>/latest", api.QuoteLatestView.as_view(), name="quote-latest"),
]
