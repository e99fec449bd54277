"""Serve the Stripe.js test double to the browser and confirm its payments at localstripe."""

from pathlib import Path

from playwright.sync_api import Page, Route

from tests.stripe_fixtures import LocalStripe, LocalStripeError

STRIPE_DOUBLE_JS = Path(__file__).resolve().parent / "stripe_double.js"
# Where the checkout page loads "Stripe.js" from during the tests (STRIPE_JS_URL is the
# live server's address plus this path). The path is on the live server's origin, so
# a script-src 'self' policy allows it, but the request never reaches Django: the
# page's route answers it with stripe_double.js.
STRIPE_DOUBLE_PATH = "/__e2e__/stripe-js/v3/"

# Stripe's documented test cards, as localstripe implements them.
SUCCEEDING_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0341"  # attaches, then the charge is declined


def confirm_card_payment(localstripe: LocalStripe, client_secret: str, card_number: str) -> dict:
    """Pay the PaymentIntent behind a client secret with a test card, as Stripe.js would.

    Real HTTP to localstripe, which charges the card and then sends its signed
    webhook. Returns Stripe.js's shapes: ``{"paymentIntent": …}`` or ``{"error": …}``.
    """
    intent_id = client_secret.split("_secret_")[0]
    try:
        intent = localstripe.api("GET", f"/v1/payment_intents/{intent_id}")
    except LocalStripeError:
        intent = None
    if intent is None or intent.get("client_secret") != client_secret:
        return {
            "error": {
                "type": "invalid_request_error",
                "message": "No such payment_intent: the client secret does not match.",
            }
        }
    intent = localstripe.confirm_payment_intent(intent_id, card=card_number)
    if intent["status"] in {"succeeded", "processing", "requires_capture"}:
        return {"paymentIntent": intent}
    return {"error": {"type": "card_error", **(intent.get("last_payment_error") or {})}}


def install_stripe_double(page: Page, localstripe: LocalStripe) -> list[dict]:
    """Serve the double at STRIPE_DOUBLE_PATH on this page and wire its confirmPayment.

    Returns the confirmations made (what the page sent and what localstripe answered).
    """
    confirmations: list[dict] = []

    def serve(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="application/javascript",
            body=STRIPE_DOUBLE_JS.read_text(),
        )

    def confirm(request: dict) -> dict:
        card = "".join(ch for ch in request["cardNumber"] if ch.isdigit())
        result = confirm_card_payment(localstripe, request["clientSecret"], card)
        confirmations.append({**request, "result": result})
        return result

    page.route(f"**{STRIPE_DOUBLE_PATH}", serve)
    page.expose_function("e2eConfirmCardPayment", confirm)
    return confirmations
