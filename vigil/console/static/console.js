// The console's live parts: #live re-fetched every 5 s (never while someone types in
// it), and every countdown ticking each second. No library, nothing from the internet.
(function () {
  "use strict";
  function span(seconds, lang) {
    if (seconds <= 0) { return lang === "en" ? "due now" : "已到"; }
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
        m = Math.floor(seconds % 3600 / 60), s = Math.floor(seconds % 60);
    if (lang === "en") {
      return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + s + "s";
    }
    return (d ? d + "天" : "") + (d || h ? h + "小时" : "") + m + "分" + s + "秒";
  }
  function tick() {
    document.querySelectorAll("[data-until]").forEach(function (el) {
      el.textContent = span((Date.parse(el.dataset.until) - Date.now()) / 1000,
                            document.documentElement.lang);
    });
  }
  function busy(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && active.tagName !== "BUTTON") { return true; }
    return Array.prototype.some.call(live.querySelectorAll("input[type=text], textarea"),
                                     function (el) { return el.value !== ""; });
  }
  function refresh() {
    var live = document.getElementById("live");
    if (!live || !live.dataset.src || busy(live)) { return; }
    fetch(live.dataset.src, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (html !== null && !busy(live)) { live.innerHTML = html; tick(); }
      })
      .catch(function () { /* the next try will do */ });
  }
  tick();
  setInterval(tick, 1000);
  setInterval(refresh, 5000);
})();
