"""What a visitor typed cannot change an alert's markup: it is escaped for Telegram's HTML,
email's HTML, Slack's mrkdwn and the email's headers, and cut to fit a Telegram message."""

from app.channels import mail, render
from app.config import SmtpSettings

HOSTILE = {
    "type": "lead.hot",
    "data": {
        "lead_id": "7b0c3f0e-3c39-4d8e-9a55-0d6f1f7a1c11",
        "contacts": {"email": "eve<b>@x.example", "phone": "+1 <a href='x'>555</a>"},
        "cart": {"items": {"p": {"name": "Fridge & <i>co</i>", "quantity": 1}}, "value": 10},
        "last_url": "https://shop.example/?q=<script>alert(1)</script>" + "x" * 5000,
        "top_rules": [{"rule_id": "r", "label": "<u>asked</u>", "points": 40}],
        "owner": {"id": "u", "name": "Anna > Bob", "email": "a@shop.example"},
        "contact_by": "2026-12-06T10:05:00+00:00",
    },
}
LINKS = render.Links(lead="https://leads.example/dashboard?lead=1&x=<y>")


def test_visitor_text_is_escaped_in_every_format_and_bounded():
    alert = render.alert("lead.hot", HOSTILE)
    telegram = render.telegram_html(alert)
    assert "<script>" not in telegram
    assert "<i>" not in telegram
    assert "<u>" not in telegram
    assert "eve&lt;b&gt;@x.example" in telegram
    assert "Fridge &amp; &lt;i&gt;co&lt;/i&gt;" in telegram
    assert len(telegram) < 4096  # the Bot API's limit for one message

    page = render.email_html(alert, LINKS)
    assert "<script>" not in page
    assert 'href="https://leads.example/dashboard?lead=1&amp;x=&lt;y&gt;"' in page
    assert 'href="mailto:eve%3Cb%3E@x.example"' in page

    body = render.slack(alert, LINKS)
    assert "<script>" not in body["text"]
    assert "Anna &gt; Bob" in body["blocks"][1]["text"]["text"]

    message = mail.message(
        SmtpSettings(), "anna@shop.example", "Hot lead: a\r\nBcc: eve@x.example", "t", "<p>h</p>"
    )
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"])
