// Live updates of the pending list through server-sent events. The page
// works without this script: reloading shows the same list.
(() => {
  "use strict";
  const list = document.getElementById("pending");
  if (!list || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const source = new EventSource(list.dataset.live);
  source.addEventListener("pending", (event) => {
    const doc = new DOMParser().parseFromString(event.data, "text/html");
    list.replaceChildren(...doc.body.childNodes);
    if (status) status.textContent = "Updated at " + new Date().toLocaleTimeString() + ".";
  });
  source.addEventListener("signed-out", () => {
    source.close();
    window.location.reload();
  });
})();
