/* Once loaded: <body data-images-ok="true"> when every image has loaded, and the page's height
   (both read by the browser test). Before printing: every collapsed block opened. */
(function () {
  function check() {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    document.body.setAttribute("data-images", String(images.length));
    document.body.setAttribute("data-height", String(document.documentElement.scrollHeight));
    document.body.setAttribute("data-images-ok", broken.length === 0 ? "true" : "false");
  }
  window.addEventListener("load", check);
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
