/*
 * Test double of Stripe.js v3 for the browser tests (tests/e2e). The real Stripe.js
 * cannot load here, so STRIPE_JS_URL points at this file during the tests.
 *
 * It implements only what the checkout page calls:
 *   Stripe(publishableKey) -> stripe
 *   stripe.elements({clientSecret, ...}) -> elements
 *   elements.create("payment", options) -> element; element.mount(selectorOrNode),
 *     element.on("ready" | "change" | "focus" | "blur", handler), unmount(), destroy()
 *   elements.submit() -> Promise<{}> (or {error} while the card field is empty)
 *   stripe.confirmPayment({elements, confirmParams: {return_url}, redirect})
 *
 * The mounted element is a plain, labelled card-number field. confirmPayment hands the
 * client secret and the typed card number to window.e2eConfirmCardPayment, a function
 * the test exposes (Playwright's expose_function): the test confirms the PaymentIntent
 * at localstripe over HTTP with that card, as Stripe's servers would, and localstripe
 * then sends its signed webhook to the live server. On success the page is sent to
 * return_url with Stripe's query parameters; a decline resolves {error: {...}} with
 * localstripe's message, exactly as Stripe.js does.
 */
(function () {
  "use strict";

  function Element(elements, type, options) {
    this._elements = elements;
    this._type = type;
    this._options = options || {};
    this._handlers = {};
    this._container = null;
    this._input = null;
  }

  Element.prototype.on = function (event, handler) {
    (this._handlers[event] = this._handlers[event] || []).push(handler);
    return this;
  };

  Element.prototype._emit = function (event, payload) {
    (this._handlers[event] || []).forEach(function (handler) {
      handler(payload);
    });
  };

  Element.prototype.mount = function (target) {
    var container = typeof target === "string" ? document.querySelector(target) : target;
    if (!container) {
      throw new Error("Stripe double: mount target not found: " + target);
    }
    var self = this;
    var id = "e2e-stripe-card-number";
    container.innerHTML = "";
    var wrapper = document.createElement("div");
    wrapper.setAttribute("data-testid", "stripe-payment-element");
    var label = document.createElement("label");
    label.setAttribute("for", id);
    label.textContent = "Card number";
    var input = document.createElement("input");
    input.id = id;
    input.name = "cardnumber";
    input.type = "text";
    input.inputMode = "numeric";
    input.autocomplete = "cc-number";
    input.placeholder = "1234 1234 1234 1234";
    input.addEventListener("input", function () {
      var digits = input.value.replace(/\D/g, "");
      self._emit("change", {
        elementType: self._type,
        empty: digits.length === 0,
        complete: digits.length >= 15,
        value: { type: "card" },
      });
    });
    input.addEventListener("focus", function () { self._emit("focus", { elementType: self._type }); });
    input.addEventListener("blur", function () { self._emit("blur", { elementType: self._type }); });
    // Look roughly like Stripe's field so the screenshots show a plausible form.
    label.style.cssText = "display:block;margin-bottom:6px;font-size:14px;color:#30313d;";
    input.style.cssText =
      "display:block;box-sizing:border-box;width:100%;padding:10px 12px;font-size:16px;" +
      "border:1px solid #e6e6e6;border-radius:5px;box-shadow:0 1px 3px rgba(0,0,0,.08);";
    wrapper.appendChild(label);
    wrapper.appendChild(input);
    container.appendChild(wrapper);
    this._container = container;
    this._input = input;
    this._elements._mounted = this;
    setTimeout(function () { self._emit("ready", { elementType: self._type }); }, 0);
  };

  Element.prototype.unmount = function () {
    if (this._container) {
      this._container.innerHTML = "";
    }
    this._container = null;
    this._input = null;
  };

  Element.prototype.destroy = Element.prototype.unmount;
  Element.prototype.update = function () {};
  Element.prototype.focus = function () { if (this._input) { this._input.focus(); } };

  Element.prototype._cardNumber = function () {
    return this._input ? this._input.value.replace(/\D/g, "") : "";
  };

  function Elements(stripe, options) {
    this._stripe = stripe;
    this._options = options || {};
    this._mounted = null;
  }

  Elements.prototype.create = function (type, options) {
    if (type !== "payment") {
      throw new Error("Stripe double: only the Payment Element is implemented, not " + type);
    }
    return new Element(this, type, options);
  };

  Elements.prototype.getElement = function (type) {
    return type === "payment" ? this._mounted : null;
  };

  Elements.prototype.submit = function () {
    if (!this._mounted || !this._mounted._cardNumber()) {
      return Promise.resolve({
        error: {
          type: "validation_error",
          code: "incomplete_number",
          message: "Your card number is incomplete.",
        },
      });
    }
    return Promise.resolve({});
  };

  function StripeDouble(publishableKey) {
    if (!(this instanceof StripeDouble)) {
      return new StripeDouble(publishableKey);
    }
    if (typeof publishableKey !== "string" || publishableKey.indexOf("pk_") !== 0) {
      throw new Error("Stripe double: a publishable key (pk_...) is required");
    }
    this._publishableKey = publishableKey;
  }

  StripeDouble.prototype.elements = function (options) {
    if (!options || typeof options.clientSecret !== "string") {
      throw new Error("Stripe double: elements() needs the PaymentIntent's clientSecret");
    }
    return new Elements(this, options);
  };

  StripeDouble.prototype.confirmPayment = function (params) {
    params = params || {};
    var elements = params.elements;
    var confirmParams = params.confirmParams || {};
    if (!elements || !elements._mounted) {
      return Promise.reject(new Error("Stripe double: confirmPayment needs mounted elements"));
    }
    if (!confirmParams.return_url && params.redirect !== "if_required") {
      return Promise.reject(new Error("Stripe double: confirmParams.return_url is required"));
    }
    if (typeof window.e2eConfirmCardPayment !== "function") {
      return Promise.reject(new Error("Stripe double: the test did not expose e2eConfirmCardPayment"));
    }
    var clientSecret = elements._options.clientSecret;
    var card = elements._mounted._cardNumber();
    if (!card) {
      return elements.submit();
    }
    return window
      .e2eConfirmCardPayment({
        publishableKey: this._publishableKey,
        clientSecret: clientSecret,
        cardNumber: card,
      })
      .then(function (result) {
        if (result.error) {
          return { error: result.error };
        }
        var intent = result.paymentIntent;
        if (params.redirect === "if_required") {
          return { paymentIntent: intent };
        }
        var url = new URL(confirmParams.return_url, window.location.href);
        url.searchParams.set("payment_intent", intent.id);
        url.searchParams.set("payment_intent_client_secret", clientSecret);
        url.searchParams.set("redirect_status", intent.status === "succeeded" ? "succeeded" : "pending");
        window.location.assign(url.toString());
        // Stripe.js never resolves once it redirects.
        return new Promise(function () {});
      });
  };

  window.Stripe = StripeDouble;
})();
