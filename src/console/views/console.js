// Progressive enhancement only: every page works without this file. On the review page, each text's
// weighted length is asked of the server (the same counting chirpd uses) as the admin types.
(function () {
  "use strict";
  document.querySelectorAll("textarea[data-destination]").forEach(function (area) {
    var out = area.form.querySelector("output");
    var timer = null;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var body = new URLSearchParams({
          csrf: area.dataset.csrf,
          destination: area.dataset.destination,
          text: area.value
        });
        fetch("/length", { method: "POST", body: body, credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (j) {
            if (!j) { return; }
            out.textContent = j.length;
            out.classList.toggle("over", !j.fits);
          });
      }, 150);
    });
  });
})();
