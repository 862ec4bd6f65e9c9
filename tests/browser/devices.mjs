// The dashboard's alarm devices (tests/it/browser.rs registers two and makes one fall
// silent, and an unknown account send a frame, before this script runs): the silent
// device is an alert, every device is in the table with its last contact, and the
// unknown sender is on the refused list, named as a device, until an operator has seen
// to it; in English and Bokmål.
// Debian's Chromium, driven by playwright-core. Screenshots: $VAKT_ARTIFACTS.
import { join } from 'node:path';
import { browserCheck, logIn } from './common.mjs';

await browserCheck([], async (browser, { base, artifacts, users }) => {
  const [user, pass] = users;
  for (const [locale, silentTitle, notHeard, refusal, count] of [
    ['en-US', 'Silent devices', 'not heard since', 'Unknown device', '2 registered, 1 silent'],
    ['nb-NO', 'Enheter som har stilnet', 'ikke hørt siden', 'Ukjent enhet', '2 registrert, 1 stille'],
  ]) {
    const errors = [];
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale })).newPage();
    page.on('pageerror', (e) => errors.push(e.stack || e.message));
    await logIn(page, base, user, pass, '/dashboard');
    await page.waitForSelector('#silent-panel:not([hidden]) #silent li');
    const silent = await page.textContent('#silent-panel');
    for (const want of [silentTitle, 'smoke-1', notHeard, 'r5', 'SIA DC-09']) {
      if (!silent.includes(want)) throw new Error(`${locale}: the silent devices lack "${want}":\n${silent}`);
    }
    if (silent.includes('panel-1')) throw new Error(`${locale}: a device heard in time is listed as silent:\n${silent}`);
    await page.waitForSelector('#refused-panel:not([hidden])');
    const refused = await page.textContent('#refused');
    for (const want of [refusal, 'SIA DC-09 127.0.0.1:', 'account 9999']) {
      if (!refused.includes(want)) throw new Error(`${locale}: the refused list lacks "${want}":\n${refused}`);
    }
    if (locale === 'nb-NO') {
      // Seen to: the refused alarm leaves the list (the last one: the list goes).
      await page.click('#refused li:has-text("account 9999") .seen-to');
      await page.waitForSelector('#refused-panel', { state: 'hidden' });
      console.log('step: a refused alarm seen to leaves the list');
    }
    await page.click('#devices-panel summary');
    const summary = await page.textContent('#devices-count');
    if (summary !== count) throw new Error(`${locale}: the devices' count says "${summary}", not "${count}"`);
    const rows = await page.$$eval('#devices tbody tr', (trs) => trs.map((tr) => ({ cells: [...tr.cells].map((c) => c.textContent), bad: tr.classList.contains('bad') })));
    const byId = Object.fromEntries(rows.map((r) => [r.cells[0], r]));
    if (!byId['smoke-1']?.bad || byId['panel-1']?.bad) throw new Error(`${locale}: only the silent device is marked: ${JSON.stringify(rows)}`);
    if (!/^\d\d:\d\d/.test(byId['panel-1'].cells[3])) throw new Error(`${locale}: panel-1's last contact is not a time: ${JSON.stringify(rows)}`);
    await page.screenshot({ path: join(artifacts, `devices-${locale}.png`), fullPage: true });
    if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
    console.log(`step: devices shown in ${locale}`);
  }
});
