"""A tiny demo shop for the browser tests: every path serves one page with the tracker tag, on
its own port, so the shop is cross-origin to the service like a real shop.

Product pages (`/fridges/<id>`) report `Product Viewed`; the page has an add-to-cart button,
single-page navigation to another product, and a callback form (`Contact Requested`).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRODUCTS = {
    "1": {"product_id": "1", "name": "Frost 300", "category": "fridges", "price": 499.0},
    "2": {"product_id": "2", "name": "Frost 500 XL", "category": "fridges", "price": 899.0},
    "3": {"product_id": "3", "name": "Chill mini", "category": "freezers", "price": 199.0},
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Fridge shop</title>
<script>window.leadheat=window.leadheat||[];leadheat.push(["init",{init}]);</script>
<script async src="{tracker}"></script>
</head><body>
<h1 id="title">Fridge shop</h1>
<nav><a id="home" href="/">Home</a> <a id="link-1" href="/fridges/1">Frost 300</a>
<a id="link-2" href="/fridges/2">Frost 500 XL</a>
<button id="spa-3" type="button">Chill mini (same page)</button></nav>
<button id="add" type="button">Add to cart</button>
<form id="callback"><input id="phone" name="phone" placeholder="Phone">
<button id="call-me" type="submit">Call me back</button></form>
<p id="done"></p>
<script>
const products = {products};
const product = () => products[(location.pathname.match(/^\\/fridges\\/(\\d+)/) || [])[1]];
if (product()) leadheat.push(["productViewed", product()]);
document.getElementById("spa-3").onclick = () => {
  history.pushState({}, "", "/fridges/3");
  leadheat.push(["productViewed", products["3"]]);
};
document.getElementById("add").onclick = () =>
  leadheat.push(["productAdded", Object.assign({quantity: 1}, product())]);
document.getElementById("callback").onsubmit = (event) => {
  event.preventDefault();
  const phone = document.getElementById("phone").value;
  leadheat.push(["identify", {phone}]);
  leadheat.push(["contactRequested", {phone}]);
  document.getElementById("done").textContent = "We will call you back.";
};
</script>
</body></html>
"""


class DemoShop:
    """Serves the shop on a free local port in a thread; a context manager."""

    def __init__(self, tracker_src: str, init: dict[str, Any]) -> None:
        self.tracker_src = tracker_src
        self.init = init
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                if self.path.startswith("/favicon"):
                    self.send_error(404)
                    return
                body = shop.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def render(self) -> str:
        return (
            PAGE.replace("{init}", json.dumps(self.init))
            .replace("{tracker}", self.tracker_src)
            .replace("{products}", json.dumps(PRODUCTS))
        )

    def __enter__(self) -> "DemoShop":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
