// Progressive enhancement only: every page works without this script.
// 1. Buttons with data-confirm ask before their form is sent.
// 2. A page with data-live subscribes to its server-sent events and, when the server says it
//    changed, fetches itself again and swaps its <main> (at most every data-live-every ms).
"use strict";

document.addEventListener("submit", function (event) {
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

(function () {
  var url = document.body.getAttribute("data-live");
  var every = parseInt(document.body.getAttribute("data-live-every"), 10) || 5000;
  if (!url || !window.EventSource || !window.fetch) return;
  var seen = null;
  var pending = false;
  var last = 0;

  function refresh() {
    pending = false;
    last = Date.now();
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main && !main.contains(document.activeElement)) {
          main.innerHTML = fresh.innerHTML;
        }
      })
      .catch(function () { /* keep the page as it is */ });
  }

  var source = new EventSource(url);
  source.addEventListener("change", function (event) {
    if (seen === null) { seen = event.data; return; }
    if (event.data === seen) return;
    seen = event.data;
    if (pending) return;
    pending = true;
    window.setTimeout(refresh, Math.max(0, every - (Date.now() - last)));
  });
})();
