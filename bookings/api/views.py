"""Bookings endpoints: parse input, call one service, shape output. One class per operation."""

from __future__ import annotations

import re
import threading
from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from bookings.api.serializers import BookingCreateInputSerializer, BookingOutputSerializer
from bookings.models import Booking
from bookings.selectors import booking_get_for_user, booking_list_for_user
from bookings.services import booking_cancel, booking_create_or_replay
from tourapp.exceptions import DomainError
from tourapp.throttling import RedisScopedRateThrottle

IDEMPOTENCY_HEADER = "Idempotency-Key"
_SANE_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII, as stored (max 128)

_ERROR = OpenApiResponse(OpenApiTypes.OBJECT, description='{"error": {"code", "message", "fields"}}')
_IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Optional, per user. A retried request with the same key returns the same booking "
    "(200) instead of booking twice; reusing a key for a request that differs in any field is a 409.",
)


def _customer(request: Request) -> User:
    """The authenticated user (every view calling this has ``IsAuthenticated``)."""
    return cast(User, request.user)


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
    permission_classes = [IsAuthenticated]
    serializer_class = BookingOutputSerializer

    def get_queryset(self):
        return booking_list_for_user(user=_customer(self.request))

    @extend_schema(operation_id="bookings_list", summary="List my bookings (newest first, paginated)")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class BookingCreateApi(APIView):
    permission_classes = [IsAuthenticated]
    throttle_scope = "bookings"

    def get_throttles(self) -> list[BaseThrottle]:
        return [RedisScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="bookings_create",
        summary="Book seats on a departure",
        description="Price, currency, status and owner are set by the server; sending them is a 400. "
        "The booking and its tour.booked event are written in one transaction.",
        parameters=[_IDEMPOTENCY_PARAMETER],
        request=BookingCreateInputSerializer,
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
    """``/api/bookings/``: GET is ``BookingListApi``, POST is ``BookingCreateApi`` (one URL, two operations)."""

    def get_serializer_class(self) -> type[Serializer]:
        # The browsable API builds its POST form from this: offer the input fields, not the output ones.
        if self.request is not None and self.request.method == "POST":
            return BookingCreateInputSerializer
        return BookingOutputSerializer


class BookingDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="bookings_retrieve",
        summary="One of my bookings (anyone else's is a 404)",
        responses={200: BookingOutputSerializer, 401: _ERROR, 404: _ERROR},
    )
    def get(self, request: Request, booking_id: int) -> Response:
        booking = booking_get_for_user(user=_customer(request), booking_id=booking_id)
        return Response(_booking_data(booking))


class BookingCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="bookings_cancel",
        summary="Cancel one of my bookings (releases the seats; cancelling twice is harmless)",
        request=None,
        responses={200: BookingOutputSerializer, 401: _ERROR, 404: _ERROR, 409: _ERROR},
    )
    def post(self, request: Request, booking_id: int) -> Response:
        booking = booking_cancel(user=_customer(request), booking_id=booking_id)
        return Response(_booking_data(booking))
