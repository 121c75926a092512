from django.urls import path

from signals import api

urlpatterns = [
    path("signals", api.SignalListView.as_view(), name="signals"),
    path("models", api.ModelListView.as_view(), name="models"),
]
