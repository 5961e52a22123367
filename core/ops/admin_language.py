"""The admin speaks its user's language; the API does not change with it.

Django's LocaleMiddleware picks the language of a request from its Accept-Language header
(among settings.LANGUAGES: English and Russian). Here it does so for the admin's pages only: an
API client's error messages, and the config responses, stay in LANGUAGE_CODE whatever headers
it sends (no `Vary: Accept-Language` either), so a client reads the same bytes and messages as
before. The admin's strings are translated with Django's i18n (locale/ru/LC_MESSAGES,
docs/admin.md "Translations").
"""

from django.middleware.locale import LocaleMiddleware
from django.urls import reverse
from django.utils import translation


def in_admin(request) -> bool:
    return request.path.startswith(reverse("admin:index"))


class AdminLanguageMiddleware(LocaleMiddleware):
    """LocaleMiddleware for the admin's requests only."""

    def process_request(self, request):
        if in_admin(request):
            super().process_request(request)

    def process_response(self, request, response):
        if not in_admin(request):
            return response
        response = super().process_response(request, response)
        # The page is rendered by now. The language was activated for this thread (a WSGI
        # worker's): back to LANGUAGE_CODE, so the thread's next request, an API call perhaps,
        # is not answered in this one's language.
        translation.deactivate()
        return response
