// Shared by the dashboard, the staff app and the login page: the API client.
// The session is an HttpOnly cookie; state-changing requests carry the CSRF token
// from GET /api/me in the X-CSRF-Token header (docs/api.md).

import { t, N_, errorText } from './i18n.js';

let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(errorText(body && body.error, body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not vakt's JSON: a proxy's error page, or a network's login page (hotel wifi) that
    // answers every address. Said as such, and a failure to try again, never taken as data.
    throw new ApiError(r.ok ? 502 : r.status, { message: t('not an answer from vakt (HTTP {status})', { status: r.status }) });
  }
  if (!r.ok) {
    if (r.status === 401 && !path.startsWith('/api/login')) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname);
    }
    throw new ApiError(r.status, data);
  }
  return data;
}

// Calls `call` again every 3 s until the server answers, showing each failure with
// `show`: a page opened while vakt's store is briefly unavailable (503) comes up when
// the store is back, rather than staying dead with its buttons off. Not after a 401:
// api() is on its way to the login page then.
export async function untilAnswered(call, show) {
  for (;;) {
    try {
      return await call();
    } catch (e) {
      if (e.status === 401) throw e;
      show(e);
      await new Promise((ok) => setTimeout(ok, 3000));
    }
  }
}

// vakt's own readiness (/readyz, as its supervisor sees it), asked every 5 s and shown
// in the page's banner (`#engine-down`) while vakt does not take alarms, with why, in
// the page's language: operators and staff must know when an alarm cannot reach anyone
// through vakt. The keys are /readyz's reason codes (src/live/http.rs, NotReady).
const NOT_READY = {
  engine_stopped: N_('the vakt engine has stopped'),
  not_storing: N_('vakt is starting, or its database does not answer'),
  no_broker: N_('vakt has no connection to the alarm broker'),
};

export function watchReadiness() {
  const ask = async () => {
    let why = null;
    try {
      const r = await fetch('/readyz', { cache: 'no-store' });
      if (!r.ok) {
        // A proxy's own error page is not vakt's answer: said as such.
        const body = await r.json().catch(() => ({ message: t('not an answer from vakt (HTTP {status})', { status: r.status }) }));
        why = NOT_READY[body.reason] ? t(NOT_READY[body.reason]) : body.message || body.reason;
      }
    } catch {
      why = t('this page cannot reach vakt');
    }
    showReadiness(why);
  };
  ask();
  setInterval(ask, 5000);
}

// The banner, with a chime when it appears.
function showReadiness(why) {
  const b = document.getElementById('engine-down');
  if (why && b.hidden) alertSound();
  b.hidden = !why;
  b.textContent = why ? t('Alarms are not being handled: {why}. Alarms sent meanwhile are kept and come through when vakt is back; until then, follow the backup routine.', { why }) : '';
}

// Who is signed in; sends to the login page if nobody is.
export async function whoami() {
  const me = await api('/api/me');
  csrf = me.csrf_token;
  return me;
}

export async function logout() {
  try { await api('/api/logout', { method: 'POST' }); } finally { location.href = '/login'; }
}

// A server-sent event stream that reconnects; `onopen` runs on every (re)connect, so
// the page reloads its state after a gap.
export function live(path, handlers) {
  const es = new EventSource(path);
  es.onopen = () => handlers.open && handlers.open();
  for (const [name, fn] of Object.entries(handlers)) {
    if (name !== 'open') es.addEventListener(name, (e) => fn(e.data ? safeJson(e.data) : null));
  }
  return es;
}

function safeJson(s) {
  try { return JSON.parse(s); } catch { return s; }
}

// Runs fn (async) at once, and not again until it has finished and `ms` have passed;
// calls meanwhile make it run once more then. Never two at once (an older answer cannot
// overwrite a newer one), and never starved: a plain debounce, restarted by every call,
// would not run while events keep coming faster than `ms`, and a busy dashboard froze.
export function throttle(fn, ms) {
  let busy = false;
  let again = false;
  const run = async () => {
    busy = true;
    again = false;
    try {
      await fn();
    } catch (e) {
      console.warn(e);
    }
    setTimeout(() => { busy = false; if (again) run(); }, ms);
  };
  return () => { if (busy) again = true; else run(); };
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// An alert a person notices: a three-tone chime (and a vibration where the device has
// one). Browsers play sound only after a gesture on the page: `unlock` from one.
// `document.body.dataset.alerts` counts the alerts given, heard or not.
let audio = null;

export function unlockAudio() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state === 'suspended') audio.resume();
}

export function alertSound() {
  document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
  if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
  if (!audio) return;
  const t = audio.currentTime;
  for (const [i, f] of [880, 660, 880].entries()) {
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = f;
    g.gain.setValueAtTime(0.25, t + i * 0.25);
    g.gain.exponentialRampToValueAtTime(0.001, t + i * 0.25 + 0.22);
    o.connect(g).connect(audio.destination);
    o.start(t + i * 0.25);
    o.stop(t + i * 0.25 + 0.23);
  }
}

export function mmss(secs) {
  const s = Math.max(0, Math.floor(secs));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString('nb-NO', { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '';
}

export const KIND_NAMES = {
  safety: N_('Safety alarm'), fall: N_('Fall'), man_down: N_('Man down'), door: N_('Door'), wandering: N_('Wandering (GPS)'),
  bed: N_('Bed sensor'), smoke: N_('Smoke'), medication: N_('Medication'), assistance: N_('Assistance'),
  battery_low: N_('Battery low'), power_failure: N_('Power failure'), heartbeat_missed: N_('Heartbeat missed'),
  connection_lost: N_('Connection lost'),
};
export const kindName = (k) => (KIND_NAMES[k] ? t(KIND_NAMES[k]) : k);

// Names for the contract's codes (docs/mqtt.md): a code with no name shows as it is,
// its underscores as spaces.
const CODE_NAMES = {
  // response models
  shared_centre: N_('shared response centre'), mobile_guard_room: N_('mobile guard room'),
  private_centre: N_('private response centre'), own_centre: N_('own response centre'),
  // priorities
  low: N_('low'), normal: N_('normal'), high: N_('high'), critical: N_('critical'),
  // staff stages
  accepted: N_('accepted'), en_route: N_('en route'), on_site: N_('on site'),
  // outcomes
  helped: N_('helped'), false_alarm: N_('false alarm'), referred_to_health_service: N_('referred to health service'),
  technical_fixed: N_('technical, fixed'), resolved_by_centre: N_('resolved by the centre'), cancelled: N_('cancelled'),
  // revoke reasons
  declined: N_('declined'), expired: N_('expired'), taken_by_other: N_('taken by another'),
  answered_by_operator: N_('answered by an operator'), staff_off_duty: N_('staff went off duty'),
  // actions in the audit trail
  note: N_('note'), accept: N_('accept'), decline: N_('decline'), close: N_('close'), answer: N_('answer'),
  resolve: N_('resolve'), forward_to_home_care: N_('forward to home care'), escalate: N_('escalate'), assign: N_('assign'),
  set_aside: N_('set aside'),
  // roles, and the other actors of an event's `by`
  operator: N_('operator'), staff: N_('staff'), planner: N_('planner'), admin: N_('admin'),
  resident: N_('resident'), alarm: N_('alarm'), centre: N_('centre'), system: N_('vakt itself'),
};
export const codeName = (c) => (c && CODE_NAMES[c] ? t(CODE_NAMES[c]) : String(c || '').replaceAll('_', ' '));
