// A screen reader's view of a wslab live log (wslab.widgets.live_region.LiveRegion), an anywidget
// front-end module. The region exists, empty, from the moment the view is shown; each batch of new
// lines the kernel sends is appended to it, so a screen reader reads those lines politely and
// nothing else (the visible log is redrawn whole, which no screen reader announces). Removing the
// oldest lines is not announced (aria-relevant="additions"). Text only, never HTML.
const KEPT = 20; // lines kept in the region; older ones were read already

function render({ model, el }) {
  el.classList.add("wslab-live-region");
  const region = document.createElement("div");
  region.setAttribute("role", "log");
  region.setAttribute("aria-live", "polite");
  region.setAttribute("aria-relevant", "additions");
  region.setAttribute("aria-label", model.get("label") || "new lines");
  el.append(region);
  const onMessage = (message) => {
    if (!message || !Array.isArray(message.lines)) return;
    for (const line of message.lines) {
      const item = document.createElement("div");
      item.textContent = String(line);
      region.append(item);
    }
    while (region.childElementCount > KEPT) region.firstElementChild.remove();
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

export default { render };
