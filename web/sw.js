// The staff app's service worker: makes the app installable and lets it open without
// a network (the shell comes from the cache; live data always from the network).
const CACHE = 'vakt-app-v2';
const SHELL = ['/app', '/assets/style.css', '/assets/common.js', '/assets/i18n.js', '/assets/app.js', '/assets/icon.svg', '/assets/manifest.webmanifest'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.pathname.startsWith('/api/') || url.pathname === '/readyz') return; // live data: network only
  // Network first, so a new version shows at once; the cache when offline.
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        if (r.ok && SHELL.includes(url.pathname)) {
          const copy = r.clone();
          caches.open(CACHE).then((c) => c.put(e.request, copy));
        }
        return r;
      })
      .catch(() => caches.match(e.request)),
  );
});
