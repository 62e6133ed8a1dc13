"""Every webhook payload names the lead's owner: `lead.hot` carries the person assigned in
the same transaction; a lead nobody owns says null."""

from standardwebhooks import Webhook

from tests.factories import send
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, awake_zone, make_user
from tests.webhooks.helpers import add_endpoint, messages_of


async def test_lead_hot_carries_the_owner_assigned_with_it(client, session, site, receiver):
    anna = await make_user(
        session, site, "manager", "anna@shop.example", name="Anna",
        working_hours=ALL_WEEK, time_zone=awake_zone(),
    )  # fmt: skip
    endpoint = await add_endpoint(client, site, receiver.url, event_types=["lead.hot"])
    await send(client, site, *hot("v"))
    [got] = await receiver.wait_for(1)
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "lead.hot"
    assert payload["data"]["owner"] == {
        "id": str(anna.id),
        "name": "Anna",
        "email": "anna@shop.example",
    }


async def test_every_message_of_an_unowned_lead_says_null(client, session, site, receiver):
    await add_endpoint(client, site, receiver.url)
    await send(client, site, *hot("v"))  # nobody in the team: nobody to own it
    messages = await messages_of(session)
    assert {m.event_type for m in messages} >= {"lead.hot", "lead.temperature_changed"}
    assert all(m.payload["data"]["owner"] is None for m in messages)
