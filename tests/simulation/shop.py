"""The shop's traffic as a plan of HTTP requests: visitors with realistic sessions, from a seed.

Pure (no I/O): `make_plan` gives, for each concurrent lane, the requests it sends in order.
Each device belongs to one lane and its events are sent in time order, so a lead's events
arrive in the order they happened until a merge joins two devices (half of the second devices
send through another lane); lanes run concurrently, and a batch mixes the events of the lane's
visitors that are due together. Re-sent events (a client
retrying) go out again a few requests later in the same lane, after the first answer.
"""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CATEGORIES = ("fridges", "ovens", "washing machines", "dishwashers", "microwaves", "hobs")
CITIES = ("Moscow", "Kazan", "Novosibirsk", "Yekaterinburg", "Samara")
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
CRAWLER_UAS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
)
SHOP = "https://shop.example"
SINGLE_PATHS = {"track", "page", "identify", "alias"}


@dataclass
class Request:
    path: str  # "/v1/batch", "/v1/track", ...
    body: dict[str, Any]
    message_ids: list[str]
    resent: bool = False  # every event in it was sent before (a client's retry)


@dataclass
class Plan:
    lanes: list[list[Request]]
    events: dict[str, dict[str, Any]]  # messageId -> the event as first sent
    bots: set[str]  # messageIds of crawler events
    crawler_ids: set[str]  # crawlers' anonymousIds
    persons: dict[str, list[str]]  # userId -> the anonymousIds of its devices
    resent: int  # event copies sent again

    @property
    def requests(self) -> int:
        return sum(len(lane) for lane in self.lanes)


@dataclass
class _Device:
    anonymous_id: str
    user_agent: str = BROWSER_UA
    cart: dict[str, float] = field(default_factory=dict)  # product id -> price


class _Visitor:
    """One person's events on one device over a few sessions."""

    def __init__(self, rng: random.Random, person: str, device: _Device, window: tuple) -> None:
        self.rng, self.person, self.device = rng, person, device
        self.start, self.end = window
        self.events: list[dict[str, Any]] = []
        self.n = 0

    def emit(self, at: datetime, kind: str, **fields: Any) -> None:
        self.n += 1
        context: dict[str, Any] = {"userAgent": self.device.user_agent}
        url = fields.pop("url", None)
        if url:
            context["page"] = {"url": url}
        event = {
            "type": kind,
            "messageId": f"{self.device.anonymous_id}-{self.n}",
            "anonymousId": self.device.anonymous_id,
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "context": context,
            **fields,
        }
        self.events.append(event)

    def track(self, at: datetime, event: str, /, **properties: Any) -> None:
        url = properties.pop("url", None)
        self.emit(at, "track", event=event, properties=properties, url=url)

    def session(self, at: datetime, intent: float) -> datetime:
        """One visit: browsing, maybe a cart, maybe a checkout or an order. Returns its end."""
        rng = self.rng
        category = rng.choice(CATEGORIES)
        for _ in range(rng.randint(1, 8)):
            at += timedelta(seconds=rng.randint(5, 240), milliseconds=rng.randint(0, 999))
            roll = rng.random()
            if roll < 0.35:
                path = f"/{category.replace(' ', '-')}"
                self.emit(at, "page", name=category.title(), url=SHOP + path,
                          properties={"path": path, "title": category.title()})  # fmt: skip
            elif roll < 0.8:
                self.view_product(at, category)
            elif roll < 0.9:
                seconds = rng.choice([5, 40, 130, 400, 2500])
                self.track(at, "Page Engaged", engaged_seconds=seconds)
            else:
                category = rng.choice(CATEGORIES)
            if rng.random() < intent * 0.5:
                at += timedelta(seconds=rng.randint(3, 60))
                self.add_to_cart(at, category)
        cart = self.device.cart
        if cart and rng.random() < 0.15:
            at += timedelta(seconds=rng.randint(3, 60))
            product = rng.choice(sorted(cart))
            self.track(at, "Product Removed", product_id=product, quantity=1)
            cart.pop(product)
        if cart and rng.random() < intent:
            at += timedelta(seconds=rng.randint(10, 120))
            self.track(at, "Checkout Started", value=round(sum(cart.values()), 2))
            at += timedelta(seconds=rng.randint(20, 600))
            if rng.random() < 0.55:
                value = round(sum(cart.values()), 2)
                self.track(at, "Order Completed", order_id=f"o-{self.device.anonymous_id}-{self.n}",
                           revenue=value, currency="RUB")  # fmt: skip
                cart.clear()
            elif rng.random() < 0.6:
                self.track(at, "Cart Abandoned", value=round(sum(cart.values()), 2))
        return at

    def view_product(self, at: datetime, category: str) -> None:
        product = f"{category[:4]}-{self.rng.randint(1, 40)}"
        self.track(at, "Product Viewed", product_id=product, category=category,
                   name=f"{category.title()} {product}", price=self.rng.choice([299, 499, 899]),
                   url=f"{SHOP}/p/{product}")  # fmt: skip

    def add_to_cart(self, at: datetime, category: str) -> None:
        product = f"{category[:4]}-{self.rng.randint(1, 40)}"
        price = float(self.rng.choice([299, 499, 899, 1299]))
        self.track(at, "Product Added", product_id=product, category=category, price=price,
                   quantity=1, name=f"{category.title()} {product}")  # fmt: skip
        self.device.cart[product] = self.device.cart.get(product, 0.0) + price

    def identify(self, at: datetime, traits: dict[str, Any]) -> None:
        self.emit(at, "identify", userId=self.person, traits=traits)

    def sessions(self, count: int, intent: float) -> list[datetime]:
        """`count` visits at random times in the window; the session start times."""
        span = (self.end - self.start).total_seconds()
        starts = sorted(
            self.start + timedelta(seconds=self.rng.uniform(0, span * 0.95)) for _ in range(count)
        )
        ends: list[datetime] = []
        for start in starts:
            if ends and start <= ends[-1] + timedelta(minutes=1):
                start = ends[-1] + timedelta(minutes=self.rng.randint(2, 90))
            ends.append(self.session(start, intent))
        return starts
