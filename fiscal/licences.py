"""The one thing fiscal needs from the certificates app: a payee's business licence status.

The red-flag rule "payee's business licence revoked / suspended / expired /
missing on the value date" asks :func:`licence_status`. It must be a pure
function of the authenticated state (it runs inside block execution on every
node), so it reads the certificate records through the certificates app's
own read API rather than through any node query.

:data:`CERTS_ADAPTER` is the single place where fiscal is wired to
``certs``; see :func:`certs_adapter`. When the certificates app is not
installed the status is ``None`` ("cannot tell") and the rule stays silent
rather than flagging every payment.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ledger.execution import StateGet

VALID, REVOKED, SUSPENDED, EXPIRED, MISSING = "VALID", "REVOKED", "SUSPENDED", "EXPIRED", "MISSING"
STATUSES = (VALID, REVOKED, SUSPENDED, EXPIRED, MISSING)

# (state_get, holder USCC, date YYYY-MM-DD) -> one of STATUSES, or None when it cannot tell.
LicenceLookup = Callable[[StateGet, str, str], str | None]


def certs_adapter() -> LicenceLookup | None:
    """The certificates app's business-licence lookup, or None if it is not installed."""
    try:
        module = importlib.import_module("certs.queries")
    except ImportError:
        return None
    lookup: LicenceLookup | None = getattr(module, "business_licence_status", None)
    return lookup


CERTS_ADAPTER: LicenceLookup | None = certs_adapter()


def licence_status(state_get: StateGet, uscc: str, on_date: str,
                   lookup: LicenceLookup | None = None) -> str | None:
    """Status of the business licence (营业执照) of ``uscc`` on ``on_date``.

    ``lookup`` overrides the certificates app (tests inject one). None: cannot tell.
    """
    chosen = lookup if lookup is not None else CERTS_ADAPTER
    if chosen is None:
        return None
    status = chosen(state_get, uscc, on_date)
    assert status is None or status in STATUSES, f"licence lookup returned {status!r}"
    return status
