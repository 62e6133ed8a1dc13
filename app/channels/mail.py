"""Alert emails over SMTP (aiosmtplib), with a text and an HTML part."""

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from app.config import SmtpSettings


class MailNotConfigured(Exception):
    """No SMTP server configured (LEADHEAT_SMTP__HOST)."""


def message(settings: SmtpSettings, to: str, subject: str, text: str, html: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.from_address
    mail["To"] = to
    # Visitor-made text in a header: no line breaks (header injection), bounded.
    mail["Subject"] = " ".join(subject.split())[:200]
    mail["Message-ID"] = make_msgid(domain=settings.from_address.rpartition("@")[2] or None)
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    return mail


async def send(settings: SmtpSettings, mail: EmailMessage) -> str:
    """Send one message; answers the server's reply (raises aiosmtplib's errors)."""
    if not settings.host:
        raise MailNotConfigured("no SMTP server is configured (LEADHEAT_SMTP__HOST)")
    _errors, reply = await aiosmtplib.send(
        mail,
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        timeout=settings.timeout_seconds,
    )
    return str(reply)
