// fepd console: asks before an action marked `form.confirm` is sent (a
// replay, a change to a user). The pages work without this script.
document.addEventListener('submit', function (e) {
  var f = e.target;
  if (f.classList && f.classList.contains('confirm')) {
    var q = f.getAttribute('data-confirm') || '确定执行此操作吗？';
    if (!window.confirm(q)) {
      e.preventDefault();
    }
  }
}, true);

// A refresh answered by the login page (the session ended): go there
// instead of swapping it into the page.
document.addEventListener('htmx:beforeSwap', function (e) {
  var url = (e.detail.xhr && e.detail.xhr.responseURL) || '';
  if (url.indexOf('/login') >= 0) {
    e.detail.shouldSwap = false;
    window.location.href = '/login';
  }
});
