// Entry point: the app shell. Registers the service worker (so the shell
// starts offline), opens the browser store and starts the app.

import { io } from "socket.io-client";
import { BrowserStore } from "./store.js";
import { App } from "./ui/app.js";

performance.mark("liaison-boot");

function tileUrl() {
  const meta = document.querySelector('meta[name="liaison-tile-url"]');
  return meta?.getAttribute("content")?.trim() || "";
}

async function main() {
  if ("serviceWorker" in navigator && location.protocol !== "file:") {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((err) => {
      console.warn("service worker not registered", err);
    });
  }
  const store = await new BrowserStore().open();
  const app = new App(document.getElementById("app"), { store, io, tileUrl: tileUrl() });
  window.__liaison = app; // for diagnostics in the browser console
  // A notification tapped (sw.js): open its incident in this window.
  navigator.serviceWorker?.addEventListener("message", (event) => {
    if (event.data?.type === "liaison.open" && event.data.incident) app.openIncident(event.data.incident);
  });
  await app.boot();
}

main().catch((err) => {
  console.error(err);
  const root = document.getElementById("app");
  root.textContent = "Liaison could not start. Reload the page; if it keeps failing, call your administrator.";
});
