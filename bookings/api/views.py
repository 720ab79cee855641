"""Bookings endpoints: parse input, call one service, shape output. One class per operation."""

from __future__ import annotations

import re
import threading
from typing import Any, cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from bookings.api.filters import BookingFilter
from bookings.api.serializers import (
    BOOKING_CANCELLED_EXAMPLE,
    BOOKING_CREATE_EXAMPLE,
    BOOKING_CREATE_FOR_SOMEONE_ELSE_EXAMPLE,
    BOOKING_EXAMPLE,
    BookingCreateInputSerializer,
    BookingOutputSerializer,
)
from bookings.models import Booking
from bookings.selectors import booking_get_for_user, booking_list_for_user
from bookings.services import booking_cancel, booking_create_or_replay
from tourapp.exceptions import DomainError
from tourapp.throttling import RedisScopedRateThrottle

IDEMPOTENCY_HEADER = "Idempotency-Key"
_SANE_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII, as stored (max 128)

_ERROR = OpenApiResponse(OpenApiTypes.OBJECT)  # the Error shape and a description per status: tourapp/openapi.py
_IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Optional, per user. A retried request with the same key returns the same booking "
    "(200) instead of booking twice; reusing a key for a request that differs in any field is a 409.",
)
_BOOKING_ID_PARAMETER = OpenApiParameter(
    "booking_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The id of one of your bookings."
)


def _customer(request: Request) -> User:
    """The authenticated user (every view calling this has ``IsAuthenticated``)."""
    return cast(User, request.user)


def _error_example(name: str, code: str, message: str, status_code: int, **fields: list[str]) -> OpenApiExample:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return OpenApiExample(name, value={"error": error}, response_only=True, status_codes=[status_code])


_NOT_FOUND_EXAMPLE = _error_example("Not yours, or no such booking", "not_found", "No booking 42 for this user.", 404)
_BOOKING_RESPONSE_EXAMPLE = OpenApiExample("A confirmed, paid booking", value=BOOKING_EXAMPLE, response_only=True)


_output = threading.local()


def _booking_data(booking: Booking) -> dict[str, Any]:
    """``BookingOutputSerializer(booking).data`` with one serializer per thread, reused as
    ``ListSerializer`` reuses its child: binding the fields anew for every response cost more
    than rendering them."""
    serializer = getattr(_output, "serializer", None)
    if serializer is None:
        serializer = _output.serializer = BookingOutputSerializer()
    return serializer.to_representation(booking)


class InvalidIdempotencyKey(DomainError):
    code = "invalid"


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _SANE_IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey(
            "The Idempotency-Key header is invalid.",
            fields={IDEMPOTENCY_HEADER: ["1 to 128 visible ASCII characters, e.g. a UUID."]},
        )
    return key


class BookingListApi(generics.ListAPIView):
    """Your bookings, newest first, a page at a time. Narrow them with status, payment_status,
    departure, tour, starts_after and starts_before; choose the page size with page_size."""

    permission_classes = [IsAuthenticated]
    serializer_class = BookingOutputSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = BookingFilter

    def get_queryset(self) -> QuerySet[Booking]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the filters: no user
            return Booking.objects.none()
        return booking_list_for_user(user=_customer(self.request))

    @extend_schema(
        operation_id="bookings_list",
        summary="List my bookings (newest first, paginated, filterable)",
        description="Only your own bookings, newest first. Every filter narrows the list and they combine "
        "(AND); a value that does not parse is a 400 naming the parameter. The departure date range is "
        "half-open: starts_after <= starts_at < starts_before.",
        examples=[
            OpenApiExample("A page with one booking", value=BOOKING_EXAMPLE, response_only=True),
            _error_example(
                "A bad filter value",
                "invalid",
                "The request has invalid fields.",
                400,
                status=["Select a valid choice. booked is not one of the available choices."],
            ),
        ],
        responses={200: BookingOutputSerializer(many=True), 400: _ERROR, 401: _ERROR},
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class BookingCreateApi(APIView):
    """Book seats on a departure. The price, currency, status and owner are set by the server. Send an
    Idempotency-Key header to retry safely: the same key returns the same booking."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "bookings"

    def get_throttles(self) -> list[BaseThrottle]:
        return [RedisScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="bookings_create",
        summary="Book seats on a departure",
        description="Price, currency, status and owner are set by the server; sending them is a 400. "
        "The booking and its tour.booked event are written in one transaction. The payment is charged "
        "afterwards: payment_status starts pending, then becomes paid, or failed (the booking is then "
        "cancelled and its seats released).",
        parameters=[_IDEMPOTENCY_PARAMETER],
        request=BookingCreateInputSerializer,
        examples=[
            OpenApiExample("Two standard seats", value=BOOKING_CREATE_EXAMPLE, request_only=True),
            OpenApiExample(
                "For someone else, with a payment token",
                value=BOOKING_CREATE_FOR_SOMEONE_ELSE_EXAMPLE,
                request_only=True,
            ),
            OpenApiExample(
                "Booked",
                value={**BOOKING_EXAMPLE, "payment_status": "pending"},
                response_only=True,
                status_codes=[201],
            ),
            OpenApiExample(
                "Replay of the same Idempotency-Key",
                value={**BOOKING_EXAMPLE, "payment_status": "pending"},
                response_only=True,
                status_codes=[200],
            ),
            _error_example(
                "Server-set field sent",
                "invalid",
                "The request has invalid fields.",
                400,
                total_price=["This field is set by the server and cannot be sent."],
            ),
            _error_example(
                "Not enough seats left",
                "seats_unavailable",
                "Only 1 seat(s) left on this departure; 2 requested.",
                409,
                seats=["Only 1 seat(s) left."],
            ),
        ],
        responses={
            201: BookingOutputSerializer,
            200: OpenApiResponse(BookingOutputSerializer, description="Idempotent replay: the earlier booking."),
            400: _ERROR,
            401: _ERROR,
            409: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Not enough seats, per-user limit, key reused for another request."
            ),
            429: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Throttled, or the daily cap of confirmations to other people."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        idempotency_key = _idempotency_key(request)
        serializer = BookingCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = booking_create_or_replay(
            user=_customer(request), idempotency_key=idempotency_key, **serializer.validated_data
        )
        return Response(
            _booking_data(result.booking),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class BookingCollectionApi(BookingListApi, BookingCreateApi):
    """Your bookings. GET lists them, newest first, a page at a time; narrow the list with status,
    payment_status, departure, tour, starts_after and starts_before, and choose page_size.

    POST books seats on a departure: departure_id, seats and tier, optionally contact_email,
    contact_phone and payment_token. The price, currency, status and owner are set by the server.
    Send an Idempotency-Key header to retry safely: the same key returns the same booking."""

    def get_serializer_class(self) -> type[Serializer]:
        # The browsable API builds its POST form from this: offer the input fields, not the output ones.
        if self.request is not None and self.request.method == "POST":
            return BookingCreateInputSerializer
        return BookingOutputSerializer


class BookingDetailApi(APIView):
    """One of your bookings. Someone else's booking is "not found", as if it did not exist."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="bookings_retrieve",
        summary="One of my bookings (anyone else's is a 404)",
        parameters=[_BOOKING_ID_PARAMETER],
        examples=[_BOOKING_RESPONSE_EXAMPLE, _NOT_FOUND_EXAMPLE],
        responses={200: BookingOutputSerializer, 401: _ERROR, 404: _ERROR},
    )
    def get(self, request: Request, booking_id: int) -> Response:
        booking = booking_get_for_user(user=_customer(request), booking_id=booking_id)
        return Response(_booking_data(booking))


class BookingCancelApi(APIView):
    """Cancel one of your bookings: its seats are released and a paid booking is refunded.
    Cancelling a booking that is already cancelled changes nothing and answers the same; once its
    departure has started, a booking can no longer be cancelled (409)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="bookings_cancel",
        summary="Cancel one of my bookings (releases the seats; cancelling twice is harmless)",
        parameters=[_BOOKING_ID_PARAMETER],
        request=None,
        examples=[
            OpenApiExample("Cancelled", value=BOOKING_CANCELLED_EXAMPLE, response_only=True),
            _NOT_FOUND_EXAMPLE,
            _error_example(
                "The departure has started",
                "booking_not_cancellable",
                "This departure has already started; the booking can no longer be cancelled.",
                409,
            ),
        ],
        responses={200: BookingOutputSerializer, 401: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def post(self, request: Request, booking_id: int) -> Response:
        booking = booking_cancel(user=_customer(request), booking_id=booking_id)
        return Response(_booking_data(booking))
