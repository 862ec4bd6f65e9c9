// The staff app (installable): duty on and off, position, offers with a sound and a
// countdown, accept or decline, on my way, on site, close with an outcome and a note.
// It sends the MQTT app contract's own messages (docs/mqtt.md) through the HTTP API.
import { api, whoami, logout, live, throttle, el, mmss, kindName, codeName, unlockAudio, alertSound, untilAnswered, watchReadiness } from '/assets/common.js';
import { t, translatePage } from '/assets/i18n.js';

translatePage();

let me = null;
let state = { on_duty: false, incidents: [] };
let seen = new Set();
let watchId = null;
// incident id → { outcome, note }: what the user chose or typed in a card, kept across
// re-renders (every offer, confirmation or position update re-renders the list).
const drafts = new Map();
const status = document.getElementById('app-status');

function say(text, error = false) {
  status.textContent = text;
  status.className = error ? 'action-status error' : 'action-status';
}


async function send(path, body, label) {
  try {
    await api(path, { method: 'POST', body });
    say(t('{label}: done', { label }));
  } catch (err) {
    say(t('{label}: {error}', { label, error: err.message }), true);
  }
  await load();
}

const reply = (incident_id, action, extra, label) => send('/api/staff/me/replies', { incident_id, action, ...extra }, label);

function renderDuty() {
  document.getElementById('duty-state').textContent = state.on_duty ? t('On duty') : t('Off duty');
  document.getElementById('duty-state').className = `duty-state ${state.on_duty ? 'on' : 'off'}`;
  const b = document.getElementById('duty-toggle');
  b.textContent = state.on_duty ? t('Go off duty') : t('Go on duty');
  b.className = state.on_duty ? 'big' : 'primary big';
  document.getElementById('position-state').textContent = state.position ? `${state.position.lat.toFixed(4)}, ${state.position.lon.toFixed(4)}` : t('not shared');
}

function offerCard(i) {
  const mine = i.mine;
  const kids = [
    el('div', { class: 'offer-head' }, el('strong', {}, kindName(i.kind)), i.priority !== 'normal' ? el('span', { class: 'badge state-unanswered' }, codeName(i.priority)) : null, i.expires_at && !mine ? el('span', { class: 'countdown', 'data-expires': i.expires_at }, '') : null),
    el('p', { class: 'address' }, i.address || i.resident_id),
    // Set aside after a fault in vakt: no timer will pass it on to anyone else.
    i.set_aside ? el('p', { class: 'small set-aside' }, t('vakt will not pass this on: take it, or tell the operators')) : null,
    i.notes ? el('p', { class: 'small' }, i.notes) : null,
    i.text ? el('p', { class: 'small muted' }, i.text) : null,
    i.position ? el('p', { class: 'small' }, el('a', { href: `geo:${i.position.lat},${i.position.lon}` }, t('Open in maps'))) : null,
  ];
  if (!mine) {
    kids.push(el('div', { class: 'button-row' },
      el('button', { type: 'button', class: 'primary big', 'data-action': 'accept', onclick: () => reply(i.incident_id, 'accept', {}, t('Accept')) }, t('Accept')),
      el('button', { type: 'button', class: 'big', 'data-action': 'decline', onclick: () => reply(i.incident_id, 'decline', {}, t('Decline')) }, t('Decline'))));
  } else {
    const outcome = el('select', { 'data-field': 'outcome' },
      el('option', { value: 'helped' }, t('Helped')), el('option', { value: 'false_alarm' }, t('False alarm')),
      el('option', { value: 'referred_to_health_service' }, t('Referred to the health service')), el('option', { value: 'technical_fixed' }, t('Technical, fixed')));
    const note = el('textarea', { rows: 2, maxlength: 2000, 'data-field': 'note', placeholder: t('Note') });
    const draft = drafts.get(i.incident_id);
    if (draft) { outcome.value = draft.outcome; note.value = draft.note; }
    const keep = () => drafts.set(i.incident_id, { outcome: outcome.value, note: note.value });
    outcome.addEventListener('change', keep);
    note.addEventListener('input', keep);
    kids.push(el('p', { class: 'small stage' }, t('Yours: {stage}', { stage: codeName(i.stage) })));
    kids.push(el('div', { class: 'button-row' },
      el('button', { type: 'button', class: 'big', 'data-action': 'en_route', disabled: i.stage !== 'accepted', onclick: () => reply(i.incident_id, 'en_route', {}, t('On my way')) }, t('On my way')),
      el('button', { type: 'button', class: 'big', 'data-action': 'on_site', disabled: i.stage === 'on_site', onclick: () => reply(i.incident_id, 'on_site', {}, t('On site')) }, t('On site'))));
    kids.push(el('div', { class: 'close-box' }, outcome, note,
      el('button', { type: 'button', class: 'primary big', 'data-action': 'close', onclick: () => reply(i.incident_id, 'close', { outcome: outcome.value, note: note.value || undefined }, t('Close')) }, t('Close'))));
  }
  return el('li', { class: `offer card${mine ? ' mine' : ''}`, 'data-id': i.incident_id }, ...kids);
}

function render() {
  renderDuty();
  const list = document.getElementById('offers');
  // The field being typed in keeps its focus and caret through the re-render.
  const active = document.activeElement;
  const card = active?.dataset?.field ? active.closest('.offer') : null;
  const focus = card ? { id: card.dataset.id, field: active.dataset.field, start: active.selectionStart, end: active.selectionEnd } : null;
  list.replaceChildren(...state.incidents.map(offerCard));
  if (focus) {
    const again = list.querySelector(`.offer[data-id="${focus.id}"] [data-field="${focus.field}"]`);
    if (again) {
      again.focus();
      if (again.setSelectionRange && focus.start !== null && focus.start !== undefined) again.setSelectionRange(focus.start, focus.end);
    }
  }
  document.getElementById('no-offers').hidden = state.incidents.length > 0;
  tick();
}

function tick() {
  for (const c of document.querySelectorAll('.countdown')) {
    const left = (Date.parse(c.dataset.expires) - Date.now()) / 1000;
    c.textContent = left > 0 ? t('{time} to answer', { time: mmss(left) }) : t('passing on…');
    c.classList.toggle('urgent', left < 5);
  }
}
setInterval(tick, 500);

async function load() {
  state = await api('/api/staff/me');
  document.getElementById('who').textContent = state.name || state.staff_id;
  const fresh = state.incidents.filter((i) => !i.mine && !seen.has(i.incident_id));
  for (const i of state.incidents) seen.add(i.incident_id);
  for (const id of drafts.keys()) {
    if (!state.incidents.some((i) => i.incident_id === id)) drafts.delete(id);
  }
  if (fresh.length) alertSound();
  render();
}

function sharePosition(on) {
  if (!on) {
    if (watchId !== null) navigator.geolocation.clearWatch(watchId);
    watchId = null;
    return;
  }
  if (!('geolocation' in navigator)) { document.getElementById('position-box').open = true; return; }
  let last = 0;
  watchId = navigator.geolocation.watchPosition(
    (p) => {
      if (Date.now() - last < 15000) return; // at most every 15 s
      last = Date.now();
      api('/api/staff/me/status', { method: 'POST', body: { position: { lat: p.coords.latitude, lon: p.coords.longitude } } }).then(load).catch(() => {});
    },
    () => { document.getElementById('position-box').open = true; },
    { enableHighAccuracy: true, maximumAge: 10000 },
  );
}

function manualPosition() {
  const lat = Number(document.getElementById('lat').value.replace(',', '.'));
  const lon = Number(document.getElementById('lon').value.replace(',', '.'));
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) { say(t('Position: give latitude and longitude as numbers'), true); return null; }
  return { lat, lon };
}

async function main() {
  const failed = (e) => say(e.message, true);
  watchReadiness();
  me = await untilAnswered(whoami, failed);
  if (me.user.role !== 'staff') { location.href = '/dashboard'; return; }
  document.getElementById('who').textContent = me.user.staff_id;
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('duty-toggle').addEventListener('click', async () => {
    unlockAudio(); // sound needs a gesture on the page first: this one
    const on = !state.on_duty;
    const manual = document.getElementById('lat').value ? manualPosition() : null;
    const body = on ? { state: 'on_duty', ...(manual ? { position: manual } : {}) } : { state: 'off_duty' };
    await send('/api/staff/me/status', body, on ? t('On duty') : t('Off duty'));
    sharePosition(on && !manual);
  });
  document.getElementById('position-send').addEventListener('click', () => {
    const p = manualPosition();
    if (p) { sharePosition(false); send('/api/staff/me/status', { position: p }, t('Position')); }
  });
  await untilAnswered(load, failed);
  say('');
  // The buttons were disabled in the page until their handlers and the session's state
  // (on duty or not, the CSRF token) were here: a tap before that would do nothing.
  for (const id of ['logout', 'duty-toggle', 'position-send']) document.getElementById(id).disabled = false;
  if (state.on_duty) sharePosition(true);
  const reload = throttle(load, 100);
  const liveState = document.getElementById('live-state');
  const es = live('/api/staff/me/stream', {
    open: () => { liveState.className = 'live-state on'; reload(); },
    offer: () => reload(),
    lagged: () => reload(),
  });
  es.onerror = () => { liveState.className = 'live-state off'; };
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/app-sw.js', { scope: '/app' }).catch(() => {});
}

main().catch((e) => say(e.message, true));
