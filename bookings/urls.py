from django.urls import path

from . import views

app_name = "bookings"
urlpatterns = [
    path("portal/rooms/", views.rooms, name="rooms"),
    path("portal/rooms/<int:pk>/", views.room_day, name="room_day"),
    path("portal/rooms/<int:pk>/week/", views.room_week, name="room_week"),
    path("portal/rooms/<int:pk>/book/", views.book, name="book"),
    path("portal/bookings/", views.my_bookings, name="my_bookings"),
    path("portal/bookings/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("portal/bookings/calendar/rotate/", views.rotate_feed, name="rotate_feed"),
    path("calendar/<str:token>.ics", views.calendar_feed, name="calendar_feed"),
]
