// Appended to a copy of a report page by test_render.sh: once the page has
// loaded, checks every chart image decoded to a non-empty picture and that
// nothing was fetched but data: URLs, and writes the verdict into the DOM
// (read back from --dump-dom).
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure.chart img'), bad = [];
  for (var i = 0; i < imgs.length; i++) {
    var im = imgs[i];
    if (!im.complete || im.naturalWidth < 100 || im.naturalHeight < 100 || im.src.indexOf('data:image/svg+xml;base64,') !== 0)
      bad.push(im.parentNode.id + ' ' + im.naturalWidth + 'x' + im.naturalHeight);
  }
  var res = performance.getEntriesByType('resource'), ext = [];
  for (var k = 0; k < res.length; k++)
    if (res[k].name.indexOf('data:') !== 0) ext.push(res[k].name);
  var out = document.createElement('pre');
  out.id = 'keel-check';
  out.textContent = 'KEEL-CHECK charts=' + imgs.length + ' bad=' + bad.length + ' external=' + ext.length +
                    (bad.length ? ' [' + bad.join(', ') + ']' : '') + (ext.length ? ' [' + ext.join(', ') + ']' : '');
  document.body.appendChild(out);
});
