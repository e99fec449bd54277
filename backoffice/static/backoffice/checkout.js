/*
 * Attendee pay page: mounts Stripe's Payment Element and confirms the payment.
 * Configuration comes from data- attributes on #payment-form (no inline script).
 * Stripe.js calls used, and only these: Stripe(publishableKey),
 * stripe.elements({clientSecret, appearance}), elements.create("payment"),
 * element.mount("#payment-element"),
 * stripe.confirmPayment({elements, confirmParams: {return_url}}) -> Promise<{error}>.
 */
(function () {
  "use strict";

  var form = document.getElementById("payment-form");
  if (!form) {
    return;
  }
  var button = document.getElementById("pay-button");
  var errors = document.getElementById("payment-errors");

  function showError(message) {
    errors.textContent = message;
    errors.hidden = false;
  }

  function clearError() {
    errors.textContent = "";
    errors.hidden = true;
  }

  function setBusy(busy) {
    button.disabled = busy;
    if (busy) {
      button.setAttribute("aria-busy", "true");
    } else {
      button.removeAttribute("aria-busy");
    }
  }

  if (typeof window.Stripe !== "function") {
    showError("The card form could not be loaded. Check your connection and reload the page.");
    setBusy(true);
    return;
  }

  var stripe = window.Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({
    clientSecret: form.dataset.clientSecret,
    appearance: { theme: "stripe" }
  });
  var paymentElement = elements.create("payment");
  paymentElement.mount("#payment-element");

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearError();
    setBusy(true);
    stripe
      .confirmPayment({
        elements: elements,
        confirmParams: { return_url: form.dataset.returnUrl }
      })
      .then(function (result) {
        // On success Stripe.js navigates to return_url; we only get here on an error.
        if (result && result.error) {
          showError(result.error.message || "Your payment could not be completed. Please try again.");
        }
        setBusy(false);
      })
      .catch(function () {
        showError("Your payment could not be completed. Please try again.");
        setBusy(false);
      });
  });
})();
