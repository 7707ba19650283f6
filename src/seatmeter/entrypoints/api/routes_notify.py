"""Notifications over HTTP: the settings owners set, and the log of notifications with their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field, StrictBool, StrictInt, StrictStr

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.entrypoints.api.deps import get_app, principal
from seatmeter.entrypoints.api.schemas import Body
from seatmeter.services import notification_settings

router = APIRouter(prefix="/v1", tags=["notifications"])
AppDep = Annotated[App, Depends(get_app)]
Who = Annotated[Principal, Depends(principal)]


class NotificationSettingsPut(Body):
    thresholds_percent: list[StrictInt] = Field(
        description="whole percentages of each cap and of the credits purchased", examples=[[50, 75, 90, 100]]
    )
    webhook_url: StrictStr | None = Field(default=None, description="http(s) URL for signed webhooks, or null")
    emails: list[StrictStr] | None = Field(default=None, description="addresses that get each notification")
    low_balance: StrictStr | None = Field(
        default=None,
        description="credit balance (USD) that triggers a low_balance notification when crossed downwards, or null",
    )
    rotate_webhook_secret: StrictBool | None = None


@router.put("/organizations/{org}/notification-settings")
def put_notification_settings(org: str, body: NotificationSettingsPut, app: AppDep, who: Who) -> dict[str, Any]:
    """Fields left out keep their value. The webhook secret (`whsec_...`) signs every webhook."""
    saved = notification_settings.put_settings(
        app.uow(), who, org, body.model_dump(exclude_unset=True), app.clock.now()
    )
    return notification_settings.settings_json(saved)


@router.get("/organizations/{org}/notification-settings")
def get_notification_settings(org: str, app: AppDep, who: Who) -> dict[str, Any]:
    return notification_settings.settings_json(notification_settings.get_settings(app.uow(), who, org))


@router.get("/organizations/{org}/notifications")
def list_notifications(
    org: str, app: AppDep, who: Who, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Newest first. Owners see every notification with its deliveries and attempts; members see those about
    their own cap."""
    return {"data": notification_settings.list_notifications(app.uow(), who, org, limit)}
