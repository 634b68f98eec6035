// OmniDash's service worker: the shell is cached at install; pages and API reads go to
// the network first and fall back to their last copy offline, marked stale by a header.
"use strict";
const SHELL = "omnidash-shell-v1";
const DATA = "omnidash-data-v1";
const ASSETS = ["/dashboard/static/app.js", "/dashboard/static/app.css",
  "/dashboard/static/icon-192.png", "/dashboard/manifest.webmanifest", "/dashboard/offline"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

async function networkFirst(request) {
  const cache = await caches.open(DATA);
  try {
    const response = await fetch(request);
    if (response.ok) {
      const headers = new Headers(response.headers);
      headers.set("x-omnihub-saved-at", new Date().toISOString());
      const body = await response.clone().blob();
      await cache.put(request, new Response(body, { status: response.status, headers }));
    }
    return response;
  } catch (err) {
    const saved = await cache.match(request);
    if (!saved) {
      if (request.mode === "navigate") return (await caches.match("/dashboard/offline")) || Response.error();
      throw err;
    }
    const headers = new Headers(saved.headers);
    headers.set("x-omnihub-stale", saved.headers.get("x-omnihub-saved-at") || "");
    return new Response(await saved.blob(), { status: saved.status, headers });
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname === "/api/v1/stream") return;  // live only, never cached
  if (url.pathname.startsWith("/dashboard/static/")) {
    event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
  } else if (url.pathname.startsWith("/api/v1/") || url.pathname.startsWith("/dashboard/")) {
    event.respondWith(networkFirst(event.request));
  }
});


// Web Push from the notifier: show it, and open the approval's page on a click.
self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  event.waitUntil(self.registration.showNotification(data.title || "OmniHub", {
    body: data.body || "", data: { url: data.url || "/dashboard/approvals" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow(event.notification.data.url));
});
