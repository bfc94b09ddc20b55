(function () {
  // <script src="https://BANNERS/embed.js" data-campaign="7" async></script>: replaced by
  // the campaign's banner, linked to its click URL.  Several placements per page work.
  //
  // Trust: only tags of this very script (same origin, /embed.js) are placements, never
  // another vendor's <script data-campaign>; campaign ids are digits; links and pictures
  // are http(s) URLs resolved against this server's origin; a placement whose answer
  // lacks any of them is removed, never shown half or linked to "/undefined".
  var self = document.currentScript;
  if (!self || !self.src) return;
  var origin;
  try { origin = new URL(self.src, document.baseURI).origin; } catch (e) { return; }

  function ours(script) {
    try {
      var u = new URL(script.src, document.baseURI);
      return u.origin === origin && /\/embed\.js$/.test(u.pathname);
    } catch (e) { return false; }
  }

  function web(value) {  // an http(s) URL resolved against this server, or null
    if (typeof value !== "string" || !value) return null;
    try {
      var u = new URL(value, origin);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  function remove(script) { if (script.parentNode) script.parentNode.removeChild(script); }

  function place(script) {
    if (!script || script.getAttribute("data-banners-placed") || !ours(script)) return;
    script.setAttribute("data-banners-placed", "1");
    var campaign = script.getAttribute("data-campaign") || "";
    if (!/^[0-9]{1,18}$/.test(campaign)) { remove(script); return; }
    var url = origin + "/campaigns/" + campaign + "?format=json";
    // With credentials, so the visitor cookie counts (the service must name this site's
    // origin in --cors-origin); a service answering any origin (*) gets a plain request.
    fetch(url, {credentials: "include"})
      .catch(function () { return fetch(url, {credentials: "omit"}); })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (d) {
        var href = d && web(d.click_url), src = d && web(d.image_url);
        if (!href || !src || d.banner_id === undefined || d.banner_id === null) throw new Error("incomplete");
        var a = document.createElement("a");
        a.href = href;
        var img = document.createElement("img");
        img.src = src;
        img.width = 300; img.height = 250;
        img.alt = (typeof d.name === "string" && d.name) || ("Banner " + d.banner_id);
        a.appendChild(img);
        script.parentNode.replaceChild(a, script);
      })
      .catch(function () { remove(script); });
  }
  place(self);
  var all = document.querySelectorAll("script[data-campaign]");
  for (var i = 0; i < all.length; i++) place(all[i]);
})();
