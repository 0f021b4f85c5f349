// Liaison service worker: the app shell starts offline.
// - the shell (index, scripts, styles, icons) is precached at install;
// - navigations: network first, the cached shell when offline;
// - /app/ assets: cache first (names carry a content hash);
// - the API and the live channel are never cached or intercepted;
// - a push (SPEC 26) shows its notification; a tap focuses or opens the app
//   on its incident.
const VERSION = "__VERSION__";
const SHELL = "liaison-shell-" + VERSION;
const PRECACHE = __PRECACHE__;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(SHELL)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("liaison-shell-") && k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/socket.io/") || url.pathname === "/healthz") return;
  if (req.mode === "navigate") {
    event.respondWith(
      fetch(req)
        .then((resp) => {
          if (resp.ok) {
            const copy = resp.clone();
            caches.open(SHELL).then((cache) => cache.put("/", copy));
          }
          return resp;
        })
        .catch(() => caches.match("/", { cacheName: SHELL }).then((r) => r || Response.error())),
    );
    return;
  }
  if (url.pathname.startsWith("/app/") || url.pathname === "/manifest.webmanifest") {
    event.respondWith(
      caches.match(req, { cacheName: SHELL }).then(
        (hit) =>
          hit ||
          fetch(req).then((resp) => {
            if (resp.ok && url.pathname.startsWith("/app/")) {
              const copy = resp.clone();
              caches.open(SHELL).then((cache) => cache.put(req, copy));
            }
            return resp;
          }),
      ),
    );
  }
});

self.addEventListener("push", (event) => {
  let note = {};
  try {
    note = event.data ? event.data.json() : {};
  } catch (err) {
    console.warn("push payload unreadable", err); // still shown: userVisibleOnly
  }
  event.waitUntil(
    self.registration.showNotification(note.title || "Liaison", {
      body: note.body || "Something needs you",
      tag: note.tag || "liaison",
      data: { url: note.url || "/", incident: note.incident || null },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const { url, incident } = event.notification.data || {};
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
      if (!open) return self.clients.openWindow(url || "/");
      if (incident) open.postMessage({ type: "liaison.open", incident });
      return open.focus();
    }),
  );
});
