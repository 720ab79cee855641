"""Error reports that never show a credential, with DEBUG on or off.

Django's ``SafeExceptionReporterFilter`` hides settings whose *name* looks secret (``SECRET_KEY``,
``DATABASES[...]["PASSWORD"]``), but not a password inside a URL: ``CELERY_BROKER_URL =
amqp://tourapp:tourapp@...`` was printed whole on every debug page. This filter also masks the
user-information part of any URL (``scheme://user:pass@`` becomes ``scheme://********@``) in
settings, request META, the local variables of every traceback frame and, through the reporter,
the exception's message (a client library may quote the URL it failed to reach). Django applies its own
frame-variable filtering only with DEBUG off; the URL masking here applies always.
"""

from __future__ import annotations

import re
from pprint import pformat
from typing import Any

from django.http import HttpRequest
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

CREDENTIALS_MASK = "********"
# scheme://userinfo@ : userinfo stops at anything that cannot be inside one URL's authority, so a
# mask never swallows the host or a neighbouring value in a repr ("['redis://:pw@h', 'x@y']").
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/?#'\",@]*(?:@[^\s/?#'\",@]*)*@")


def url_credentials_mask(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by a mask."""
    return _URL_CREDENTIALS.sub(rf"\g<scheme>{CREDENTIALS_MASK}@", text)


class _MaskedRepr:
    """Stands in for a frame variable whose repr carried a credential: shows the masked repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _masked_value(value: Any) -> Any:
    if type(value) is str:  # exactly: a lazy object passes isinstance(value, str) unevaluated
        return url_credentials_mask(value)
    try:
        text = pformat(value)
    except Exception:  # a broken __repr__ is the reporter's problem, not a reason to fail here
        return value
    masked = url_credentials_mask(text)
    return value if masked == text else _MaskedRepr(masked)


class CredentialMaskingReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # Django recurses into dicts, lists and tuples through this method, so strings at any depth
        # (CACHES["default"]["LOCATION"], a list of broker URLs) pass here one by one.
        cleansed = super().cleanse_setting(key, value)
        return url_credentials_mask(cleansed) if type(cleansed) is str else cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, _masked_value(value)) for name, value in variables]


class CredentialMaskingExceptionReporter(ExceptionReporter):
    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if data.get("exception_value") is not None:
            data["exception_value"] = url_credentials_mask(str(data["exception_value"]))
        return data
