(function () {
  // <script src="https://BANNERS/embed.js" data-campaign="7" async></script>: replaced by
  // the campaign's banner, linked to its click URL.  Several placements per page work.
  function place(script) {
    if (!script || script.getAttribute("data-banners-placed")) return;
    script.setAttribute("data-banners-placed", "1");
    var base = new URL(script.src, document.baseURI);
    var url = new URL("/campaigns/" + encodeURIComponent(script.getAttribute("data-campaign")) +
                      "?format=json", base);
    // With credentials, so the visitor cookie counts (the service must name this site's
    // origin in --cors-origin); a service answering any origin (*) gets a plain request.
    fetch(url, {credentials: "include"})
      .catch(function () { return fetch(url, {credentials: "omit"}); })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (d) {
        var a = document.createElement("a");
        a.href = new URL(d.click_url, base).href;
        var img = document.createElement("img");
        img.src = new URL(d.image_url, base).href;
        img.width = 300; img.height = 250;
        img.alt = d.name || ("Banner " + d.banner_id);
        a.appendChild(img);
        script.parentNode.replaceChild(a, script);
      })
      .catch(function () { if (script.parentNode) script.parentNode.removeChild(script); });
  }
  if (document.currentScript) place(document.currentScript);
  var all = document.querySelectorAll("script[data-campaign]");
  for (var i = 0; i < all.length; i++) if (/\/embed\.js(\?|$)/.test(all[i].src)) place(all[i]);
})();
