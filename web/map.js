// A small map without third-party code: Web Mercator, optional raster tiles from the
// configured template (http.tiles), markers as elements. With no tiles (none set, or
// none reachable) the markers stand on a plain background with a scale bar, so
// positions still show. Drag to pan, buttons or the wheel to zoom.

import { t } from './i18n.js';

const TILE = 256;

function project(lat, lon, z) {
  const n = TILE * 2 ** z;
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return { x: ((lon + 180) / 360) * n, y: (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n };
}

export class PlainMap {
  constructor(root, { tiles = null, attribution = '' } = {}) {
    this.root = root;
    this.tiles = tiles;
    this.zoom = 10;
    this.center = { lat: 61.2, lon: 7.1 };
    this.points = [];
    this.fitted = false;
    root.classList.add('map');
    this.tileLayer = document.createElement('div');
    this.tileLayer.className = 'map-tiles';
    this.markerLayer = document.createElement('div');
    this.markerLayer.className = 'map-markers';
    const controls = document.createElement('div');
    controls.className = 'map-controls';
    for (const [label, dz] of [['+', 1], ['−', -1]]) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.title = dz > 0 ? t('Zoom in') : t('Zoom out');
      b.addEventListener('click', () => this.setZoom(this.zoom + dz));
      controls.append(b);
    }
    const fit = document.createElement('button');
    fit.type = 'button';
    fit.textContent = '⤢';
    fit.title = t('Show everything');
    fit.addEventListener('click', () => this.fit());
    controls.append(fit);
    this.scale = document.createElement('div');
    this.scale.className = 'map-scale';
    const attr = document.createElement('div');
    attr.className = 'map-attribution';
    attr.textContent = tiles ? attribution : t('No map tiles configured: positions on a plain background');
    root.append(this.tileLayer, this.markerLayer, controls, this.scale, attr);
    this.dragging = null;
    root.addEventListener('pointerdown', (e) => {
      if (e.target.closest('button, .marker')) return;
      this.dragging = { x: e.clientX, y: e.clientY, c: project(this.center.lat, this.center.lon, this.zoom) };
      root.setPointerCapture(e.pointerId);
    });
    root.addEventListener('pointermove', (e) => {
      if (!this.dragging) return;
      const d = this.dragging;
      this.setCenterPx(d.c.x - (e.clientX - d.x), d.c.y - (e.clientY - d.y));
    });
    root.addEventListener('pointerup', () => { this.dragging = null; });
    root.addEventListener('wheel', (e) => { e.preventDefault(); this.setZoom(this.zoom + (e.deltaY < 0 ? 1 : -1)); }, { passive: false });
    new ResizeObserver(() => this.render()).observe(root);
  }

  setCenterPx(x, y) {
    const n = TILE * 2 ** this.zoom;
    const lon = (x / n) * 360 - 180;
    const lat = (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
    this.center = { lat, lon };
    this.render();
  }

  setZoom(z) {
    this.zoom = Math.max(3, Math.min(18, z));
    this.render();
  }

  // points: [{lat, lon, cls, title, label, onclick}]
  setPoints(points) {
    this.points = points.filter((p) => Number.isFinite(p.lat) && Number.isFinite(p.lon));
    if (!this.fitted && this.points.length) this.fit();
    else this.render();
  }

  fit() {
    if (!this.points.length) return;
    const w = this.root.clientWidth || 600, h = this.root.clientHeight || 400;
    const lats = this.points.map((p) => p.lat), lons = this.points.map((p) => p.lon);
    const box = { n: Math.max(...lats), s: Math.min(...lats), e: Math.max(...lons), w: Math.min(...lons) };
    this.center = { lat: (box.n + box.s) / 2, lon: (box.e + box.w) / 2 };
    let z = 16;
    while (z > 3) {
      const a = project(box.n, box.w, z), b = project(box.s, box.e, z);
      if (b.x - a.x < w - 60 && b.y - a.y < h - 60) break;
      z--;
    }
    this.zoom = z;
    this.fitted = true;
    this.render();
  }

  render() {
    const w = this.root.clientWidth, h = this.root.clientHeight;
    if (!w || !h) return;
    const c = project(this.center.lat, this.center.lon, this.zoom);
    const left = c.x - w / 2, top = c.y - h / 2;
    this.tileLayer.replaceChildren();
    if (this.tiles) {
      const max = 2 ** this.zoom;
      for (let tx = Math.floor(left / TILE); tx <= Math.floor((left + w) / TILE); tx++) {
        for (let ty = Math.floor(top / TILE); ty <= Math.floor((top + h) / TILE); ty++) {
          if (ty < 0 || ty >= max) continue;
          const img = document.createElement('img');
          img.alt = '';
          img.draggable = false;
          img.style.left = `${tx * TILE - left}px`;
          img.style.top = `${ty * TILE - top}px`;
          img.onerror = () => img.remove();
          img.src = this.tiles.replace('{z}', this.zoom).replace('{x}', ((tx % max) + max) % max).replace('{y}', ty);
          this.tileLayer.append(img);
        }
      }
    }
    this.markerLayer.replaceChildren();
    for (const p of this.points) {
      const q = project(p.lat, p.lon, this.zoom);
      const m = document.createElement('div');
      m.className = `marker ${p.cls || ''}`;
      m.style.left = `${q.x - left}px`;
      m.style.top = `${q.y - top}px`;
      if (p.title) m.title = p.title;
      if (p.label) m.textContent = p.label;
      if (p.id) m.dataset.id = p.id;
      if (p.onclick) m.addEventListener('click', p.onclick);
      this.markerLayer.append(m);
    }
    // Scale bar: metres per pixel at the centre's latitude.
    const mpp = (40075016.686 * Math.cos((this.center.lat * Math.PI) / 180)) / (TILE * 2 ** this.zoom);
    const nice = [50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000].find((m) => m / mpp >= 60) || 100000;
    this.scale.style.width = `${Math.round(nice / mpp)}px`;
    this.scale.textContent = nice >= 1000 ? `${nice / 1000} km` : `${nice} m`;
  }
}
