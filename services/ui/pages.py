"""The pages: server-rendered shells (Jinja) whose numbers the browser fetches from the JSON API.

A page is a template extending `base.html` plus an ES module under static/js/; adding one means
a `Page` in `PAGES` (the nav follows) and its template. Pages whose template is still None show
what is coming and where to do it meanwhile.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from services.ui.api.me import user_time_zone

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)
# Copied from node_modules by `make install` (services/ui/copy-vendor.mjs); not in git.
VENDOR_FILES = ("socket.io.esm.min.js", "lightweight-charts.standalone.production.mjs")
# Browsers run an ES module only when it is served as JavaScript, whatever /etc/mime.types says.
mimetypes.add_type("text/javascript", ".mjs")


@dataclass(frozen=True)
class Page:
    name: str  # endpoint under the blueprint, and the id of its nav link
    path: str
    label: str
    template: str | None = None  # None: the "coming" placeholder
    coming: str = ""  # what the placeholder says the page will do


PAGES: tuple[Page, ...] = (
    Page("dashboard", "/dashboard", "Dashboard", "dashboard.html"),
    Page("recorders", "/recorders", "Recorders", "recorders.html"),
    Page("traders", "/traders", "Traders", "traders.html"),
    Page("accounts", "/accounts", "Accounts", "accounts.html"),
    Page("manual_trader", "/manual-trader", "Manual Trader", "manual_trader.html"),
    Page("control_center", "/control-center", "Control Center", "control_center.html"),
    Page("settings", "/settings", "Settings", "settings.html"),
)


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if current_user.is_authenticated:
        return None
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login_page", next=target))


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("pages.dashboard"))


def _view(page: Page) -> Callable[[], ResponseReturnValue]:
    def view() -> ResponseReturnValue:
        # base.html hands the zone to format.js, so every time on the page is in it.
        zone = user_time_zone().key
        if page.template is None:
            return render_template("coming.html", page=page, time_zone=zone)
        return render_template(page.template, page=page, time_zone=zone)

    view.__name__ = page.name
    return view


for _page in PAGES:
    bp.add_url_rule(_page.path, endpoint=_page.name, view_func=_view(_page), methods=["GET"])


def register_pages(app: Flask) -> None:
    vendor = Path(app.static_folder or "") / "vendor"
    missing = [name for name in VENDOR_FILES if not (vendor / name).is_file()]
    if missing:
        log.warning(
            "browser libraries missing; run `make install`",
            extra={"kv": {"missing": ",".join(missing)}},
        )

    @app.context_processor
    def navigation() -> dict[str, object]:
        return {"nav_pages": PAGES, "vendor_missing": bool(missing)}

    app.register_blueprint(bp)
