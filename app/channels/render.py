"""What a person reads: one alert rendered for each channel from the outbox message's payload
(the lead as webhook consumers see it, app.webhooks.payloads). Plain text and HTML for email,
Telegram's HTML subset, and Slack's `text` + `blocks`. Everything that comes from a visitor
(contacts, product names, URLs) is escaped for the format it goes into."""

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

TITLES = {
    "lead.hot": "Hot lead",
    "lead.first_contact_overdue": "Overdue: a hot lead is waiting for a first contact",
    "lead.first_contact_escalated": "Escalated: a hot lead is still waiting",
    "lead.reassigned": "A hot lead was handed over to a new owner",
    "lead.at_risk": "A hot lead is at risk",
    "webhook.test": "A test alert from Leadheat: this channel works",
}
CART_ITEMS_SHOWN = 5
# Visitor-made text is cut to these lengths: a Telegram message holds 4,096 characters, and
# one too long is refused for good (retrying would not help).
FIELD_CHARS = 200
URL_CHARS = 500


def _cut(value: Any, limit: int = FIELD_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Links:
    """The links a message carries: the lead in the dashboard, and the one-click actions
    (None: not offered, e.g. in a team channel, where nobody in particular acts)."""

    lead: str | None = None
    claim: str | None = None
    contacted: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert's facts, in reading order, format-free."""

    title: str
    who: str
    contacts: list[tuple[str, str]]  # (kind, value): email, phone, messengers
    why: list[str]
    cart: list[str]
    looking_at: str | None
    deadline: str | None
    owner: str | None
    lead_id: str
    extra: list[str] = field(default_factory=list)


def _when(value: Any) -> str | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return at.strftime("%H:%M UTC, %d %b")


def alert(event_type: str, payload: dict[str, Any]) -> Alert:
    """The facts of an outbox message (its envelope) for a person."""
    data = payload.get("data") or {}
    contacts = data.get("contacts") or {}
    pairs = [(_cut(kind, 40), _cut(value)) for kind, value in list(contacts.items())[:6] if value]
    place = ", ".join(str(p) for p in (data.get("city"), data.get("country")) if p)
    who = contacts.get("email") or contacts.get("phone") or data.get("user_id") or "A visitor"
    if event_type == "webhook.test":
        who = "nobody (a test)"
    if place:
        who = f"{who} ({place})"
    why = [
        f"{_cut(rule.get('label') or rule.get('rule_id'), 100)} (+{rule.get('points', 0):g})"
        for rule in data.get("top_rules") or []
    ]
    cart_lines = []
    cart = data.get("cart") or {}
    items = list((cart.get("items") or {}).values())
    for item in items[:CART_ITEMS_SHOWN]:
        name = item.get("name") or item.get("product_id") or "item"
        cart_lines.append(f"{item.get('quantity', 1):g} x {_cut(name, 100)}")
    if len(items) > CART_ITEMS_SHOWN:
        cart_lines.append(f"and {len(items) - CART_ITEMS_SHOWN} more")
    if cart.get("value"):
        cart_lines.append(f"total {cart['value']:g}")
    owner = data.get("owner") or {}
    return Alert(
        title=TITLES.get(event_type, event_type),
        who=_cut(who),
        contacts=pairs,
        why=why,
        cart=cart_lines,
        looking_at=_cut(data["last_url"], URL_CHARS) if data.get("last_url") else None,
        deadline=_when(data.get("contact_by")),
        owner=_cut(owner.get("name") or owner.get("email")) if owner else None,
        lead_id=str(data.get("lead_id", "")),
        extra=[f"score {data['score']:g}"] if isinstance(data.get("score"), int | float) else [],
    )


def contact_href(kind: str, value: str) -> str | None:
    """tel: and mailto: links for what a phone or an email app opens; None for the rest."""
    if kind == "email":
        return "mailto:" + quote(value, safe="@.+-_")
    if kind == "phone":
        return "tel:" + "".join(c for c in value if c.isdigit() or c == "+")
    return None


def text(a: Alert, links: Links) -> str:
    """The plain-text version (email's text part)."""
    lines = [a.title, "", f"Who: {a.who}"]
    lines += [f"  {kind}: {value}" for kind, value in a.contacts]
    if a.why:
        lines += ["Why hot:", *(f"  - {reason}" for reason in a.why)]
    if a.cart:
        lines += ["Cart:", *(f"  - {line}" for line in a.cart)]
    if a.looking_at:
        lines.append(f"Looking at: {a.looking_at}")
    if a.deadline:
        lines.append(f"Contact by: {a.deadline}")
    if a.owner:
        lines.append(f"Owner: {a.owner}")
    lines.append("")
    if links.claim:
        lines.append(f"I'm on it: {links.claim}")
    if links.contacted:
        lines.append(f"Contacted: {links.contacted}")
    if links.lead:
        lines.append(f"Open the lead: {links.lead}")
    return "\n".join(lines) + "\n"


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def email_html(a: Alert, links: Links) -> str:
    """The HTML version (email's HTML part): contacts as tel:/mailto: links."""
    parts = [f"<h2>{_e(a.title)}</h2>", f"<p><b>Who:</b> {_e(a.who)}</p>"]
    if a.contacts:
        items = []
        for kind, value in a.contacts:
            href = contact_href(kind, value)
            shown = f'<a href="{_e(href)}">{_e(value)}</a>' if href else _e(value)
            items.append(f"<li>{_e(kind)}: {shown}</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
    if a.why:
        parts.append(
            "<p><b>Why hot:</b></p><ul>" + "".join(f"<li>{_e(r)}</li>" for r in a.why) + "</ul>"
        )
    if a.cart:
        parts.append(
            "<p><b>Cart:</b></p><ul>" + "".join(f"<li>{_e(c)}</li>" for c in a.cart) + "</ul>"
        )
    if a.looking_at:
        parts.append(f"<p><b>Looking at:</b> {_e(a.looking_at)}</p>")
    if a.deadline:
        parts.append(f"<p><b>Contact by:</b> {_e(a.deadline)}</p>")
    if a.owner:
        parts.append(f"<p><b>Owner:</b> {_e(a.owner)}</p>")
    buttons = [
        (label, href)
        for label, href in (
            ("I'm on it", links.claim),
            ("Contacted", links.contacted),
            ("Open the lead", links.lead),
        )
        if href
    ]
    if buttons:
        parts.append(
            "<p>" + " &middot; ".join(f'<a href="{_e(h)}">{_e(t)}</a>' for t, h in buttons) + "</p>"
        )
    return "<!doctype html><html><body>" + "\n".join(parts) + "</body></html>"


def telegram_html(a: Alert) -> str:
    """Telegram's HTML subset (parse_mode HTML: <b>, <a>, entities). Contacts are plain text:
    Telegram apps make phone numbers and emails tappable themselves, and the Bot API does not
    take tel: links in text (it answers "unsupported URL protocol")."""
    lines = [f"<b>{_e(a.title)}</b>", f"<b>Who:</b> {_e(a.who)}"]
    lines += [f"{_e(kind)}: {_e(value)}" for kind, value in a.contacts]
    if a.why:
        lines.append("<b>Why hot:</b> " + _e("; ".join(a.why)))
    if a.cart:
        lines.append("<b>Cart:</b> " + _e("; ".join(a.cart)))
    if a.looking_at:
        lines.append(f"<b>Looking at:</b> {_e(a.looking_at)}")
    if a.deadline:
        lines.append(f"<b>Contact by:</b> {_e(a.deadline)}")
    if a.owner:
        lines.append(f"<b>Owner:</b> {_e(a.owner)}")
    return "\n".join(lines)


def telegram_keyboard(a: Alert, links: Links, actions: bool) -> dict[str, Any] | None:
    """Inline buttons: "I'm on it" and "Contacted" answered as callbacks (`claim:<lead>`,
    `contacted:<lead>`, within the 64 bytes of callback data), the lead as a URL button."""
    row: list[dict[str, str]] = []
    if actions and a.lead_id:
        row.append({"text": "I'm on it", "callback_data": f"claim:{a.lead_id}"})
        row.append({"text": "Contacted", "callback_data": f"contacted:{a.lead_id}"})
    if links.lead and links.lead.startswith(("https://", "http://")):
        row.append({"text": "Open", "url": links.lead})
    return {"inline_keyboard": [row]} if row else None


def _mrkdwn(value: str) -> str:
    """Slack's escaping: only &, < and > (its control characters for links and mentions)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(a: Alert, links: Links) -> dict[str, Any]:
    """An incoming webhook's body (Slack, Mattermost, Rocket.Chat): `text` for clients and
    notifications that show no blocks, `blocks` for those that do."""
    fields = [f"*Who:* {_mrkdwn(a.who)}"]
    for kind, value in a.contacts:
        href = contact_href(kind, value)
        fields.append(
            f"{_mrkdwn(kind)}: <{_mrkdwn(href)}|{_mrkdwn(value)}>" if href else f"{kind}: {value}"
        )
    if a.why:
        fields.append("*Why hot:* " + _mrkdwn("; ".join(a.why)))
    if a.cart:
        fields.append("*Cart:* " + _mrkdwn("; ".join(a.cart)))
    if a.looking_at:
        fields.append(f"*Looking at:* {_mrkdwn(a.looking_at)}")
    if a.deadline:
        fields.append(f"*Contact by:* {_mrkdwn(a.deadline)}")
    if a.owner:
        fields.append(f"*Owner:* {_mrkdwn(a.owner)}")
    actions = [
        f"<{_mrkdwn(href)}|{label}>"
        for label, href in (
            ("I'm on it", links.claim),
            ("Contacted", links.contacted),
            ("Open the lead", links.lead),
        )
        if href
    ]
    body = "\n".join(fields)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": a.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
    ]
    if actions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(actions)}})
    summary = f"{a.title}: {_mrkdwn(a.who)}"
    return {"text": "\n".join([summary, body, " · ".join(actions)]).strip(), "blocks": blocks}
