from django.urls import path

from orders import api

urlpatterns = [
    path("orders", api.OrderListCreateView.as_view(), name="orders"),
    # Before orders/<client_order_id>: "slice" is not an order id.
    path("orders/slice", api.SliceCreateView.as_view(), name="orders-slice"),
    path("orders/<str:client_order_id>", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:client_order_id>/cancel", api.OrderCancelView.as_view(), name="order-cancel"),
    path("plans/<int:plan_id>", api.PlanDetailView.as_view(), name="plan-detail"),
    path("plans/<int:plan_id>/slices", api.PlanSlicesView.as_view(), name="plan-slices"),
]
