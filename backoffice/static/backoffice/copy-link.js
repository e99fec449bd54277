/*
 * Admin order page: show the payment link as an absolute URL and copy it on click.
 * Markup: <a id="…" data-absolute-link href="/pay/…/">, <button data-copy-link="<link id>">,
 * and a [data-copy-status] element next to the button for the result.
 */
(function () {
  "use strict";

  function init() {
    document.querySelectorAll("a[data-absolute-link]").forEach(function (link) {
      link.textContent = link.href;
    });
    document.querySelectorAll("button[data-copy-link]").forEach(function (button) {
      button.addEventListener("click", function () {
        var link = document.getElementById(button.dataset.copyLink);
        var status = button.parentElement.querySelector("[data-copy-status]");
        function done(message) {
          if (status) {
            status.textContent = message;
          }
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(link.href).then(
            function () { done("Copied"); },
            function () { done("Select the link and copy it"); }
          );
        } else {
          var range = document.createRange();
          range.selectNodeContents(link);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          done(document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C to copy");
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
