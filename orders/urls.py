from django.urls import path

from orders import api

urlpatterns = [
    path("orders", api.OrderListCreateView.as_view(), name="orders"),
    path("orders/<str:client_order_id>", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:client_order_id>/cancel", api.OrderCancelView.as_view(), name="order-cancel"),
]
