// Draws the live views a lesson stored (its widget state) as they were when the lesson ended.
//
// MyST-NB writes the notebook's saved widget state and one view tag per widget output into the
// page and loads, before this file, RequireJS and @jupyter-widgets/html-manager's AMD bundle,
// all from this site's _static/vendor/. The bundle holds ipywidgets' own controls (HTML, VBox,
// ...), which is what wslab's views are made of. A widget with a front-end module of its own
// (lesson 04's in-notebook browser client is an anywidget) would be fetched from a CDN by the
// bundle's default loader; here it becomes a note saying it runs only in a live notebook.
(function () {
  "use strict";
  const vendor = new URL("vendor/", document.currentScript.src);
  // Each module of the bundle looks for its fonts in the folder its RequireJS URL names (by default
  // next to the page): name one folder for all of them, the one build.py copies the fonts to.
  const modules = ["base", "base7", "controls", "controls7", "html-manager", "html-manager/dist/libembed-amd"];
  const paths = Object.fromEntries(
    modules.map((name) => [`@jupyter-widgets/${name}`, new URL(`html-manager/${name.replaceAll("/", "-")}`, vendor).href]),
  );
  window.requirejs.config({ paths });

  function offlineModule(base, moduleName) {
    class OfflineModel extends base.DOMWidgetModel {}
    class OfflineView extends base.DOMWidgetView {
      render() {
        const id = this.model.get("_anywidget_id") || "";
        if (id.endsWith(".LiveRegion")) {
          // A live view's region for screen readers: a reading copy has no new lines to read out.
          this.el.hidden = true;
          return;
        }
        const name = id ? id.split(".").pop() : `${this.model.get("_view_name")} (${moduleName})`;
        this.el.classList.add("wslab-offline-widget");
        this.el.textContent =
          `${name}: this view runs in the browser while the lesson runs in JupyterLab, ` +
          "next to the lesson's servers. A reading copy cannot run it: run the lesson to see it.";
      }
    }
    // Any class the saved state asks this module for: models get the model, views the note.
    // ("then" stays undefined: the module is resolved through a Promise.)
    return new Proxy(
      {},
      {
        get: (_, key) =>
          typeof key !== "string" || key === "then" ? undefined : key.endsWith("Model") ? OfflineModel : OfflineView,
      },
    );
  }

  function loader(moduleName) {
    return new Promise((resolve, reject) => {
      window.requirejs(["@jupyter-widgets/base"], (base) => resolve(offlineModule(base, moduleName)), reject);
    });
  }

  window.requirejs(["@jupyter-widgets/html-manager/dist/libembed-amd"], (embed) => {
    const render = () => embed.renderWidgets(document.documentElement, loader);
    if (document.readyState === "complete") render();
    else window.addEventListener("load", render);
  });
})();
