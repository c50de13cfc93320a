// The shell's navigation badges: each [data-badge] shows the `unread` count its endpoint answers.
(function () {
  "use strict";
  var REFRESH_MS = 30000;

  function refresh() {
    document.querySelectorAll("[data-badge]").forEach(function (badge) {
      fetch(badge.getAttribute("data-badge"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          var count = body && typeof body.unread === "number" ? body.unread : 0;
          badge.textContent = count > 99 ? "99+" : String(count);
          badge.hidden = count === 0;
        })
        .catch(function () { badge.hidden = true; });
    });
  }

  refresh();
  setInterval(function () { if (!document.hidden) { refresh(); } }, REFRESH_MS);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  document.addEventListener("citybrain:badges", refresh);
})();
