// The operators' dashboard: the live queue, incident detail with its timeline and the
// operator's actions, the map, and the KPIs. Everything comes from the JSON API; live
// updates are the incident events (GET /api/stream), after which the page reloads the
// part that changed. Alarms vakt refused are listed in red under the queue: no one was
// offered them, so an operator must find the person.
import { api, whoami, logout, live, throttle, el, mmss, clock, kindName, codeName, unlockAudio, alertSound, untilAnswered, watchReadiness } from '/assets/common.js';
import { PlainMap } from '/assets/map.js';
import { t, N_, decimal, translatePage } from '/assets/i18n.js';

translatePage();

let me = null;
let incidents = new Map();
let selected = null;
let staff = [];
// The residents' markers, from the last full map load (they change rarely).
let residentPoints = [];
let residentsLoadedAt = 0;
let map = null;
// incident id → the note being typed in its panel, kept across the panel's re-renders
// (every event of the selected incident redraws it).
const noteDrafts = new Map();
const target = () => (me ? me.target_secs : 60);
const canAct = () => me && (me.user.role === 'operator' || me.user.role === 'admin');

const STAGES = {
  awaiting_answer: N_('Waiting for an answer'), with_operator: N_('Operator on the line'), awaiting_staff: N_('Waiting for home care'),
  accepted: N_('Staff accepted'), en_route: N_('Staff on the way'), on_site: N_('Staff on site'), closed: N_('Closed'),
};
const stageName = (s) => (STAGES[s] ? t(STAGES[s]) : s);

function stateOf(i) {
  if (!i.open) return 'done';
  return i.answered_at ? 'progress' : 'unanswered';
}

function ageSecs(i) {
  const start = Date.parse(i.received_at);
  const end = i.answered_at ? Date.parse(i.answered_at) : Date.now();
  return (end - start) / 1000;
}

// The share of the target used, as a bar's width.
const barWidth = (age) => `${Math.min(100, (age / target()) * 100)}%`;

// Set through the CSSOM: the pages allow no inline styles.
function bar(age) {
  const b = el('span');
  b.style.width = barWidth(age);
  return b;
}

// Attention: the tab's title counts the unanswered incidents, and a chime sounds for
// each new one, each newly refused alarm and each gateway gone offline (sound from the
// first click or key on the page; browsers allow none before).
const TITLE = document.title;
const heard = new Set(); // the unanswered incidents, refused alarms and gateways offline already alerted for
let primed = false; // what the page found when it opened is not news
function attend() {
  const now = [...unansweredNow.map((id) => `i${id}`), ...refusedNow.map((k) => `r${k}`), ...offlineNow.map((k) => `g${k}`), ...silentNow.map((k) => `d${k}`)];
  document.title = unansweredNow.length ? `(${unansweredNow.length}) ${TITLE}` : TITLE;
  if (primed && now.some((k) => !heard.has(k))) alertSound();
  for (const k of now) heard.add(k);
}
let unansweredNow = [];
let refusedNow = [];
let offlineNow = [];
for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, unlockAudio, { once: true });

function renderQueue() {
  const list = document.getElementById('queue');
  const order = { unanswered: 0, progress: 1, done: 2 };
  const items = [...incidents.values()].sort((a, b) => order[stateOf(a)] - order[stateOf(b)] || Date.parse(a.received_at) - Date.parse(b.received_at));
  list.replaceChildren(
    ...items.map((i) => {
      const s = stateOf(i);
      const age = ageSecs(i);
      return el(
        'li',
        { class: `incident state-${s}${overdueClasses(s, age)}${selected === i.incident_id ? ' selected' : ''}`, 'data-id': i.incident_id, 'data-state': s, tabindex: 0, onclick: () => select(i.incident_id), onkeydown: (e) => e.key === 'Enter' && select(i.incident_id) },
        el('div', { class: 'incident-head' }, el('strong', {}, `#${i.incident_id} ${kindName(i.kind)}`), el('span', { class: 'age', 'data-received': i.received_at }, s === 'unanswered' ? mmss(age) : t('answered in {time}', { time: mmss(age) }))),
        el('div', { class: 'small' }, [i.municipality, i.address || i.resident_id].filter(Boolean).join(' · ')),
        el('div', { class: 'small muted' }, stageName(i.stage), i.priority && i.priority !== 'normal' ? ` · ${codeName(i.priority)}` : ''),
        stageMarks(i),
        i.set_aside ? el('div', { class: 'small set-aside' }, t('Set aside: handle it by hand')) : null,
        el('div', { class: 'overdue-badge' }, t('Past the target: nobody has answered it')),
        el('div', { class: 'target-bar' }, bar(age)),
      );
    }),
  );
  document.getElementById('queue-empty').hidden = items.length > 0;
  unansweredNow = items.filter((i) => stateOf(i) === 'unanswered').map((i) => i.incident_id);
  countOverdue();
  attend();
}

// Where an open incident has got to beyond its stage: at the backup, offered to all,
// operations alerted.
function stageMarks(i) {
  const marks = [i.at_backup && t('at the backup centre'), i.broadcast && t('offered to everyone on duty'), i.alerted && t('alert raised')].filter(Boolean);
  return marks.length ? el('div', { class: 'small stage-marks' }, marks.join(' · ')) : null;
}

// An unanswered incident past the target is unmistakable, and more so past twice it.
function overdueClasses(state, age) {
  if (state !== 'unanswered' || age <= target()) return '';
  return age > 2 * target() ? ' over-target over-target-long' : ' over-target';
}

// The header counts the incidents past the target now.
function countOverdue() {
  const n = document.querySelectorAll('#queue .incident.over-target').length;
  const node = document.getElementById('kpi-overdue');
  node.textContent = String(n);
  node.classList.toggle('bad', n > 0);
}

// The age of unanswered incidents counts every second against the target.
setInterval(() => {
  for (const li of document.querySelectorAll('#queue .incident.state-unanswered')) {
    const i = incidents.get(Number(li.dataset.id));
    if (!i) continue;
    const age = ageSecs(i);
    li.querySelector('.age').textContent = mmss(age);
    li.querySelector('.target-bar span').style.width = barWidth(age);
    // Passing the target is a missed alarm from that moment: the figures say so at once.
    if (age > target() && !li.classList.contains('over-target')) reloadKpisSoon();
    li.classList.toggle('over-target', age > target());
    li.classList.toggle('over-target-long', age > 2 * target());
  }
  if (me) countOverdue();
}, 1000);

// The KPIs' throttled reload, once the page is running (main).
let reloadKpisSoon = () => {};

// Why an alarm was refused, by the code on vakt/v1/rejects (docs/mqtt.md).
const REFUSALS = {
  unknown_resident: N_('Unknown resident'),
  unknown_municipality: N_('Unknown municipality'),
  wrong_municipality: N_('Resident of another municipality'),
  absurd_timestamp: N_('Impossible time'),
  unknown_kind: N_('Unknown kind of alarm'),
  invalid_field: N_('Invalid field'),
  malformed_json: N_('Unreadable message'),
  not_utf8: N_('Unreadable message'),
  unreadable: N_('Unreadable message'),
  payload_too_large: N_('Message too large'),
  bad_topic: N_('Wrong topic'),
  // alarm devices (docs/devices.md)
  unknown_device: N_('Unknown device'),
  wrong_key: N_('Wrong encryption key'),
  bad_frame: N_('Unreadable message'),
  stale_timestamp: N_('Device clock wrong'),
  unsupported: N_('Event vakt does not handle'),
  flooding: N_('Too many messages or connections'),
};

const PROTOCOLS = { dc09: 'SIA DC-09', scaip: 'SCAIP' };

// A municipality by its name, as the user's scope gives it (an id vakt does not know
// stays as it came).
const municipalityName = (id) => (me.municipalities.find((m) => m.id === id) || { name: id }).name;

// Where a refused message came from: the municipality of an alarm's topic, or of a
// base unit's status topic with the unit's id; a staff member's app (a message too
// large) by the staff id and its municipality; any other topic as it was.
function origin(x) {
  const p = x.topic.split('/');
  if (p.length === 4 && p[2] === 'alarms') return municipalityName(p[3]);
  if (p.length === 5 && p[2] === 'gateways') return `${municipalityName(p[3])} · ${p[4]}`;
  if (p.length === 5 && p[2] === 'staff') return [x.municipality && municipalityName(x.municipality), t('staff member {id}', { id: p[3] })].filter(Boolean).join(' · ');
  if (p[0] === 'devices' && p.length >= 3) {
    const who = p.slice(2).join('/');
    return [x.municipality && municipalityName(x.municipality), `${PROTOCOLS[p[1]] || p[1]} ${who}`].filter(Boolean).join(' · ');
  }
  return x.topic;
}

// Operators and admins act; planners only look.
const mayAct = () => me && (me.user.role === 'operator' || me.user.role === 'admin');

// A refused alarm or an offline gateway seen to leaves its list (audited); one
// acknowledged meanwhile by someone else is simply gone.
async function seenTo(button, path, body, reload) {
  button.disabled = true;
  try {
    await api(path, { method: 'POST', body });
  } catch (e) {
    if (e.status !== 404) {
      button.disabled = false;
      button.textContent = e.message;
      return;
    }
  }
  await reload();
}

async function loadRefused() {
  const r = await api('/api/refused');
  document.getElementById('refused').replaceChildren(
    ...r.refused.map((x) =>
      el(
        'li',
        { class: 'refused-alarm' },
        el('div', { class: 'incident-head' }, el('strong', {}, REFUSALS[x.reason] ? t(REFUSALS[x.reason]) : x.reason), el('span', { class: 'small' }, clock(x.at))),
        el('div', { class: 'small' }, [origin(x), x.resident_id && t('resident {id}', { id: x.resident_id }), x.alarm_id && t('alarm {id}', { id: x.alarm_id })].filter(Boolean).join(' · ')),
        el('div', { class: 'small muted' }, x.detail),
        mayAct() ? el('button', { class: 'small seen-to', type: 'button', onclick: (ev) => seenTo(ev.currentTarget, '/api/refused/acknowledge', { at: x.at, topic: x.topic }, loadRefused) }, t('Seen to: take it off the list')) : null,
      ),
    ),
  );
  document.getElementById('refused-panel').hidden = r.refused.length === 0;
  refusedNow = r.refused.map((x) => `${x.at} ${x.topic} ${x.alarm_id || ''}`);
  attend();
}

async function loadIncidents() {
  const r = await api('/api/incidents');
  incidents = new Map(r.incidents.map((i) => [i.incident_id, i]));
  renderQueue();
}

async function select(id) {
  selected = id;
  renderQueue();
  await loadDetail();
}

// A staff member's name from the directory (the map's staff list), or the id.
function nameOf(id) {
  const s = staff.find((x) => x.staff_id === id);
  return s && s.name ? s.name : id;
}

// An event's `by` ("operator o-1", "staff s-7"): a staff member by name.
function actorName(by) {
  const [kind, ...rest] = String(by).split(' ');
  if (!rest.length) return by;
  return kind === 'staff' ? nameOf(rest.join(' ')) : `${codeName(kind)} ${rest.join(' ')}`;
}

// An audit line's detail as stored: for a close, the outcome's code (and the note after
// ": "), shown by the outcome's name; otherwise as written.
function auditDetail(a) {
  if (a.action === 'close') {
    const at = a.detail.indexOf(': ');
    return at < 0 ? codeName(a.detail) : `${codeName(a.detail.slice(0, at))}: ${a.detail.slice(at + 2)}`;
  }
  return a.detail;
}

function describe(e) {
  const who = e.staff_id ? ` ${nameOf(e.staff_id)}` : e.operator_id ? ` ${e.operator_id}` : '';
  switch (e.type) {
    case 'raised': return t('Alarm {alarm} ({kind}, {priority}) from {resident}, model {model}', { alarm: e.alarm_id, kind: kindName(e.kind), priority: codeName(e.priority), resident: e.resident_id, model: codeName(e.model) });
    case 'queued': return t('Queued at {centre}', { centre: e.centre_id });
    case 'dequeued': return t('Left the queue at {centre}', { centre: e.centre_id });
    case 'offered': return e.broadcast ? t('Offered to{who} (everyone on duty), ETA {eta}', { who, eta: mmss(e.eta_secs) }) : t('Offered to{who}, ETA {eta}', { who, eta: mmss(e.eta_secs) });
    case 'revoked': return t('Offer to{who} withdrawn: {reason}', { who, reason: codeName(e.reason) });
    case 'broadcast': return t('Offered to everyone on duty');
    case 'forwarded_to_backup': return t('Forwarded to the backup {backup}', { backup: e.backup_centre || e.backup_team });
    case 'alert': return t('Alert: nobody has it after {time}', { time: mmss(e.waiting_secs) });
    case 'assigned_by_operator': return t('Assigned by {operator} to {staff}', { operator: e.operator_id, staff: nameOf(e.staff_id) });
    case 'escalated_by_operator': return t('Escalated by {operator}', { operator: e.operator_id });
    case 'set_aside': return t('Set aside by vakt (a fault in vakt met it): no more offers, escalations or alerts from vakt; handle it by hand');
    case 'note_added': return t('Note by {by}: {note}', { by: actorName(e.by), note: e.note });
    case 'answered': return t('Answered by {by} in {time}', { by: e.by.staff_id ? nameOf(e.by.staff_id) : e.by.operator_id, time: mmss(e.answer_secs) });
    case 'resolved_by_centre': return t('Resolved on the phone by {operator}', { operator: e.operator_id });
    case 'forwarded_to_home_care': return t('Forwarded to home care by {operator}', { operator: e.operator_id });
    case 'accepted': return t('Accepted by{who}', { who });
    case 'en_route': return t('{staff} is on the way', { staff: nameOf(e.staff_id) });
    case 'on_site': return t('{staff} on site, {time} after the alarm', { staff: nameOf(e.staff_id), time: mmss(e.since_raised_secs) });
    case 'closed': return e.note ? t('Closed: {outcome} ({note})', { outcome: codeName(e.outcome), note: e.note }) : t('Closed: {outcome}', { outcome: codeName(e.outcome) });
    case 'attached': return t('Another alarm joined: {alarm}', { alarm: e.alarm_id });
    case 'rejected': return t('Refused: {detail}', { detail: e.detail });
    default: return e.type;
  }
}

async function loadDetail() {
  const box = document.getElementById('detail');
  if (selected === null) return;
  let r;
  try {
    r = await api(`/api/incidents/${selected}`);
  } catch (err) {
    box.replaceChildren(el('p', { class: 'error' }, err.message));
    return;
  }
  const i = r.incident;
  const timeline = [
    ...r.events.map((e) => ({ at: e.at, text: describe(e), cls: `ev-${e.type}` })),
    ...r.audit.map((a) => ({ at: a.at, text: `${a.username} (${codeName(a.role)}): ${codeName(a.action)}${a.detail ? ` "${auditDetail(a)}"` : ''}${a.outcome === 'ok' ? '' : ` — ${t('refused: {reason}', { reason: codeName(a.outcome) })}`}`, cls: 'ev-audit' })),
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const status = el('p', { class: 'action-status', role: 'status' });
  const actions = i.open && canAct() ? actionPanel(i, status) : null;
  // The note being typed keeps its focus and caret through the redraw.
  const typing = document.activeElement?.id === 'note-text' ? document.activeElement : null;
  box.replaceChildren(...[
    el('h2', {}, `#${i.incident_id} ${kindName(i.kind)}`, el('span', { class: `badge state-${stateOf(i)}` }, stageName(i.stage))),
    el('dl', { class: 'facts' },
      el('dt', {}, t('Resident')), el('dd', {}, `${i.resident_id}${i.address ? ', ' + i.address : ''}`),
      i.notes ? [el('dt', {}, t('Notes')), el('dd', {}, i.notes)] : null,
      i.text ? [el('dt', {}, t('Alarm text')), el('dd', {}, i.text)] : null,
      el('dt', {}, t('Municipality')), el('dd', {}, `${i.municipality} (${codeName(i.model)})`),
      el('dt', {}, t('Received')), el('dd', {}, clock(i.received_at)),
      i.set_aside ? [el('dt', {}, t('Set aside')), el('dd', { class: 'set-aside' }, t('vakt no longer offers, escalates or alerts on it: handle it by hand'))] : null,
      i.answered_at ? [el('dt', {}, t('Answered')), el('dd', {}, `${clock(i.answered_at)} (${mmss(ageSecs(i))})`)] : null,
      i.live_offers && i.live_offers.length ? [el('dt', {}, t('Offered to')), el('dd', {}, i.live_offers.map(nameOf).join(', '))] : null,
      i.assigned ? [el('dt', {}, t('Staff')), el('dd', {}, nameOf(i.assigned))] : null,
    ),
    actions,
    status,
    el('h3', {}, t('Timeline')),
    el('ol', { class: 'timeline', id: 'timeline' }, ...timeline.map((t) => el('li', { class: t.cls }, el('time', {}, clock(t.at)), ' ', t.text))),
  ].filter(Boolean));
  const note = document.getElementById('note-text');
  if (typing && note) {
    note.focus();
    note.setSelectionRange(typing.selectionStart, typing.selectionEnd);
  }
}

function actionPanel(i, status) {
  const act = async (body, label) => {
    status.textContent = `${label}…`;
    status.className = 'action-status';
    try {
      await api(`/api/incidents/${i.incident_id}/actions`, { method: 'POST', body });
      if (body.note) noteDrafts.delete(i.incident_id);
      status.textContent = t('{label}: done', { label });
    } catch (err) {
      status.textContent = t('{label}: {error}', { label, error: err.message });
      status.className = 'action-status error';
    }
    await Promise.all([loadIncidents(), loadDetail()]);
  };
  const note = el('textarea', { id: 'note-text', rows: 2, maxlength: 2000, placeholder: t('Note (for the record, or with Resolve)') });
  note.value = noteDrafts.get(i.incident_id) || '';
  note.addEventListener('input', () => noteDrafts.set(i.incident_id, note.value));
  // Its own municipality's staff and its backup team's: no one else may be sent there.
  const teams = [i.municipality, (me.municipalities.find((m) => m.id === i.municipality) || {}).backup_team];
  const pick = el('select', { id: 'assign-staff' }, ...staff.filter((s) => s.on_duty && teams.includes(s.municipality)).map((s) => el('option', { value: s.staff_id }, s.busy ? t('{name} (busy)', { name: s.name || s.staff_id }) : s.name || s.staff_id)));
  const b = (id, label, fn, cls, enabled = true) => el('button', { type: 'button', id, class: cls, onclick: fn, disabled: !enabled, title: enabled ? null : t('Not in this state') }, label);
  // What the engine would take in this state (it has the last word: a refusal shows its reason).
  const queued = Boolean(i.queued_at) && i.stage === 'awaiting_answer';
  const withOperator = i.stage === 'with_operator';
  const ladder = i.stage === 'awaiting_staff' || (i.stage === 'awaiting_answer' && (!i.queued_at || i.live_offers.length > 0));
  return el('div', { class: 'actions' },
    el('div', { class: 'button-row' },
      b('act-answer', t('Answer'), () => act({ action: 'answer' }, t('Answer')), 'primary', queued),
      b('act-resolve', t('Resolve'), () => act({ action: 'resolve', note: note.value || null }, t('Resolve')), '', withOperator),
      b('act-forward', t('Forward to home care'), () => act({ action: 'forward_to_home_care' }, t('Forward')), '', withOperator),
      b('act-escalate', t('Escalate to all'), () => act({ action: 'escalate' }, t('Escalate')), 'warn', ladder),
    ),
    el('div', { class: 'button-row' }, pick, b('act-assign', t('Assign'), () => pick.value && act({ action: 'assign', staff_id: pick.value }, t('Assign')), '', ladder)),
    el('div', { class: 'button-row' }, note, b('act-note', t('Add note'), () => note.value.trim() && act({ action: 'note', note: note.value }, t('Note')))),
  );
}

// Staff and incidents at every load; the residents (the bulk of a large directory)
// only every five minutes.
async function loadMap() {
  const full = Date.now() - residentsLoadedAt > 300000;
  const r = await api(full ? '/api/map' : '/api/map?residents=false');
  if (r.residents) {
    residentPoints = r.residents.map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: 'resident', title: `${x.resident_id} ${x.address}` }));
    residentsLoadedAt = Date.now();
  }
  staff = r.staff;
  const points = [
    ...residentPoints,
    ...r.staff.filter((x) => x.position).map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: `staff${x.on_duty ? '' : ' off'}${x.busy ? ' busy' : ''}`, title: `${x.name || x.staff_id}${x.on_duty ? t(' (on duty)') : t(' (off duty)')}` })),
    ...r.incidents.filter((x) => x.position).map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: `incident state-${stateOf(x)}`, id: x.incident_id, label: String(x.incident_id), title: `#${x.incident_id} ${kindName(x.kind)}`, onclick: () => select(x.incident_id) })),
  ];
  map.setPoints(points);
}

function pct(row) {
  return row.share === null ? '–' : `${decimal(row.share * 100, 1)} %`;
}

async function loadKpis() {
  const r = await api('/api/kpis');
  // An alarm still unanswered past the target is missed already (docs/kpi.md).
  const total = (p) => {
    const rows = p.municipalities;
    const sum = (f) => rows.reduce((s, x) => s + f(x), 0);
    const n = sum((x) => x.answered), w = sum((x) => x.within_target), late = sum((x) => x.overdue);
    return { share: n + late ? w / (n + late) : null, n, late };
  };
  for (const p of r.periods) {
    const tot = total(p);
    const node = document.getElementById(`kpi-${p.period}`);
    node.textContent = pct(tot);
    node.title = t('{n} answered since {time}, {late} waiting past the target', { n: tot.n, time: clock(p.since), late: tot.late });
    node.classList.toggle('bad', tot.share !== null && tot.share < 0.95);
  }
  document.getElementById('kpi-open').textContent = r.open_incidents;
  document.getElementById('kpi-staff').textContent = r.staff_on_duty;
  const [today, week, month] = r.periods;
  const rows = [
    ...today.municipalities.map((m, k) => [municipalityName(m.municipality), m.model, m, week.municipalities[k], month.municipalities[k]]),
    ...today.models.map((m, k) => [t('all ({model})', { model: codeName(m.model) }), m.model, m, week.models[k], month.models[k]]),
  ];
  document.querySelector('#kpi-table tbody').replaceChildren(
    ...rows.map(([name, model, a, b, c]) => el('tr', {}, el('td', {}, name), el('td', {}, codeName(model)), ...[a, b, c].map((x) => el('td', { title: t('{within} of {answered}', { within: x.within_target, answered: x.answered }) }, pct(x))))),
  );
}

// Gateways offline (their last will, or their own word): alarms through them cannot
// reach vakt. Not on the live stream: read at start and every 10 s.
async function loadGateways() {
  const r = await api('/api/gateways');
  const offline = r.gateways.filter((g) => g.state === 'offline' && !g.acknowledged);
  document.getElementById('gateways').replaceChildren(
    ...offline.map((g) =>
      el(
        'li',
        { class: 'refused-alarm gateway-offline' },
        el('div', { class: 'incident-head' }, el('strong', {}, g.gateway_id), el('span', { class: 'small' }, t('offline since {time}', { time: clock(g.since) }))),
        el('div', { class: 'small' }, g.resident_id ? `${municipalityName(g.municipality)} · ${t('resident {id}', { id: g.resident_id })}` : municipalityName(g.municipality)),
        mayAct() ? el('button', { class: 'small seen-to', type: 'button', onclick: (ev) => seenTo(ev.currentTarget, '/api/gateways/acknowledge', { municipality: g.municipality, gateway_id: g.gateway_id }, loadGateways) }, t('Seen to: take it off the list')) : null,
      ),
    ),
  );
  document.getElementById('gateways-panel').hidden = offline.length === 0;
  offlineNow = offline.map((g) => `${g.municipality}/${g.gateway_id} ${g.since}`);
  attend();
}

// Alarm devices (the register, with each one's last contact): the silent ones as an
// alert, all of them in a table. Read at start and every 10 s.
let silentNow = [];
async function loadDevices() {
  const r = await api('/api/devices');
  const silent = r.devices.filter((d) => d.silent_since);
  document.getElementById('silent').replaceChildren(
    ...silent.map((d) =>
      el(
        'li',
        { class: 'refused-alarm gateway-offline' },
        el('div', { class: 'incident-head' }, el('strong', {}, d.device_id), el('span', { class: 'small' }, t('not heard since {time}', { time: clock(d.silent_since) }))),
        el('div', { class: 'small' }, [d.municipality && municipalityName(d.municipality), t('resident {id}', { id: d.resident_id }), PROTOCOLS[d.protocol]].filter(Boolean).join(' · ')),
      ),
    ),
  );
  document.getElementById('silent-panel').hidden = silent.length === 0;
  document.getElementById('devices-panel').hidden = r.devices.length === 0;
  document.getElementById('devices-count').textContent = t('{n} registered, {silent} silent', { n: r.devices.length, silent: silent.length });
  document.querySelector('#devices tbody').replaceChildren(
    ...r.devices.map((d) =>
      el(
        'tr',
        { class: d.silent_since ? 'bad' : '' },
        el('td', {}, d.device_id),
        el('td', {}, PROTOCOLS[d.protocol] || d.protocol),
        el('td', {}, d.resident_id),
        el('td', {}, d.last_heard ? clock(d.last_heard) : t('never')),
      ),
    ),
  );
  silentNow = silent.map((d) => `${d.device_id} ${d.silent_since}`);
  attend();
}

async function main() {
  const detail = document.getElementById('detail');
  const waiting = [...detail.childNodes];
  const failed = (e) => detail.replaceChildren(el('p', { class: 'error' }, e.message));
  watchReadiness();
  me = await untilAnswered(whoami, failed);
  if (me.user.role === 'staff') { location.href = '/app'; return; }
  document.getElementById('who').textContent = `${me.user.username} (${codeName(me.user.role)}${me.user.centre ? ', ' + me.user.centre : ''})`;
  document.getElementById('scope').textContent = me.municipalities.map((m) => m.name).join(', ');
  const out = document.getElementById('logout');
  out.addEventListener('click', logout);
  out.disabled = false; // disabled in the page until the session's CSRF token is here
  map = new PlainMap(document.getElementById('map'), { tiles: me.tiles, attribution: me.tiles_attribution });
  await untilAnswered(() => Promise.all([loadIncidents(), loadMap(), loadKpis(), loadRefused(), loadGateways(), loadDevices()]), failed);
  if (selected === null) detail.replaceChildren(...waiting);
  primed = true;
  const reload = throttle(() => Promise.all([loadIncidents(), selected !== null ? loadDetail() : null]), 150);
  const reloadMap = throttle(loadMap, 1000);
  const reloadKpis = throttle(loadKpis, 1000);
  reloadKpisSoon = reloadKpis;
  const reloadRefused = throttle(loadRefused, 500);
  const state = document.getElementById('live-state');
  const es = live('/api/stream', {
    open: () => { state.className = 'live-state on'; reload(); },
    incident: (e) => {
      reload();
      reloadMap();
      if (e && (e.type === 'answered' || e.type === 'raised' || e.type === 'closed')) reloadKpis();
    },
    refused: reloadRefused,
    lagged: () => { reload(); reloadMap(); reloadRefused(); },
  });
  es.onerror = () => { state.className = 'live-state off'; };
  setInterval(loadMap, 10000);
  setInterval(loadKpis, 30000);
  setInterval(loadGateways, 10000);
  setInterval(loadDevices, 10000);
  setInterval(loadRefused, 30000); // what others acknowledged leaves this list too
}

main().catch((e) => { document.getElementById('detail').replaceChildren(el('p', { class: 'error' }, e.message)); });
