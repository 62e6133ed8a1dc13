"""The channels API's bodies and answers."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.params import Text


class TelegramBotSet(BaseModel):
    token: str = Field(
        pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{10,100}$",
        description="the bot's token, from @BotFather (`123456789:AA...`)",
    )
    mode: Literal["webhook", "polling"] = Field(
        "webhook",
        description="webhook: Telegram posts updates here (needs LEADHEAT_PUBLIC_URL reachable"
        " by Telegram); polling: a worker asks for them (getUpdates)",
    )


class TelegramBotOut(BaseModel):
    username: str
    mode: str
    webhook_url: str | None = Field(description="where Telegram posts updates (webhook mode)")
    created_at: datetime
    updated_at: datetime


class TelegramLink(BaseModel):
    code: str = Field(description="single use, expires at `expires_at`")
    url: str = Field(description="open it in Telegram and press Start: links the chat")
    expires_at: datetime


class ChannelCreate(BaseModel):
    kind: Literal["email", "slack"] = Field(
        description="email: to the person's own address; slack: a Slack, Mattermost or"
        " Rocket.Chat incoming webhook URL (Telegram is linked with a code instead)"
    )
    url: Text | None = Field(
        None, max_length=2048, description="the incoming webhook's URL (slack only)"
    )


class TeamChannelCreate(BaseModel):
    kind: Literal["slack"] = "slack"
    url: Text = Field(max_length=2048, description="the team channel's incoming webhook URL")
    description: Text | None = Field(None, max_length=500)


class ChannelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    user_id: uuid.UUID | None = Field(description="the person (null: the site's team channel)")
    address: str = Field(
        description="tg:<chat id>, mailto:<address>, or the incoming webhook's host (its URL is"
        " a credential, never shown again)"
    )
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


class TelegramUpdate(BaseModel):
    """An update from the Bot API (https://core.telegram.org/bots/api#update): a message
    (`/start <code>` links the chat) or a button press (`callback_query`)."""

    model_config = ConfigDict(extra="allow")

    update_id: int
    message: dict[str, Any] | None = None
    callback_query: dict[str, Any] | None = None


class UpdateHandled(BaseModel):
    ok: bool = True


class ActionDone(BaseModel):
    action: Literal["claim", "contacted"]
    lead_id: uuid.UUID
    message: str
