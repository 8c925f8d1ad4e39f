/*! Leadstream tracking snippet: reports page views to the Leadstream collector.
 *
 * Embed it once per page, from the collector's own origin:
 *   <script async src="https://collect.example.com/collect/leadstream.js"></script>
 * It loads /collect/pixel.gif on the same origin with the page's url, referrer and title and a
 * random hit id (eid), so a retried hit counts once. The collector keeps the visitor's
 * anonymous id in its first-party cookie `ls_aid`. Single-page applications call
 * `window.leadstream.page()` after each client-side navigation.
 */
(function (window, document) {
  "use strict";
  if (window.leadstream && window.leadstream.loaded) {
    return;
  }
  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src, document.baseURI).origin : "";

  function hitId() {
    if (window.crypto && window.crypto.randomUUID) {
      return window.crypto.randomUUID();
    }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function page(properties) {
    var props = properties || {};
    var url = new URL("/collect/pixel.gif", origin || window.location.href);
    url.searchParams.set("url", props.url || window.location.href);
    var referrer = props.referrer !== undefined ? props.referrer : document.referrer;
    if (referrer) {
      url.searchParams.set("ref", referrer);
    }
    var title = props.title !== undefined ? props.title : document.title;
    if (title) {
      url.searchParams.set("title", title);
    }
    url.searchParams.set("eid", props.eventId || hitId());
    var image = new Image(1, 1);
    image.referrerPolicy = "no-referrer-when-downgrade";
    image.src = url.toString();
    return image;
  }

  window.leadstream = { loaded: true, page: page };
  page();
})(window, document);
