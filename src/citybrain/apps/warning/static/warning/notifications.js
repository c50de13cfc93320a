// My notifications: after marking read here, the shell's badges refresh at once (not in 30 s).
(function () {
  "use strict";
  function badges() { document.dispatchEvent(new Event("citybrain:badges")); }

  // The answer to "mark read" / "mark all read" is in: the server has marked them (the list is swapped
  // right after, so the event is taken while the form is still in the page).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail || {};
    if (detail.target && detail.target.id === "notification-list" && detail.xhr && detail.xhr.status < 400) {
      badges();
    }
  });
  // Back from a warning opened here (which marked its notification read): a page from the history
  // cache shows the count it had, so the badges are asked again.
  window.addEventListener("pageshow", function (event) { if (event.persisted) { badges(); } });
})();
