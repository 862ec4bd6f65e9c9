// The real-browser test (run by tests/it/browser.rs, which starts vakt and sends the
// alarm over MQTT when this script prints READY):
//   an operator logs in and watches the dashboard; the staff app, in a second browser
//   context, logs in and goes on duty; the alarm arrives live on the dashboard (red),
//   and one for a resident vakt does not know is listed as refused (red, with its ids);
//   a gateway whose connection died is listed as offline;
//   the app gets the offer and accepts it (the dashboard turns yellow); the staff member
//   goes on the way, on site and closes it (green), then changes their password and logs
//   in with the new one. On the way the pages meet trouble: the dashboard's first read
//   gets a 503 and the app's a 503 and then a wifi's login page (both come up by
//   themselves), the app runs on a slow network (its buttons wait until they work), and
//   /readyz says vakt is not taking alarms (a red banner, gone when it is back).
//   Then both again in a Norwegian browser: the pages speak Bokmål
//   (refusals too), and the toggle turns a page to English. The configured map tiles cannot be
//   reached: the positions must show anyway. Screenshots go to $VAKT_ARTIFACTS.
// Debian's Chromium, driven by playwright-core: no downloaded browser.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.VAKT_URL;
const artifacts = process.env.VAKT_ARTIFACTS || 'artifacts';
const [opsUser, opsPass, staffUser, staffPass] = (process.env.VAKT_USERS || '').split(',');
if (!base || !staffPass) {
  console.error('VAKT_URL and VAKT_USERS=ops,pass,staff,pass are needed');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const step = (s) => console.log(`step: ${s}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
let failed = false;
try {
  const errors = [];
  const watch = (page, who) => {
    page.on('pageerror', (e) => errors.push(`${who}: ${e.stack || e.message}`));
    page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && errors.push(`${who} console: ${m.text()}`));
  };

  // The operator.
  // English browsers here; a Norwegian one at the end.
  const ops = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale: 'en-US' })).newPage();
  watch(ops, 'dashboard');
  // The store is unavailable for the dashboard's first read: the page says so and comes
  // up once it answers, without a reload.
  const unavailable = (r) => r.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'store_unavailable', message: 'the database cannot be reached just now' }) });
  let incidentsOnce = true;
  await ops.route('**/api/incidents', (r) => (incidentsOnce ? ((incidentsOnce = false), unavailable(r)) : r.continue()));
  await ops.goto(`${base}/dashboard`);
  await ops.waitForURL(/\/login/);
  await ops.fill('#username', opsUser);
  await ops.fill('#password', 'wrong password');
  await ops.click('#login-button');
  await ops.waitForSelector('#login-error:not([hidden])');
  step('wrong password refused on the login page');
  await ops.fill('#password', opsPass);
  await ops.click('#login-button');
  await ops.waitForURL(/\/dashboard$/);
  await ops.waitForSelector('#live-state.on');
  let navigations = 0;
  ops.on('framenavigated', (f) => { if (f === ops.mainFrame()) navigations++; });
  step('operator logged in, live stream open');
  // vakt not taking alarms (its /readyz says why): a red banner says so, with a chime,
  // and goes when vakt is ready again (the real /readyz).
  await ops.route('**/readyz', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ ready: false, reason: 'not_storing', message: 'recovering, or the store is not taking writes' }) }));
  await ops.waitForFunction(() => {
    const b = document.getElementById('engine-down');
    return !b.hidden && /^Alarms are not being handled: vakt is starting, or its database does not answer\./.test(b.textContent) && Number(document.body.dataset.alerts) >= 1;
  }, null, { timeout: 10000 });
  await shot(ops, 'dashboard-0-not-ready');
  await ops.unroute('**/readyz');
  await ops.waitForFunction(() => document.getElementById('engine-down').hidden, null, { timeout: 10000 });
  step('vakt not taking alarms: the dashboard says so, and clears it when vakt is back');

  // The staff member, on a phone-sized screen.
  const appCtx = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US',
    permissions: ['geolocation'], geolocation: { latitude: 61.2301, longitude: 7.1002 },
  });
  // A slow phone network: the page is shown before it knows who is logged in. Its
  // buttons must wait for that (a tap that did nothing is how a shift starts unseen).
  // And its first answer after the login is the store's being unavailable (the one
  // before is the 401 that sends the app to the login page): the app asks again.
  let meCalls = 0;
  await appCtx.route('**/api/me', async (r) => {
    if (++meCalls === 2) return unavailable(r);
    await new Promise((ok) => setTimeout(ok, 700));
    await r.continue();
  });
  // And the first read of its state gets a wifi's login page (HTML, 200): not taken for
  // vakt's answer, said as such, and asked again.
  let staffMeOnce = true;
  await appCtx.route('**/api/staff/me', (r) => (staffMeOnce ? ((staffMeOnce = false), r.fulfill({ status: 200, contentType: 'text/html', body: '<html><body>Log in to the wifi</body></html>' })) : r.continue()));
  const app = await appCtx.newPage();
  watch(app, 'app');
  await app.goto(`${base}/app`);
  await app.waitForURL(/\/login/);
  await app.fill('#username', staffUser);
  await app.fill('#password', staffPass);
  await app.click('#login-button');
  await app.waitForURL(/\/app$/);
  await app.waitForFunction(() => /^not an answer from vakt \(HTTP 200\)$/.test(document.getElementById('app-status').textContent), null, { timeout: 15000 });
  // On duty: the position comes from the phone's location.
  await app.click('#duty-toggle');
  await app.waitForFunction(() => document.getElementById('duty-state').textContent === 'On duty');
  await app.waitForFunction(() => document.getElementById('position-state').textContent === '61.2301, 7.1002');
  step('on duty, position from geolocation');
  // The manual fallback: typed in (here: a step along the road, then back).
  await app.click('#position-box summary');
  for (const [lat, lon] of [['61.2310', '7.1010'], ['61.2301', '7.1002']]) {
    await app.fill('#lat', lat);
    await app.fill('#lon', lon);
    await app.click('#position-send');
    await app.waitForFunction((want) => document.getElementById('position-state').textContent === want, `${lat}, ${lon}`);
  }
  step('position typed in by hand');
  await app.waitForSelector('#live-state.on');
  // Installable: the manifest is linked and the service worker controls the app.
  const scope = await app.evaluate(() => navigator.serviceWorker.ready.then((r) => r.scope));
  if (!scope.endsWith('/app')) throw new Error(`service worker scope ${scope}`);
  const manifest = await app.evaluate(() => fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json()));
  if (manifest.start_url !== '/app' || manifest.display !== 'standalone') throw new Error(`manifest ${JSON.stringify(manifest)}`);
  // Its icons, and the home-screen icon of an iPhone (a picture: it takes no SVG), load
  // as what they say they are, at their size.
  const touch = { src: await app.getAttribute('link[rel=apple-touch-icon]', 'href'), type: 'image/png', sizes: '180x180' };
  for (const icon of [...manifest.icons, touch]) {
    const [status, type, width, height] = await app.evaluate(async (i) => {
      const r = await fetch(i.src);
      const img = new Image();
      img.src = i.src;
      await img.decode();
      return [r.status, r.headers.get('content-type'), img.naturalWidth, img.naturalHeight];
    }, icon);
    const size = icon.sizes === 'any' ? null : icon.sizes.split('x').map(Number);
    if (status !== 200 || type !== icon.type || (size && (width !== size[0] || height !== size[1]))) throw new Error(`icon ${icon.src}: ${status} ${type} ${width}x${height}`);
  }
  if (!manifest.icons.some((i) => i.type === 'image/png')) throw new Error('the manifest has no picture icon');
  await shot(app, 'app-1-on-duty');
  step('staff on duty in the app');

  console.log('READY'); // the harness sends the alarm now
  const red = ops.locator('.incident[data-state="unanswered"]');
  await red.first().waitFor({ timeout: 20000 });
  const id = await red.first().getAttribute('data-id');
  await ops.waitForSelector(`.marker.incident[data-id="${id}"]`, { timeout: 15000 });
  // The configured tiles cannot be reached: they are left out, the markers stay.
  await ops.waitForFunction(() => document.querySelectorAll('.map-tiles img').length === 0 && document.querySelectorAll('.marker.resident').length > 0, null, { timeout: 15000 });
  if (!(await ops.textContent('.map-attribution')).includes("municipality's server")) throw new Error('tile attribution missing');
  await shot(ops, 'dashboard-1-alarm-red');
  step(`incident ${id} arrived on the dashboard, red, and on the map`);
  // The alarm for a resident vakt does not know is refused: no one is offered it, so it
  // is listed in red under the queue with the ids an operator can find the person by.
  await ops.waitForFunction(() => {
    const list = document.getElementById('refused');
    return !document.getElementById('refused-panel').hidden && /Unknown resident/.test(list.textContent) && /Fjord · resident nobody-7/.test(list.textContent) && /alarm browser-2/.test(list.textContent);
  }, null, { timeout: 15000 });
  step('the refused alarm is on the dashboard, with its municipality, resident and alarm ids');
  // A gateway whose connection died (its last will, sent by the harness): listed under
  // the queue, for its alarms cannot reach vakt.
  await ops.waitForFunction(() => {
    const list = document.getElementById('gateways');
    return !document.getElementById('gateways-panel').hidden && /gw-hall/.test(list.textContent) && /offline since \d\d:\d\d:\d\d/.test(list.textContent) && /Fjord · resident r2/.test(list.textContent);
  }, null, { timeout: 25000 }); // the page reads the gateways every 10 s
  // A chime for each: the incident, the refused alarm and the gateway gone offline.
  await ops.waitForFunction(() => Number(document.body.dataset.alerts) >= 3, null, { timeout: 5000 });
  step('the base unit offline is on the dashboard, with its municipality and resident, and the chime sounded for it');
  // The page calls for attention: the tab's title counts the unanswered incident, and
  // the chime sounded (for the new incident and the refused alarm; none for what the
  // page found when it opened).
  await ops.waitForFunction(() => document.title === '(1) vakt · dashboard' && Number(document.body.dataset.alerts) >= 1, null, { timeout: 5000 });
  step(`the tab's title counts the unanswered incident, and the chime sounded`);

  // The operator opens it and writes a note (a state-changing request from the page:
  // session cookie plus CSRF token).
  await ops.click(`#queue .incident[data-id="${id}"]`);
  await ops.fill('#note-text', 'Daughter informed by phone');
  // What is typed survives the panel's redraws (every event of the incident redraws it;
  // here a click on the incident again).
  await ops.evaluate(() => { window.noteBefore = document.getElementById('note-text'); });
  await ops.click(`#queue .incident[data-id="${id}"]`);
  await ops.waitForFunction(() => document.getElementById('note-text') !== window.noteBefore);
  if ((await ops.inputValue('#note-text')) !== 'Daughter informed by phone') throw new Error('a redraw of the incident panel lost the note being typed');
  await ops.click('#act-note');
  await ops.waitForFunction(() => /Note by operator ops: Daughter informed by phone/.test(document.getElementById('timeline')?.textContent || ''));
  step('operator added a note from the dashboard');

  const offer = app.locator(`.offer[data-id="${id}"]`);
  await offer.locator('[data-action="accept"]').waitFor({ timeout: 15000 });
  await shot(app, 'app-2-offer');
  await offer.locator('[data-action="accept"]').click();
  await offer.locator('[data-action="en_route"]:not([disabled])').waitFor();
  step('offer received and accepted in the app');

  await ops.locator(`.incident[data-id="${id}"][data-state="progress"]`).waitFor({ timeout: 15000 });
  await ops.waitForFunction(() => document.title === 'vakt · dashboard', null, { timeout: 5000 });
  await shot(ops, 'dashboard-2-accepted-yellow');
  step('dashboard turned yellow');

  await offer.locator('[data-action="en_route"]').click();
  await offer.locator('[data-action="on_site"]:not([disabled])').waitFor();
  await app.waitForFunction((i) => document.querySelector(`.offer[data-id="${i}"] p.stage`)?.textContent.includes('en route'), id);
  await offer.locator('[data-action="on_site"]').click();
  await app.waitForFunction((i) => document.querySelector(`.offer[data-id="${i}"] p.stage`)?.textContent.includes('on site'), id);
  // What is chosen and typed survives the re-renders that offers, confirmations and
  // position updates cause (a position sent from the form re-renders the list here).
  await offer.locator('[data-field="outcome"]').selectOption('referred_to_health_service');
  await offer.locator('[data-field="note"]').fill('Helped up, no injury');
  await app.evaluate(() => { window.cardBefore = document.querySelector('#offers .offer'); });
  await app.click('#position-send');
  await app.waitForFunction(() => document.querySelector('#offers .offer') !== window.cardBefore, null, { timeout: 15000 });
  const kept = await offer.evaluate((c) => [c.querySelector('[data-field="outcome"]').value, c.querySelector('[data-field="note"]').value]);
  if (kept[0] !== 'referred_to_health_service' || kept[1] !== 'Helped up, no injury') throw new Error(`a re-render lost the close form: ${kept}`);
  await offer.locator('[data-action="close"]').click();
  await app.waitForSelector(`.offer[data-id="${id}"]`, { state: 'detached' });
  await shot(app, 'app-3-closed');
  step('on the way, on site, closed in the app');

  await ops.locator(`.incident[data-id="${id}"][data-state="done"]`).waitFor({ timeout: 15000 });
  await ops.waitForFunction(() => /Closed: referred to health service/.test(document.getElementById('timeline')?.textContent || ''));
  const timeline = await ops.textContent('#timeline');
  for (const want of ['Note by operator ops: Daughter informed by phone', 'ops (operator): note', 'Accepted by Kari Nær', 'Kari Nær is on the way', 'Kari Nær on site', 'kari (staff): close "referred to health service: Helped up, no injury"']) {
    if (!timeline.includes(want)) throw new Error(`the timeline lacks "${want}":\n${timeline}`);
  }
  // The answer (within the target) counts in today's KPI without a reload.
  await ops.waitForFunction(() => document.getElementById('kpi-today').textContent === '100.0 %', null, { timeout: 15000 });
  // The table by municipality names each by its name.
  if ((await ops.textContent('#kpi-table tbody tr td')) !== 'Fjord') throw new Error(`the KPI table's first row is ${await ops.textContent('#kpi-table tbody tr')}`);
  await shot(ops, 'dashboard-3-closed-green');
  step('dashboard turned green; the timeline has every step');

  // The staff member changes their password from the app, and logs in with it.
  await app.click('a[href="/password"]');
  await app.waitForURL(/\/password$/);
  await app.waitForFunction(() => document.getElementById('who').textContent !== '');
  await app.fill('#current', staffPass);
  await app.fill('#new', 'a brand new password');
  await app.fill('#again', 'a brand new passwort');
  await app.click('#change-button');
  await app.waitForSelector('#password-error:not([hidden])');
  await app.fill('#current', 'not my password');
  await app.fill('#again', 'a brand new password');
  await app.click('#change-button');
  await app.waitForFunction(() => /current password is wrong/.test(document.getElementById('password-error').textContent));
  await app.fill('#current', staffPass);
  await app.fill('#new', 'a brand new password');
  await app.fill('#again', 'a brand new password');
  await app.click('#change-button');
  await app.waitForSelector('#password-done:not([hidden])');
  await shot(app, 'app-4-password-changed');
  await app.click('#back');
  await app.waitForURL(/\/app$/);
  await app.click('#logout');
  await app.waitForURL(/\/login/);
  await app.fill('#username', staffUser);
  await app.fill('#password', 'a brand new password');
  await app.click('#login-button');
  await app.waitForURL(/\/app$/);
  step('password changed in the app; the new one logs in');

  // A Norwegian phone: the login page, its refusal and the app are in Bokmål.
  const nbApp = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'nb-NO' })).newPage();
  watch(nbApp, 'app (nb)');
  await nbApp.goto(`${base}/app`);
  await nbApp.waitForURL(/\/login/);
  await nbApp.waitForFunction(() => document.documentElement.lang === 'nb' && document.getElementById('login-button').textContent === 'Logg inn');
  await nbApp.fill('#username', staffUser);
  await nbApp.fill('#password', 'wrong password');
  await nbApp.click('#login-button');
  await nbApp.waitForFunction(() => document.getElementById('login-error').textContent === 'Feil brukernavn eller passord.');
  await nbApp.fill('#password', 'a brand new password');
  await nbApp.click('#login-button');
  await nbApp.waitForURL(/\/app$/);
  await nbApp.waitForFunction(() => document.getElementById('duty-state').textContent === 'På vakt' && document.getElementById('duty-toggle').textContent === 'Gå av vakt');
  if ((await nbApp.textContent('#no-offers')) !== 'Ingen alarmer til deg nå. Du hører en lyd når det kommer en.') throw new Error('the app is not in Bokmål');
  await nbApp.route('**/readyz', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ ready: false, reason: 'no_broker', message: 'not connected to the MQTT broker' }) }));
  await nbApp.waitForFunction(() => /^Alarmer blir ikke håndtert nå: vakt har ingen forbindelse til alarmformidleren \(MQTT\)\./.test(document.getElementById('engine-down').textContent), null, { timeout: 10000 });
  await nbApp.unroute('**/readyz');
  await nbApp.waitForFunction(() => document.getElementById('engine-down').hidden, null, { timeout: 10000 });
  await shot(nbApp, 'app-5-bokmal');
  step('a Norwegian phone gets the login page, its refusal and the app in Bokmål');

  // A Norwegian dashboard: labels, the timeline and the decimal comma; its toggle
  // turns it to English (kept in this browser).
  const nbOps = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale: 'nb-NO' })).newPage();
  watch(nbOps, 'dashboard (nb)');
  await nbOps.goto(`${base}/login`);
  await nbOps.fill('#username', opsUser);
  await nbOps.fill('#password', opsPass);
  await nbOps.click('#login-button');
  await nbOps.waitForURL(/\/dashboard$/);
  await nbOps.waitForFunction(() => document.getElementById('kpi-today').textContent === '100,0 %');
  if ((await nbOps.textContent('#kpis .kpi-label')) !== 'innen 60 s i dag') throw new Error('the dashboard is not in Bokmål');
  await nbOps.click(`#queue .incident[data-id="${id}"]`);
  await nbOps.waitForFunction(() => /Avsluttet: henvist til helsetjenesten \(Helped up, no injury\)/.test(document.getElementById('timeline')?.textContent || ''));
  const nbTimeline = await nbOps.textContent('#timeline');
  for (const want of ['Notat fra operatør ops: Daughter informed by phone', 'Tatt av Kari Nær', 'Kari Nær er på vei', 'Kari Nær framme', 'kari (ansatt): avslutt "henvist til helsetjenesten: Helped up, no injury"']) {
    if (!nbTimeline.includes(want)) throw new Error(`the Bokmål timeline lacks "${want}":\n${nbTimeline}`);
  }
  if (!(await nbOps.textContent('#refused')).includes('Ukjent bruker')) throw new Error('the refused alarm is not in Bokmål');
  if (!(await nbOps.textContent('#gateways')).includes('uten forbindelse siden')) throw new Error('the gateway offline is not in Bokmål');
  if (await nbOps.evaluate(() => document.body.dataset.alerts)) throw new Error('the chime sounded for what was there when the page opened');
  await shot(nbOps, 'dashboard-4-bokmal');
  await nbOps.click('[data-lang-toggle]');
  await nbOps.waitForFunction(() => document.documentElement.lang === 'en' && document.querySelector('#kpis .kpi-label').textContent === 'within 60 s today');
  await nbOps.waitForFunction(() => document.getElementById('kpi-today').textContent === '100.0 %');
  step('a Norwegian dashboard in Bokmål, its timeline too; the toggle turns it to English');

  if (navigations !== 0) throw new Error(`the dashboard navigated ${navigations} times: it must update without a reload`);
  if (errors.length) throw new Error(`errors in the pages:\n${errors.join('\n')}`);
  console.log('PASS');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  for (const [i, ctx] of browser.contexts().entries()) {
    for (const [j, p] of ctx.pages().entries()) await p.screenshot({ path: join(artifacts, `failure-${i}-${j}.png`), fullPage: true }).catch(() => {});
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
