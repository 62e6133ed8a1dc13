"""The channels' HTTP API: a site's Telegram bot and team channels (admins), one's own
channels and Telegram link (`/v1/me/channels`), the Telegram webhook (updates, checked by the
secret token header), and one-click links (`/v1/actions/{token}`: GET shows, POST acts)."""

import html
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.channel_actions import service
from app.channel_actions.schemas import (
    ActionDone,
    ChannelCreate,
    ChannelOut,
    TeamChannelCreate,
    TelegramBotOut,
    TelegramBotSet,
    TelegramLink,
    TelegramUpdate,
    UpdateHandled,
)
from app.channels.links import LinkExpired, LinkInvalid, LinkSigner
from app.channels.models import TelegramBot, UsedActionLink
from app.channels.telegram import BotApi
from app.config import Settings
from app.crypto import SecretBox, secret_box
from app.db import SessionDep, utcnow
from app.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable, error_body
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.sites.dependencies import AdminDep, UserPrincipalDep
from app.team.models import User
from app.webhooks import service as webhooks_service
from app.webhooks import signing
from app.webhooks.attempt import RefusedAddress, check_url
from app.webhooks.models import WebhookEndpoint
from app.webhooks.schemas import MessageQueued

channels_router = APIRouter(
    prefix="/v1/channels", tags=["channels"], responses=errors(*SECRET_KEY_ERRORS)
)
me_channels_router = APIRouter(
    prefix="/v1/me/channels", tags=["channels"], responses=errors(*SECRET_KEY_ERRORS)
)
telegram_router = APIRouter(prefix="/v1/telegram", tags=["channels"])
actions_router = APIRouter(prefix="/v1/actions", tags=["channels"])

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Only for the OpenAPI document: the header is read by the route, with our errors.
_TELEGRAM_SECRET = APIKeyHeader(
    name=SECRET_HEADER,
    scheme_name="telegramSecretToken",
    description="The secret token given to Telegram with setWebhook; Telegram sends it with"
    " every update.",
    auto_error=False,
)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _box(request: Request) -> SecretBox:
    return secret_box(_settings(request))


def _bot_api(request: Request) -> BotApi:
    settings = _settings(request)
    return BotApi(settings.telegram_api_base, settings.channels.telegram_timeout_seconds)


def _bot_out(bot: TelegramBot, settings: Settings) -> dict[str, Any]:
    return {
        "username": bot.username,
        "mode": bot.mode,
        "webhook_url": service.webhook_url(settings, bot.site_id)
        if bot.mode == "webhook"
        else None,
        "created_at": bot.created_at,
        "updated_at": bot.updated_at,
    }


def _channel_out(channel: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": channel.id,
        "kind": channel.kind,
        "user_id": channel.user_id,
        "address": channel.url,
        "enabled": channel.enabled,
        "disabled_reason": channel.disabled_reason,
        "created_at": channel.created_at,
    }


def _incoming_webhook(url: str | None, settings: Settings) -> tuple[str, str]:
    """(what is shown, the URL kept encrypted) of an incoming webhook URL, checked as a
    webhook endpoint's URL is (no internal addresses)."""
    if not url:
        raise _invalid("url", "A Slack-compatible channel needs its incoming webhook URL.")
    try:
        parsed = check_url(url, settings.webhooks.allow_private_networks)
    except RefusedAddress as exc:
        raise _invalid("url", str(exc)) from exc
    return f"slack:{parsed.host}", url


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        message, details=[{"loc": ["body", field], "message": message, "type": "value_error"}]
    )


# -- the site's bot and team channels (admins) -----------------------------------------------


@channels_router.put("/telegram", response_model=TelegramBotOut, responses=errors(BODY))
async def set_telegram_bot(
    body: TelegramBotSet, request: Request, admin: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Set the site's Telegram bot: the token is checked with Telegram (getMe), stored
    encrypted, and the bot's webhook pointed here (webhook mode) or cleared (polling mode).
    422 `telegram_refused` if Telegram refuses the token or the webhook."""
    settings, site_id = _settings(request), admin.site.id
    await session.commit()  # no transaction (nor SQLite's write lock) held while Telegram answers
    api = _bot_api(request)
    try:
        checked = await service.check_bot(site_id, body.token, body.mode, settings, api)
    except service.BotRefused as exc:
        raise Unprocessable(f"Telegram refused: {exc}", code="telegram_refused") from exc
    finally:
        await api.aclose()
    bot = await service.store_bot(
        session, site_id, body.token, body.mode, checked, _box(request), utcnow()
    )
    return _bot_out(bot, settings)


@channels_router.get("/telegram", response_model=TelegramBotOut, responses=errors(404))
async def get_telegram_bot(request: Request, admin: AdminDep, session: SessionDep) -> dict:
    """The site's Telegram bot (never its token)."""
    bot = await session.get(TelegramBot, admin.site.id)
    if bot is None:
        raise NotFound("This site has no Telegram bot.")
    return _bot_out(bot, _settings(request))


@channels_router.delete("/telegram", status_code=204, responses=errors(404))
async def delete_telegram_bot(admin: AdminDep, session: SessionDep) -> None:
    """Remove the site's bot and every linked Telegram chat of the site."""
    bot = await session.get(TelegramBot, admin.site.id)
    if bot is None:
        raise NotFound("This site has no Telegram bot.")
    await session.delete(bot)
    await session.execute(
        delete(WebhookEndpoint).where(
            WebhookEndpoint.site_id == admin.site.id, WebhookEndpoint.kind == "telegram"
        )
    )


@channels_router.get("", response_model=list[ChannelOut])
async def list_team_channels(admin: AdminDep, session: SessionDep) -> list[dict]:
    """The site's team channels (every alert of the site goes to each)."""
    return [_channel_out(c) for c in await service.channels_of(session, admin.site.id, None)]


@channels_router.post("", status_code=201, response_model=ChannelOut, responses=errors(BODY))
async def add_team_channel(
    body: TeamChannelCreate, request: Request, admin: AdminDep, session: SessionDep
) -> dict:
    """Add a team channel: a Slack, Mattermost or Rocket.Chat incoming webhook that gets every
    alert of the site (without one-click actions: nobody in particular acts)."""
    shown, secret = _incoming_webhook(body.url, _settings(request))
    channel = await service.add_channel(
        session, admin.site.id, None, "slack", shown, secret, _box(request), utcnow()
    )
    channel.description = body.description
    return _channel_out(channel)


@channels_router.delete("/{channel_id}", status_code=204, responses=errors(404))
async def delete_team_channel(channel_id: uuid.UUID, admin: AdminDep, session: SessionDep) -> None:
    """Remove a team channel."""
    await _delete_channel(session, admin.site.id, None, channel_id)


async def _delete_channel(
    session: SessionDep, site_id: uuid.UUID, user_id: uuid.UUID | None, channel_id: uuid.UUID
) -> None:
    await session.delete(await _channel(session, site_id, user_id, channel_id))


@channels_router.post(
    "/{channel_id}/test", status_code=202, response_model=MessageQueued, responses=errors(404, 409)
)
async def test_team_channel(channel_id: uuid.UUID, admin: AdminDep, session: SessionDep) -> dict:
    """Send a test alert to a team channel, through the outbox like any alert."""
    return await _send_test(session, admin.site.id, None, channel_id)


async def _channel(
    session: SessionDep, site_id: uuid.UUID, user_id: uuid.UUID | None, channel_id: uuid.UUID
) -> WebhookEndpoint:
    channel = await session.get(WebhookEndpoint, channel_id)
    if (
        channel is None
        or channel.site_id != site_id
        or channel.kind == "webhook"
        or channel.user_id != user_id
    ):
        raise NotFound("No such channel.")
    return channel


async def _send_test(
    session: SessionDep, site_id: uuid.UUID, user_id: uuid.UUID | None, channel_id: uuid.UUID
) -> dict[str, Any]:
    channel = await _channel(session, site_id, user_id, channel_id)
    message_id = await webhooks_service.send_test(session, channel)
    return {"message_id": signing.message_id(message_id), "deliveries": 1}


# -- one's own channels -----------------------------------------------------------------------


@me_channels_router.get("", response_model=list[ChannelOut])
async def list_my_channels(me: UserPrincipalDep, session: SessionDep) -> list[dict]:
    """One's notification channels."""
    assert me.user is not None
    return [_channel_out(c) for c in await service.channels_of(session, me.site.id, me.user.id)]


@me_channels_router.post("", status_code=201, response_model=ChannelOut, responses=errors(BODY))
async def add_my_channel(
    body: ChannelCreate, request: Request, me: UserPrincipalDep, session: SessionDep
) -> dict:
    """Get alerts by email (to one's own address) or in a Slack-compatible incoming webhook;
    replaces one's channel of that kind."""
    assert me.user is not None
    if body.kind == "email":
        shown, secret = f"mailto:{me.user.email}", ""
    else:
        shown, secret = _incoming_webhook(body.url, _settings(request))
    channel = await service.add_channel(
        session, me.site.id, me.user.id, body.kind, shown, secret, _box(request), utcnow()
    )
    return _channel_out(channel)


@me_channels_router.post(
    "/telegram/link", status_code=201, response_model=TelegramLink, responses=errors(409)
)
async def link_telegram(
    request: Request, me: UserPrincipalDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """A deep link that links one's Telegram chat: open it, press Start. Single use; 409
    `telegram_not_set_up` if the site has no bot."""
    assert me.user is not None
    bot = await session.get(TelegramBot, me.site.id)
    if bot is None:
        raise Conflict(
            "The site has no Telegram bot yet: an admin sets it up first.",
            code="telegram_not_set_up",
        )
    lifetime = timedelta(minutes=_settings(request).channels.link_code_minutes)
    link = await service.new_link_code(session, bot, me.user, lifetime, utcnow())
    response.headers["cache-control"] = "no-store"
    return {"code": link.code, "url": link.url, "expires_at": link.expires_at}


@me_channels_router.delete("/{channel_id}", status_code=204, responses=errors(404))
async def delete_my_channel(
    channel_id: uuid.UUID, me: UserPrincipalDep, session: SessionDep
) -> None:
    """Remove one of one's channels (a Telegram chat is unlinked)."""
    assert me.user is not None
    await _delete_channel(session, me.site.id, me.user.id, channel_id)


@me_channels_router.post(
    "/{channel_id}/test", status_code=202, response_model=MessageQueued, responses=errors(404, 409)
)
async def test_my_channel(channel_id: uuid.UUID, me: UserPrincipalDep, session: SessionDep) -> dict:
    """Send oneself a test alert on this channel (409 `endpoint_disabled` if it was disabled
    after failing)."""
    assert me.user is not None
    return await _send_test(session, me.site.id, me.user.id, channel_id)


# -- the Telegram webhook ---------------------------------------------------------------------


@telegram_router.post(
    "/{site_id}/webhook",
    response_model=UpdateHandled,
    responses=errors(BODY, 401, 403, 404, 422, 503),
)
async def telegram_update(
    site_id: uuid.UUID,
    update: TelegramUpdate,
    request: Request,
    session: SessionDep,
    _secret: Annotated[str | None, Depends(_TELEGRAM_SECRET)],
) -> dict[str, bool]:
    """An update from Telegram (webhook mode): checked by the secret token header (401
    without, 403 with a wrong one). A chat is linked by `/start <code>`; a button press acts
    for the chat's linked person only. Answered 200 once handled, refused actions included
    (the person is told in Telegram: Telegram would resend any other answer). An update
    already handled (its `update_id`, resent by Telegram) is answered 200 and ignored."""
    sent = request.headers.get(SECRET_HEADER)
    if not sent:
        raise Unauthorized(f"Send the webhook's secret token in {SECRET_HEADER}.", headers={})
    bot = await session.get(TelegramBot, site_id)
    if bot is None or bot.mode != "webhook":
        raise NotFound("No Telegram bot takes updates here.")
    if not service.secret_matches(bot, sent):
        raise Forbidden("Wrong secret token.", code="wrong_secret_token")
    box = _box(request)
    calls = await service.handle_update(
        session, bot, update.model_dump(exclude_none=True), box, utcnow()
    )
    token = box.decrypt(bot.token_encrypted)
    await session.commit()  # acted before Telegram is answered
    if calls:
        api = _bot_api(request)
        try:
            await service.make_calls(api, token, calls)
        finally:
            await api.aclose()
    return {"ok": True}


# -- one-click links --------------------------------------------------------------------------

_ACTION_WORDS = {"claim": "Take this lead (I'm on it)", "contacted": "Mark the lead contacted"}
_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page (for a browser), or the JSON answer (Accept: application/json)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}
_PAGE_ERRORS = errors(403, 404, 409)
for _answer in _PAGE_ERRORS.values():
    _answer["content"] = {"text/html": {"schema": {"type": "string"}}}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<meta name=robots content=noindex><title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em}"
        "button{font-size:1.1em;padding:.6em 1.2em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _refused(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_html(request):
        return _page("This link cannot be used", f"<p>{html.escape(message)}</p>", status)
    return JSONResponse(error_body(code, message), status_code=status)


def _signer(request: Request) -> LinkSigner:
    hours = _settings(request).channels.action_link_hours
    return LinkSigner(_box(request), timedelta(hours=hours))


@actions_router.get(
    "/{token}", response_model=ActionDone, responses={**_PAGE_RESPONSES, **_PAGE_ERRORS}
)
async def show_action(token: str, request: Request, session: SessionDep) -> Response:
    """What a one-click link would do, with a button that does it (POST). A GET never acts:
    mail scanners and link previews open links."""
    try:
        link = _signer(request).load(token)
    except LinkExpired:
        return _refused(request, 409, "link_expired", "This link has expired.")
    except LinkInvalid:
        return _refused(request, 403, "link_invalid", "This is not a valid link.")
    used = await session.get(UsedActionLink, link.link_id)
    if used is not None:
        return _refused(request, 409, "link_used", "This link has already been used.")
    words = _ACTION_WORDS[link.action]
    if not _wants_html(request):
        message = f"POST to this URL to {words[0].lower()}{words[1:]}."
        return JSONResponse(
            ActionDone(action=link.action, lead_id=link.lead_id, message=message).model_dump(  # type: ignore[arg-type]
                mode="json"
            )
        )
    form = (
        f"<p>Lead <code>{link.lead_id}</code></p>"
        f'<form method="post"><button type="submit">{html.escape(words)}</button></form>'
    )
    return _page(words, form)


@actions_router.post(
    "/{token}", response_model=ActionDone, responses={**_PAGE_RESPONSES, **_PAGE_ERRORS}
)
async def do_action(token: str, request: Request, session: SessionDep) -> Response:
    """Do what a one-click link says, for the person it was sent to (and only once): claim the
    lead, or record a contact (the first stops the clock). 409 `link_used` the second time."""
    now = utcnow()
    try:
        link = _signer(request).load(token)
    except LinkExpired:
        return _refused(request, 409, "link_expired", "This link has expired.")
    except LinkInvalid:
        return _refused(request, 403, "link_invalid", "This is not a valid link.")
    user = await session.get(User, link.user_id)
    if user is None or not user.active:
        return _refused(request, 403, "person_inactive", "This link's person is not active.")
    if await session.scalar(
        select(UsedActionLink.link_id).where(UsedActionLink.link_id == link.link_id)
    ):
        return _refused(request, 409, "link_used", "This link has already been used.")
    try:
        lead, done = await service.act(session, user, link.lead_id, link.action, "by a link", now)
    except service.ActionRefused as exc:
        await session.rollback()
        status = 404 if exc.code == "not_found" else 409
        return _refused(request, status, exc.code, exc.message)
    # Links that have expired are refused by their signature: their rows can go.
    await session.execute(delete(UsedActionLink).where(UsedActionLink.expires_at <= now))
    session.add(
        UsedActionLink(
            link_id=link.link_id,
            user_id=user.id,
            lead_id=lead.id,
            action=link.action,
            used_at=now,
            expires_at=link.issued_at + _signer(request).max_age,
        )
    )
    try:
        await session.commit()
    except IntegrityError:  # the same link, used at the same moment elsewhere
        await session.rollback()
        return _refused(request, 409, "link_used", "This link has already been used.")
    if _wants_html(request):
        return _page("Done", f"<p>{html.escape(done)}</p>")
    return JSONResponse(
        ActionDone(action=link.action, lead_id=lead.id, message=done).model_dump(mode="json")  # type: ignore[arg-type]
    )
