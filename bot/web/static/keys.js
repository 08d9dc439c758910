// Next/previous indicator from the keyboard: j or → for next, k or ← for previous (not while typing).
document.addEventListener("keydown", function (e) {
  var t = e.target;
  if (e.altKey || e.ctrlKey || e.metaKey || (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT"))) return;
  var rel = (e.key === "j" || e.key === "ArrowRight") ? "next" : (e.key === "k" || e.key === "ArrowLeft") ? "prev" : null;
  if (!rel) return;
  var link = document.querySelector('a[rel="' + rel + '"]');
  if (link) { e.preventDefault(); window.location.href = link.href; }
});
