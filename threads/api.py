"""Users' conversation threads, for the runtime (`runtime` scope writes)."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from core.api.errors import READ_ERRORS, WRITE_ERRORS, error_responses
from core.api.schemas import list_schema
from core.api.views import InputSerializer, object_or_404, query_filters
from core.models import APIKey
from threads.models import UserAssistantThread
from threads.selectors import thread_list
from threads.services import thread_delete, thread_register, thread_update


class ThreadSerializer(serializers.ModelSerializer):
    class Meta:
        model = UserAssistantThread
        fields = [
            "id",
            "user_id",
            "assistant",
            "thread_id",
            "last_used",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ThreadRegisterSerializer(InputSerializer):
    ignored_fields = (*InputSerializer.ignored_fields, "last_used")

    # Opaque ids of the runtime: kept exactly as sent (DRF would trim whitespace).
    user_id = serializers.CharField(max_length=255, trim_whitespace=False)
    assistant = serializers.PrimaryKeyRelatedField(
        queryset=Assistant.objects.all(), pk_field=serializers.UUIDField()
    )
    thread_id = serializers.CharField(max_length=255, trim_whitespace=False)


class ThreadUpdateSerializer(InputSerializer):
    ignored_fields = ()

    thread_id = serializers.CharField(max_length=255, trim_whitespace=False)


# drf-spectacular documents every PATCH body as partial; this one needs its only field.
THREAD_UPDATE_BODY = {
    "type": "object",
    "properties": {"thread_id": {"type": "string", "maxLength": 255}},
    "required": ["thread_id"],
    "additionalProperties": False,
}


class ThreadFilterSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=255, required=False, trim_whitespace=False)
    assistant = serializers.UUIDField(required=False)


@extend_schema_view(
    get=list_schema("threads_list", ThreadSerializer, filters=ThreadFilterSerializer)
)
class ThreadListApi(generics.ListAPIView):
    permission_model = UserAssistantThread
    write_scope = APIKey.Scope.RUNTIME
    serializer_class = ThreadSerializer

    def get_queryset(self):
        return thread_list(filters=query_filters(ThreadFilterSerializer, self.request))

    @extend_schema(
        operation_id="threads_register",
        request=ThreadRegisterSerializer,
        examples=[
            OpenApiExample(
                "A thread of a user with the secretary",
                value={
                    "user_id": "user-42",
                    "assistant": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "thread_id": "thread_abc123",
                },
                request_only=True,
            )
        ],
        responses={
            201: OpenApiResponse(ThreadSerializer, description="Registered."),
            200: OpenApiResponse(
                ThreadSerializer,
                description="One already exists for (user_id, assistant): the stored row "
                "(first writer wins), its last_used set to now.",
            ),
            **error_responses(*WRITE_ERRORS),
        },
    )
    def post(self, request):
        serializer = ThreadRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        thread, created = thread_register(**serializer.validated_data)
        return Response(
            ThreadSerializer(thread).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ThreadDetailApi(APIView):
    permission_model = UserAssistantThread
    write_scope = APIKey.Scope.RUNTIME

    @extend_schema(
        operation_id="threads_retrieve",
        responses={200: ThreadSerializer, **error_responses(*READ_ERRORS, 404)},
    )
    def get(self, request, thread_pk):
        return Response(ThreadSerializer(object_or_404(UserAssistantThread, pk=thread_pk)).data)

    @extend_schema(
        operation_id="threads_partial_update",
        request={
            "application/json": OpenApiRequest(
                THREAD_UPDATE_BODY,
                examples=[OpenApiExample("A new thread id", value={"thread_id": "thread_def456"})],
            )
        },
        responses={200: ThreadSerializer, **error_responses(*WRITE_ERRORS, 404)},
    )
    def patch(self, request, thread_pk):
        thread = object_or_404(UserAssistantThread, pk=thread_pk)
        serializer = ThreadUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        thread = thread_update(thread=thread, **serializer.validated_data)
        return Response(ThreadSerializer(thread).data)

    @extend_schema(
        operation_id="threads_destroy",
        responses={
            204: OpenApiResponse(description="Forgotten."),
            **error_responses(*READ_ERRORS, 404),
        },
    )
    def delete(self, request, thread_pk):
        thread_delete(thread=object_or_404(UserAssistantThread, pk=thread_pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
