"""Public tour catalogue: tours with their upcoming departures and seats left."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from availability.api.serializers import TOUR_EXAMPLE, TourOutputSerializer
from availability.selectors import tour_get, tour_list


class TourListApi(generics.ListAPIView):
    """The tour catalogue, by name, a page at a time (choose the size with page_size). Each tour lists
    its upcoming departures with the seats they have left. No account needed."""

    permission_classes = [AllowAny]
    serializer_class = TourOutputSerializer

    def get_queryset(self):
        return tour_list()

    @extend_schema(
        operation_id="tours_list",
        summary="Tours with their upcoming departures (paginated)",
        examples=[OpenApiExample("A page with one tour", value=TOUR_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class TourDetailApi(APIView):
    """One tour, by its id or its slug, with its upcoming departures and the seats they have left.
    No account needed."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="tours_retrieve",
        summary="One tour, by id or slug, with its upcoming departures",
        parameters=[
            OpenApiParameter(
                "id_or_slug",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The tour's id (e.g. 3) or its slug (e.g. lisbon-by-tram).",
            )
        ],
        examples=[
            OpenApiExample("A tour", value=TOUR_EXAMPLE, response_only=True),
            OpenApiExample(
                "No such tour",
                value={"error": {"code": "not_found", "message": "No tour with id or slug 'atlantis'."}},
                response_only=True,
                status_codes=[404],
            ),
        ],
        responses={
            200: TourOutputSerializer,
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="No tour with this id or slug."),
        },
    )
    def get(self, request: Request, id_or_slug: str) -> Response:
        return Response(TourOutputSerializer(tour_get(id_or_slug=id_or_slug)).data)
