"""The bot's token is stored encrypted, never answered, and `leadheat secrets reencrypt` puts it
under the first key with the webhook secrets (else dropping the old key would stop the bot)."""

from cryptography.fernet import Fernet
from sqlalchemy import select

from app.channels.models import TelegramBot
from app.cli import _reencrypt_secrets
from app.crypto import SecretBox
from tests.channels.conftest import BOT_TOKEN
from tests.channels.helpers import set_up_bot
from tests.factories import bearer


async def test_the_token_is_encrypted_and_reencrypted_with_the_webhook_secrets(
    client, session, site, bot_api, settings, capsys
):
    await set_up_bot(client, site, bot_api)
    r = await client.get("/v1/channels/telegram", headers=bearer(site.secret_key))
    assert r.status_code == 200
    assert BOT_TOKEN not in r.text
    stored = await session.scalar(select(TelegramBot.token_encrypted))
    assert stored is not None
    assert BOT_TOKEN not in stored

    old = settings.secrets_key.get_secret_value()
    new = Fernet.generate_key().decode()
    rotated = settings.model_copy(
        update={"secrets_key": type(settings.secrets_key)(f"{new},{old}")}
    )
    await _reencrypt_secrets(rotated)
    assert "1 Telegram bot token" in capsys.readouterr().out
    session.expire_all()
    stored = await session.scalar(select(TelegramBot.token_encrypted))
    assert SecretBox([new.encode()], "new").decrypt(stored) == BOT_TOKEN
