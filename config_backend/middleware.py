from django.http import HttpResponse, JsonResponse

from config_backend.cache import CacheUnavailable


class CacheUnavailableMiddleware:
    """A change refused because the cache is unreachable is a 503 with a clear message."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, CacheUnavailable):
            return None
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": str(exception)}, status=503)
        else:
            response = HttpResponse(str(exception), content_type="text/plain", status=503)
        response["Retry-After"] = "5"
        return response
