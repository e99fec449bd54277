/*
 * Local stand-in for Stripe.js v3, served only in development (DJANGO_DEBUG=1 and a
 * local STRIPE_API_BASE: `make run`'s fake Stripe server, localstripe).
 *
 * It implements what static/backoffice/checkout.js calls, and only that:
 *   Stripe(publishableKey) -> stripe; stripe.elements({clientSecret}) -> elements;
 *   elements.create("payment") -> element; element.mount(selector);
 *   stripe.confirmPayment({elements, confirmParams: {return_url}}) -> Promise<{error}>.
 *
 * The mounted element is a plain card form (number, expiry, security code). Paying posts
 * the card to the site's own local-stripe/v1/payment_intents/<id>/confirm, which creates
 * the payment method at the fake and confirms the PaymentIntent with the conference's
 * secret key (localstripe needs one for both; the browser never has it). As with
 * Stripe.js, success goes to return_url with Stripe's query parameters, and a decline
 * resolves {error} with the message the page shows.
 */
(function () {
  "use strict";

  var scriptUrl = document.currentScript ? document.currentScript.src : window.location.href;
  var GENERIC_ERROR = "Your payment could not be completed. Please try again.";

  function validationError(code, message) {
    return { error: { type: "validation_error", code: code, message: message } };
  }

  function digits(value) {
    return (value || "").replace(/\D/g, "");
  }

  function luhnValid(number) {
    var sum = 0;
    for (var i = 0; i < number.length; i++) {
      var digit = Number(number.charAt(number.length - 1 - i));
      if (i % 2 === 1) {
        digit *= 2;
        if (digit > 9) {
          digit -= 9;
        }
      }
      sum += digit;
    }
    return sum % 10 === 0;
  }

  function field(id, labelText, attributes) {
    var wrapper = document.createElement("div");
    var label = document.createElement("label");
    label.setAttribute("for", id);
    label.textContent = labelText;
    label.style.cssText = "display:block;margin-bottom:6px;font-size:14px;color:#30313d;";
    var input = document.createElement("input");
    input.id = id;
    input.type = "text";
    Object.keys(attributes).forEach(function (name) {
      input.setAttribute(name, attributes[name]);
    });
    input.style.cssText =
      "display:block;box-sizing:border-box;width:100%;padding:10px 12px;font-size:16px;" +
      "border:1px solid #8c8c8c;border-radius:5px;";
    wrapper.appendChild(label);
    wrapper.appendChild(input);
    return { wrapper: wrapper, input: input };
  }

  function CardElement() {
    this._inputs = null;
  }

  CardElement.prototype.mount = function (target) {
    var container = typeof target === "string" ? document.querySelector(target) : target;
    container.innerHTML = "";
    var form = document.createElement("div");
    form.setAttribute("data-testid", "local-card-form");
    var note = document.createElement("p");
    note.textContent =
      "Local test card form: the fake Stripe server takes this payment, no money moves. " +
      "Try 4242 4242 4242 4242, any future date and any CVC.";
    note.style.cssText = "margin:0 0 12px;font-size:14px;color:#30313d;";
    var number = field("local-card-number", "Card number", {
      name: "cardnumber", inputmode: "numeric", autocomplete: "cc-number",
      placeholder: "1234 1234 1234 1234"
    });
    var expiry = field("local-card-expiry", "Expiration date", {
      name: "exp-date", inputmode: "numeric", autocomplete: "cc-exp", placeholder: "MM / YY"
    });
    var cvc = field("local-card-cvc", "Security code", {
      name: "cvc", inputmode: "numeric", autocomplete: "cc-csc", placeholder: "CVC"
    });
    var row = document.createElement("div");
    row.style.cssText = "display:flex;gap:12px;margin-top:12px;";
    expiry.wrapper.style.cssText = cvc.wrapper.style.cssText = "flex:1;";
    row.appendChild(expiry.wrapper);
    row.appendChild(cvc.wrapper);
    form.appendChild(note);
    form.appendChild(number.wrapper);
    form.appendChild(row);
    container.appendChild(form);
    this._inputs = { number: number.input, expiry: expiry.input, cvc: cvc.input };
  };

  // The card as the fake's API wants it, or Stripe.js's validation error.
  CardElement.prototype._card = function () {
    var inputs = this._inputs;
    var number = digits(inputs.number.value);
    if (number.length < 12) {
      return validationError("incomplete_number", "Your card number is incomplete.");
    }
    if (number.length > 19 || !luhnValid(number)) {
      return validationError("invalid_number", "Your card number is invalid.");
    }
    var expiry = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(inputs.expiry.value);
    if (!expiry) {
      return validationError("incomplete_expiry", "Your card's expiration date is incomplete.");
    }
    var month = Number(expiry[1]);
    var year = Number(expiry[2].length === 2 ? "20" + expiry[2] : expiry[2]);
    var now = new Date();
    if (month < 1 || month > 12) {
      return validationError("invalid_expiry_month", "Your card's expiration date is invalid.");
    }
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
      return validationError("invalid_expiry_year_past", "Your card's expiration date is in the past.");
    }
    var cvc = digits(inputs.cvc.value);
    if (cvc.length < 3 || cvc.length > 4) {
      return validationError("incomplete_cvc", "Your card's security code is incomplete.");
    }
    return { card: { number: number, exp_month: String(month), exp_year: String(year), cvc: cvc } };
  };

  function Elements(options) {
    this._clientSecret = options.clientSecret;
    this._mounted = null;
  }

  Elements.prototype.create = function (type) {
    if (type !== "payment") {
      throw new Error("Local Stripe.js: only the Payment Element is implemented, not " + type);
    }
    this._mounted = new CardElement();
    return this._mounted;
  };

  function LocalStripe(publishableKey) {
    if (!(this instanceof LocalStripe)) {
      return new LocalStripe(publishableKey);
    }
    this._publishableKey = publishableKey;
  }

  LocalStripe.prototype.elements = function (options) {
    return new Elements(options || {});
  };

  LocalStripe.prototype.confirmPayment = function (params) {
    var elements = params.elements;
    var checked = elements._mounted._card();
    if (checked.error) {
      return Promise.resolve(checked);
    }
    var clientSecret = elements._clientSecret;
    var intentId = clientSecret.split("_secret_")[0];
    var url = new URL("../v1/payment_intents/" + encodeURIComponent(intentId) + "/confirm", scriptUrl);
    var body = new URLSearchParams(checked.card);
    body.set("client_secret", clientSecret);
    return fetch(url.toString(), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.json();
      })
      .then(function (result) {
        if (!result.paymentIntent) {
          return { error: result.error || { type: "api_error", message: GENERIC_ERROR } };
        }
        var next = new URL(params.confirmParams.return_url, window.location.href);
        next.searchParams.set("payment_intent", result.paymentIntent.id);
        next.searchParams.set("payment_intent_client_secret", clientSecret);
        next.searchParams.set(
          "redirect_status", result.paymentIntent.status === "succeeded" ? "succeeded" : "processing"
        );
        window.location.assign(next.toString());
        return new Promise(function () {}); // Stripe.js never resolves once it redirects.
      });
  };

  window.Stripe = LocalStripe;
})();
