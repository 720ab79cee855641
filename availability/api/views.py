"""Public tour catalogue: tours with their upcoming departures and seats left."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from availability.api.serializers import TourOutputSerializer
from availability.selectors import tour_get, tour_list


class TourListApi(generics.ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = TourOutputSerializer

    def get_queryset(self):
        return tour_list()

    @extend_schema(operation_id="tours_list", summary="Tours with their upcoming departures (paginated)")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class TourDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="tours_retrieve",
        summary="One tour, by id or slug, with its upcoming departures",
        parameters=[OpenApiParameter("id_or_slug", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: TourOutputSerializer},
    )
    def get(self, request: Request, id_or_slug: str) -> Response:
        return Response(TourOutputSerializer(tour_get(id_or_slug=id_or_slug)).data)
